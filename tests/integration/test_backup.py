"""Backups (issue: trustworthy under faults): a backup restored into an empty database holds
every row, on SQLite and PostgreSQL; restoring never mixes into a database with data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from callcenter.backup.service import BackupError, backup, restore, row_counts
from callcenter.cli import app, upgrade_database
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig
from callcenter.db import Database
from callcenter.demo import load_demo
from callcenter.questionnaires.loader import shipped_scripts
from tests.conftest import IN_WINDOW, PG_URL

runner = CliRunner()


def fill(url: str) -> dict[str, int]:
    upgrade_database(url)
    database = Database(url)
    try:
        load_demo(
            database,
            now=FixedClock(IN_WINDOW).now(),
            config=RulesConfig(),
            per_type=4,
            scripts=shipped_scripts(),
        )
    finally:
        database.engine.dispose()
    counts = row_counts(url)
    assert counts["callbacks"] > 0 and counts["attempts"] > 0 and counts["users"] > 0
    return counts


def test_a_sqlite_backup_restores_every_row(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'live.db'}"
    counts = fill(source)
    backup(source, tmp_path / "backup.db")
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    restore(target, tmp_path / "backup.db")
    assert row_counts(target) == counts


def test_the_commands_back_up_and_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = f"sqlite:///{tmp_path / 'live.db'}"
    counts = fill(source)
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", source)
    made = runner.invoke(app, ["db", "backup", str(tmp_path / "nightly.db")])
    assert made.exit_code == 0, made.output
    assert f"backed up {sum(counts.values())} rows" in made.output
    again = runner.invoke(app, ["db", "backup", str(tmp_path / "nightly.db")])
    assert again.exit_code != 0 and "exists already" in again.output  # never overwritten
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    restored = runner.invoke(app, ["db", "restore", str(tmp_path / "nightly.db")])
    assert restored.exit_code == 0, restored.output
    assert f"callbacks                {counts['callbacks']}" in restored.output


def test_a_restore_into_a_database_with_tables_is_refused(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'live.db'}"
    fill(source)
    backup(source, tmp_path / "backup.db")
    with pytest.raises(BackupError, match="not empty"):
        restore(source, tmp_path / "backup.db")


@pytest.fixture
def pg_databases() -> Iterator[tuple[str, str]]:
    assert PG_URL is not None
    names = [f"bk_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    urls = [
        sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        for name in names
    ]
    try:
        yield urls[0], urls[1]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set")
def test_a_postgresql_backup_restores_every_row(
    tmp_path: Path, pg_databases: tuple[str, str]
) -> None:
    source, target = pg_databases
    counts = fill(source)
    backup(source, tmp_path / "backup.dump")
    restore(target, tmp_path / "backup.dump")
    assert row_counts(target) == counts
    # The restored database keeps working: its sequences continue after the restored rows.
    engine = sa.create_engine(target)
    with engine.begin() as connection:
        top = connection.execute(sa.text("SELECT max(id) FROM callbacks")).scalar_one()
        nxt = connection.execute(sa.text("SELECT nextval('callbacks_id_seq')")).scalar_one()
    engine.dispose()
    assert nxt > top
