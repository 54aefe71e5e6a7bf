"""Start-up tells the operator when the database's upkeep would slow the claim down."""

import sqlalchemy as sa

from callcenter.db import Database, autovacuum_warnings, upkeep_warnings


def test_autovacuum_off_is_a_warning_that_says_what_to_do() -> None:
    assert autovacuum_warnings("on") == []
    (warning,) = autovacuum_warnings("off")
    assert "autovacuum is off" in warning
    assert "ANALYZE" in warning


def test_the_warning_follows_the_servers_setting(database: Database) -> None:
    if database.engine.dialect.name != "postgresql":
        assert upkeep_warnings(database.engine) == []  # SQLite has no such upkeep
        return
    with database.engine.connect() as connection:
        setting = connection.execute(
            sa.text("SELECT setting FROM pg_settings WHERE name = 'autovacuum'")
        ).scalar_one()
    assert bool(upkeep_warnings(database.engine)) == (setting == "off")
