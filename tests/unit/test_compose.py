"""The production compose file: valid against the Compose specification, and shaped as we rely on.

The schema check uses check-jsonschema's built-in `vendor.compose-spec` schema, which ships
inside the package, so it needs no network.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("migrate", "api", "scheduler")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PEPPER|(?:^|_)KEY(?:_|$)", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, ...
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


def _check_jsonschema() -> Path:
    beside = Path(sys.executable).parent / "check-jsonschema"
    if beside.is_file():
        return beside
    found = shutil.which("check-jsonschema")
    if found is None:
        pytest.fail(
            "check-jsonschema is not installed (it is in the 'dev' extra); "
            "the compose file cannot be validated"
        )
    return Path(found)


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_check_jsonschema()), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short form means only "started"
        return {name: {"condition": "service_started"} for name in deps}
    return dict(deps)


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert command is not None, "service has no command"
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_compose_file_matches_the_compose_specification() -> None:
    result = _validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"services": {"api": {"image": "x", "ports": 8000}}}, id="ports-not-a-list"),
        pytest.param(
            {"services": {"api": {"image": "x"}}, "servics": {}}, id="unknown-top-level-key"
        ),
        pytest.param(
            {
                "services": {
                    "api": {"image": "x", "depends_on": {"db": {"condition": "service_done"}}},
                    "db": {"image": "y"},
                }
            },
            id="unknown-depends-on-condition",
        ),
    ],
)
def test_schema_check_rejects_a_broken_compose_file(tmp_path: Path, broken: dict[str, Any]) -> None:
    path = tmp_path / "docker-compose.yml"
    # JSON is YAML; writing it this way keeps the broken document exactly as written above.
    path.write_text(json.dumps(broken), encoding="utf-8")
    result = _validate(path)
    assert result.returncode != 0, result.stdout + result.stderr


def test_compose_file_has_the_production_shape(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the top-level 'version' key is obsolete"
    services = compose["services"]
    assert set(services) >= {"postgres", "migrate", *APP_SERVICES}

    # PostgreSQL: persistent named volume and a readiness check the others can wait on.
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    volume = next(v for v in postgres["volumes"] if "/var/lib/postgresql/data" in str(v))
    volume_name = str(volume).split(":", 1)[0]
    assert volume_name in (compose.get("volumes") or {}), "postgres data is not a named volume"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    # Migrations run once, after the database is ready, and are never restarted.
    migrate = services["migrate"]
    assert _command(migrate) == ["callcenter", "db", "upgrade"]
    assert _depends_on(migrate)["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"

    # The API and the scheduler start only after the migration has finished successfully.
    for name in ("api", "scheduler"):
        deps = _depends_on(services[name])
        assert deps["migrate"]["condition"] == "service_completed_successfully", name

    # The API runs uvicorn through `callcenter serve`, with several workers and no scheduler.
    api = _command(services["api"])
    assert api[:2] == ["callcenter", "serve"]
    assert "--no-scheduler" in api
    assert int(api[api.index("--workers") + 1]) > 1
    assert any(str(port).split(":")[-1] == "8000" for port in services["api"]["ports"])
    assert "healthz" in " ".join(services["api"]["healthcheck"]["test"])

    # The scheduler is its own service and does not serve HTTP.
    scheduler = _command(services["scheduler"])
    assert scheduler == ["callcenter", "scheduler"]
    assert services["scheduler"].get("healthcheck", {}).get("disable") is True

    # All application services share one image and one configuration.
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, images
    envs = [_environment(services[name]) for name in APP_SERVICES]
    assert all(env == envs[0] for env in envs)
    assert envs[0]["CALLCENTER_ENVIRONMENT"] == "production"
    assert envs[0]["CALLCENTER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in envs[0]["CALLCENTER_DATABASE_URL"]


def test_compose_sets_only_real_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    settings = importlib.import_module("callcenter.config").Settings
    prefix = settings.model_config.get("env_prefix", "")
    known = {prefix.upper() + name.upper() for name in settings.model_fields}
    for name in APP_SERVICES:
        for key in _environment(compose["services"][name]):
            if key.startswith(prefix.upper()):
                assert key.split("__", 1)[0] in known, f"{name}: {key} is not a setting"


def test_no_secret_has_a_literal_default(compose: dict[str, Any]) -> None:
    # The postgres password must be supplied by the operator: `${VAR:?message}`.
    password = _environment(compose["services"]["postgres"])["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", password), password

    # Every interpolation of a secret-looking variable uses the required form, nowhere a default.
    seen = 0
    for text in _strings(compose):
        for match in INTERPOLATION.finditer(text):
            if SECRET_NAME.search(match["name"]):
                seen += 1
                assert match["op"] == ":?", f"{match[0]} must use the ':?' required form"
    assert seen >= 2  # the postgres service and the application's database URL

    # No secret-looking environment variable holds a literal value.
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} has a literal value"

    # The database URL's password is interpolated, not written in.
    url = _environment(compose["services"]["api"])["CALLCENTER_DATABASE_URL"]
    credentials = url.split("://", 1)[1].rsplit("@", 1)[0]
    assert INTERPOLATION.fullmatch(credentials.split(":", 1)[1]), url


def test_dockerfile_default_command_is_the_compose_api_command(compose: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert cmd is not None, "the Dockerfile has no exec-form CMD"
    assert json.loads(cmd[1]) == _command(compose["services"]["api"])
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "http://127.0.0.1:8000/healthz" in text
