"""The access matrix (docs/ACCESS.md) against the application: every route has a row, every
row a route, and every role gets what its cell says on every route, on SQLite and PostgreSQL.

A request is sent so that the access check is what decides: a syntactically valid body (`{}`,
a form with the session's CSRF token), path parameters that are real objects or valid names.
Anything after the check (404, 409, 422, a redirect elsewhere) counts as allowed; refused is
401/403 on the API and the Twilio webhooks, and on the console the redirect to the sign-in page
or the 403 page that names the role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from api.app import create_app
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.users.models import UserRole
from callcenter.users.service import sign_in
from tests.conftest import IN_WINDOW, Users, backends, make_database
from tests.console.helpers import PASSWORD
from tests.factories import event

ACCESS_MD = Path(__file__).resolve().parents[2] / "docs" / "ACCESS.md"
ANONYMOUS = "anonymous"
ROLES = (ANONYMOUS, *(role.value for role in UserRole))
ALLOWED, REFUSED = "✓", "—"
MISSING = 999_999  # an id no fixture makes
_PARAM = re.compile(r"\{([a-z_]+)\}")
# How the console says "your role may not open this page" (zh-CN, the default language).
FORBIDDEN_PAGE = "无权打开此页面"
CSRF_PAGE = "表单已过期"


@dataclass(frozen=True)
class Rule:
    """One row of the matrix: a route (or a route with a concrete parameter) and the roles
    it lets through."""

    method: str
    path: str
    allowed: frozenset[str]
    line: int

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def read_matrix(text: str) -> list[Rule]:
    """The rows of the one table with `method` and `path` columns; a cell that is neither ✓
    nor — is an error naming its line, so that a typo is not read as refused."""
    rules: list[Rule] = []
    header: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip().strip("`").strip() for cell in line.strip("|").split("|")]
        if header is None:
            if cells[:2] == ["method", "path"]:
                header = cells
                missing = set(ROLES) - set(header)
                assert not missing, f"ACCESS.md:{number}: no column for {sorted(missing)}"
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        row = dict(zip(header, cells, strict=True))
        bad = {role: row[role] for role in ROLES if row[role] not in (ALLOWED, REFUSED)}
        assert not bad, f"ACCESS.md:{number}: cells must be {ALLOWED} or {REFUSED}: {bad}"
        rules.append(
            Rule(
                method=row["method"].upper(),
                path=row["path"],
                allowed=frozenset(role for role in ROLES if row[role] == ALLOWED),
                line=number,
            )
        )
    assert header is not None, "ACCESS.md has no table with method and path columns"
    return rules


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the application answers; HEAD goes with GET,
    and a mounted directory of static files is one GET route."""
    routes: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, Mount):
            routes.add(("GET", f"{context.path}/{{path}}"))
            continue
        assert context.path is not None, context
        routes.update(
            (method, context.path) for method in context.methods or () if method != "HEAD"
        )
    return routes


def template_of(rule: Rule, routes: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The route a row is about: the same template, or the template its concrete path fits."""
    if (rule.method, rule.path) in routes:
        return rule.method, rule.path
    for method, path in sorted(routes):
        parts = _PARAM.split(path)  # text, name, text, name, …
        pattern = "".join(re.escape(p) if i % 2 == 0 else "[^/]+" for i, p in enumerate(parts))
        if method == rule.method and len(parts) > 1 and re.fullmatch(pattern, rule.path):
            return method, path
    return None


def mismatches(rules: list[Rule], routes: set[tuple[str, str]]) -> list[str]:
    """Routes without a row and rows without a route, each named."""
    covered = {template_of(rule, routes) for rule in rules}
    problems = [
        f"{method} {path}: no row in docs/ACCESS.md" for method, path in sorted(routes - covered)
    ]
    problems += [
        f"ACCESS.md:{rule.line} {rule.name}: no such route"
        for rule in rules
        if template_of(rule, routes) is None
    ]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            problems.append(f"ACCESS.md:{rule.line} {rule.name}: a second row")
        seen.add(rule.name)
    return problems


def bare_app(tmp_path: Path) -> FastAPI:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}", scheduler_enabled=False)
    return create_app(settings, start_scheduler=False)


def test_every_route_has_a_row_and_every_row_a_route(tmp_path: Path) -> None:
    rules = read_matrix(ACCESS_MD.read_text(encoding="utf-8"))
    assert mismatches(rules, app_routes(bare_app(tmp_path))) == []


def test_a_new_route_without_a_row_is_named(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    app.add_api_route("/api/v1/new-thing/{thing_id}", lambda thing_id: {}, methods=["DELETE"])
    rules = read_matrix(ACCESS_MD.read_text(encoding="utf-8"))
    gone = Rule("GET", "/api/v1/gone", frozenset(), 0)
    problems = mismatches([*rules, gone], app_routes(app))
    assert "DELETE /api/v1/new-thing/{thing_id}: no row in docs/ACCESS.md" in problems
    assert "ACCESS.md:0 GET /api/v1/gone: no such route" in problems


def test_a_cell_that_is_not_a_tick_or_a_dash_is_refused() -> None:
    header = "| method | path | " + " | ".join(ROLES) + " | note |\n|---|\n"
    row = "| GET | `/x` | ✓ | x | — | — | — | — | — | |\n"
    with pytest.raises(AssertionError, match="ACCESS.md:3"):
        read_matrix(header + row)


# -- walking the matrix ---------------------------------------------------------------------


@dataclass
class World:
    """One application on one database, with a user, token and console session per role and
    the objects the path parameters name."""

    client: TestClient
    database: Database
    settings: Settings
    clock: FixedClock
    tokens: dict[str, str]
    sessions: dict[str, tuple[str, str]]  # role → (session cookie, CSRF token)
    params: dict[str, Any]


@pytest.fixture(scope="module", params=backends())
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    database, drop = make_database(str(request.param), tmp_path_factory.mktemp("matrix"))
    clock = FixedClock(IN_WINDOW)
    settings = Settings(database_url=database.url, scheduler_enabled=False)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    users = Users(database, clock)
    tokens = {role.value: users.make(role.value, role)[1] for role in UserRole}
    sessions = {}
    for role in UserRole:
        if role is not UserRole.SYSTEM:
            signed = _session(database, settings, clock, role.value)
            sessions[role.value] = (signed.token, signed.csrf_token)
    system = {"Authorization": f"Bearer {tokens['system']}"}
    try:
        with TestClient(app) as client:
            install = client.post(
                "/api/v1/events", json=event(occurred_at=IN_WINDOW), headers=system
            )
            assert install.status_code == 201, install.text
            churn = client.post(
                "/api/v1/events",
                json=event("cancellation", occurred_at=IN_WINDOW - timedelta(minutes=30)),
                headers=system,
            )
            assert churn.status_code == 201, churn.text
            cases = client.get(
                "/api/v1/retention/cases",
                params={"callback_id": churn.json()["id"]},
                headers={"Authorization": f"Bearer {tokens['admin']}"},
            )
            (case,) = cases.json()["items"]
            assert case["level"] == 1
            params = {
                "callback_id": install.json()["id"],
                "case_id": case["id"],
                "answer_id": MISSING,
                "work_order_id": MISSING,
                "level": 1,
                "ref": "CA-not-a-call",
                "path": "console.css",
            }
            yield World(client, database, settings, clock, tokens, sessions, params)
    finally:
        drop()


def _session(database: Database, settings: Settings, clock: FixedClock, username: str) -> Any:
    return sign_in(
        database.uow(),
        username=username,
        password=PASSWORD,
        now=clock.now(),
        address="10.0.0.1",
        policy=settings.console,
    )


def concrete(rule: Rule, params: dict[str, Any]) -> str:
    def fill(found: re.Match[str]) -> str:
        name = found.group(1)
        if name == "table":
            return "reasons" if "/churn/" in rule.path else "figures"
        return str(params[name])

    return _PARAM.sub(fill, rule.path)


def ask(world: World, rule: Rule, role: str) -> Any:
    """The request `role` sends for `rule`, with the credential that role has there."""
    client = world.client
    client.cookies.clear()  # only what this request is given
    path = concrete(rule, world.params)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    form: dict[str, str] | None = None
    body: Any = None
    if path.startswith("/console/"):
        csrf = "login-form"
        cookies["cc_login_csrf"] = csrf  # the sign-in form's double-submit token
        if role in world.sessions:
            token, session_csrf = world.sessions[role]
            if rule.path != "/console/login":
                csrf = session_csrf
            if rule.path == "/console/logout":
                # Signing out ends the session: a session of its own, not the shared one.
                signed = _session(world.database, world.settings, world.clock, role)
                token, csrf = signed.token, signed.csrf_token
            cookies["cc_session"] = token
        elif role != ANONYMOUS:
            headers["Authorization"] = f"Bearer {world.tokens[role]}"  # all it has
        if rule.method == "POST":
            form = {"csrf_token": csrf}
            if rule.path == "/console/login":
                # Nobody's account: a wrong password locks no one.
                form |= {"username": "nobody", "password": "not a password"}
    else:
        if role != ANONYMOUS:
            headers["Authorization"] = f"Bearer {world.tokens[role]}"
        if rule.method in ("POST", "PUT"):
            if path.startswith("/twilio/"):
                form = {}
            else:
                body = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return client.request(
        rule.method, path, headers=headers, data=form, json=body, follow_redirects=False
    )


def refused(rule: Rule, response: Any) -> bool:
    if rule.path.startswith("/console/"):
        # The way back is in `next`; a plain /console/login is where signing out lands.
        to_sign_in = response.status_code == 303 and response.headers["location"].startswith(
            "/console/login?next="
        )
        return to_sign_in or (response.status_code == 403 and FORBIDDEN_PAGE in response.text)
    return response.status_code in (401, 403)


def test_every_role_gets_what_the_matrix_says_on_every_route(world: World) -> None:
    rules = read_matrix(ACCESS_MD.read_text(encoding="utf-8"))
    wrong: list[str] = []
    for rule in rules:
        for role in ROLES:
            response = ask(world, rule, role)
            status = response.status_code
            if status >= 500 or CSRF_PAGE in response.text:
                wrong.append(f"{rule.name} as {role}: {status} {response.text[:200]!r}")
                continue
            expected = role in rule.allowed
            if refused(rule, response) == expected:
                said = "allowed" if expected else "refused"
                wrong.append(f"{rule.name} as {role}: the matrix says {said}, got {status}")
    assert wrong == [], "\n".join(wrong)
