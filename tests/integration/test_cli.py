"""The `callcenter` command: help everywhere, users and tokens, readable setting errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from callcenter.cli import app
from callcenter.db import Database
from callcenter.users.service import user_for_token

runner = CliRunner()

SUBCOMMANDS = [
    [],
    ["serve"],
    ["scheduler"],
    ["db"],
    ["db", "upgrade"],
    ["demo"],
    ["demo", "load"],
    ["users"],
    ["users", "create"],
    ["tokens"],
    ["tokens", "create"],
    ["dnc"],
    ["dnc", "import"],
    ["scripts"],
    ["scripts", "lint"],
    ["scripts", "show"],
    ["ivr"],
    ["ivr", "call"],
    ["db", "backup"],
    ["db", "restore"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "callcenter")
def test_every_subcommand_has_help(words: list[str]) -> None:
    result = runner.invoke(app, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return url


def test_users_and_tokens(db_env: str) -> None:
    created = runner.invoke(
        app, ["users", "create", "li.ming", "--role", "agent", "--password", "s3cret-pass"]
    )
    assert created.exit_code == 0, created.output
    assert "created user li.ming (agent)" in created.output
    twice = runner.invoke(app, ["users", "create", "li.ming", "--role", "agent"])
    assert twice.exit_code == 1 and "already exists" in twice.output
    bad_role = runner.invoke(app, ["users", "create", "x", "--role", "boss"])
    assert bad_role.exit_code == 2
    short = runner.invoke(app, ["users", "create", "y", "--role", "agent", "--password", "123"])
    assert short.exit_code == 1 and "at least 8" in short.output
    token = runner.invoke(app, ["tokens", "create", "--user", "li.ming"])
    assert token.exit_code == 0, token.output
    plain = token.stdout.strip().splitlines()[0]
    user = user_for_token(Database(db_env).uow(), token=plain)
    assert user is not None and user.username == "li.ming"
    nobody = runner.invoke(app, ["tokens", "create", "--user", "nobody"])
    assert nobody.exit_code == 1 and "no user 'nobody'" in nobody.output


def test_demo_load_is_repeatable(db_env: str) -> None:
    first = runner.invoke(app, ["demo", "load", "--callbacks-per-type", "5"])
    assert first.exit_code == 0, first.output
    assert "Loaded 35 callbacks" in first.output
    assert "agent1" in first.output and "demo-agent-pass" in first.output
    second = runner.invoke(app, ["demo", "load", "--callbacks-per-type", "5"])
    assert second.exit_code == 0 and "already loaded" in second.output
    # The forecast has agents to work with: today and tomorrow, every calling window.
    from callcenter.forecast.models import RosterEntry

    with Database(db_env).uow() as uow:
        rows = list(uow.session.execute(sa.select(RosterEntry)).scalars())
    assert len(rows) == 4 and {row.agents for row in rows} == {3}


def test_a_bad_setting_stops_start_up_naming_it(tmp_path: Path) -> None:
    # Through a real process, as an operator would meet it.
    env: dict[str, Any] = {
        "CALLCENTER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "CALLCENTER_RULES__ATTEMPTS__MAX_ATTEMPTS": "-1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "callcenter", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid setting rules.attempts.max_attempts" in result.stderr


def test_overlapping_windows_in_a_rules_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules.windows]]\nstart = "08:30"\nend = "12:00"\n'
        '[[rules.windows]]\nstart = "11:00"\nend = "13:00"\n'
    )
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(rules))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "invalid setting rules.windows" in result.output
    assert "overlap" in result.output


def test_do_not_call_import_is_all_or_nothing_with_file_and_line(
    db_env: str, tmp_path: Path
) -> None:
    from callcenter.customers.service import on_list

    bad = tmp_path / "bad.csv"
    bad.write_text("phone,reason\n13800000001,投诉过多\n# a comment\n12345\n13800000002\n")
    refused = runner.invoke(app, ["dnc", "import", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}:4:" in refused.output and "'12345'" in refused.output
    assert not on_list(Database(db_env).uow(), phone="+8613800000001")

    good = tmp_path / "good.csv"
    good.write_text("13800000001,投诉过多\n+86 138 0000 0002\n138-0000-0001\n")
    done = runner.invoke(app, ["dnc", "import", str(good)])
    assert done.exit_code == 0, done.output
    assert "2 number(s) added; 1 already on the list" in done.output
    assert on_list(Database(db_env).uow(), phone="+8613800000002")
    missing = runner.invoke(app, ["dnc", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_a_broken_script_stops_start_up_with_file_and_line(tmp_path: Path) -> None:
    import shutil

    from api.app import create_app
    from callcenter.config import Settings
    from callcenter.questionnaires.loader import shipped_scripts_dir
    from callcenter.questionnaires.source import ScriptError

    broken = tmp_path / "scripts"
    shutil.copytree(shipped_scripts_dir(), broken)
    repair = broken / "repair.yaml"
    lines = repair.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines) if "zh:" in line and "？" in line)
    lines[number] = lines[number].replace("？", "？你有没有搞错？", 1)  # a forbidden phrase
    repair.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", scripts_dir=broken)
    with pytest.raises(ScriptError) as caught:
        create_app(settings, start_scheduler=False)
    assert f"repair.yaml:{number + 1}" in str(caught.value)
    lint = runner.invoke(app, ["scripts", "lint", str(broken)])
    assert lint.exit_code == 1 and f"repair.yaml:{number + 1}" in lint.output
    assert runner.invoke(app, ["scripts", "lint"]).exit_code == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_scheduler_stops_cleanly_on_a_signal(
    db_env: str, tmp_path: Path, stop: signal.Signals
) -> None:
    log = tmp_path / "scheduler.log"
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": db_env,
        "CALLCENTER_SLA_WATCH_SECONDS": "1",
        "CALLCENTER_LEASE_SWEEP_SECONDS": "1",
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "scheduler"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while "job=sla_watch rows=" not in log.read_text():  # its jobs are running
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            process.send_signal(stop)
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    output = log.read_text()
    assert code == 0, output  # not killed by the signal, not failed
    assert "Traceback" not in output
    assert output.rstrip().endswith("scheduler stopped"), output[-2000:]
