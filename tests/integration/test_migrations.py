"""`upgrade head` on an empty database gives exactly the models' schema (SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callcenter.cli import upgrade_database
from callcenter.db import create_db_engine
from callcenter.models import metadata
from tests.conftest import PG_URL


def _differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        return list(compare_metadata(context, metadata))


def test_sqlite_upgrade_head_matches_the_models(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    try:
        assert _differences(engine) == []
        tables = set(sa.inspect(engine).get_table_names())
        assert {"callbacks", "events", "attempts", "customers", "users"} <= tables
        upgrade_database(url)  # a second run is a no-op, not an error
    finally:
        engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set")
def test_postgresql_upgrade_head_matches_the_models() -> None:
    assert PG_URL is not None
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    try:
        upgrade_database(url)
        assert _differences(engine) == []
        indexes = {ix["name"]: ix for ix in sa.inspect(engine).get_indexes("callbacks")}
        queue = indexes["ix_callbacks_queue"]
        assert queue["column_names"] == ["hard_due_at", "due_at", "id"]
        assert "pending" in str(queue.get("dialect_options", {}).get("postgresql_where"))
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_model_change_without_migration_is_detected(tmp_path: Any) -> None:
    # The check above must be able to fail: drop a column the models have.
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE attempts DROP COLUMN note"))
        diffs = _differences(engine)
        assert any("note" in str(diff) for diff in diffs)
    finally:
        engine.dispose()
