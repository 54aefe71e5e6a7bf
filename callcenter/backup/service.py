"""Back up a live database to a file, restore one into an empty database, and count rows.

SQLite: `sqlite3`'s online backup API copies a consistent snapshot while the service runs.
PostgreSQL: `pg_dump --format=custom` (one consistent snapshot as well), restored with
`pg_restore`; both must be on the PATH (the PostgreSQL client package).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import sqlalchemy as sa

from callcenter.db import create_db_engine


class BackupError(Exception):
    """A backup or restore that could not be made; the message says why and what to do."""


def _dialect(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _libpq_url(url: str) -> str:
    # pg_dump speaks libpq's URL, without SQLAlchemy's driver name.
    return (
        sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def _run(command: list[str]) -> None:
    tool = command[0]
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not installed: install the PostgreSQL client tools")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}")


def backup(url: str, target: Path) -> None:
    """Write a consistent copy of the database at `url` to `target` (never overwritten)."""
    if target.exists():
        raise BackupError(f"{target} exists already: choose a new file name")
    if _dialect(url) == "sqlite":
        source_path = _sqlite_path(url)
        if not source_path.exists():
            raise BackupError(f"there is no database at {source_path}")
        with sqlite3.connect(source_path) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        return
    _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target}", _libpq_url(url)])


def restore(url: str, source: Path) -> None:
    """Restore the backup `source` into the empty database at `url`. A database that holds
    tables already is refused: restoring never mixes two databases' rows."""
    if not source.exists():
        raise BackupError(f"there is no backup at {source}")
    if table_names(url):
        raise BackupError(
            "the database to restore into is not empty: restore into a new, empty database"
        )
    if _dialect(url) == "sqlite":
        with sqlite3.connect(source) as backup_file, sqlite3.connect(_sqlite_path(url)) as copy:
            backup_file.backup(copy)
        return
    _run(
        [
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={_libpq_url(url)}",
            str(source),
        ]
    )


def table_names(url: str) -> list[str]:
    engine = create_db_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """Rows in every table: what an operator compares after a restore."""
    engine = create_db_engine(url)
    try:
        counts = {}
        with engine.connect() as connection:
            for name in sorted(sa.inspect(engine).get_table_names()):
                table = sa.table(name)
                counts[name] = int(
                    connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
        return counts
    finally:
        engine.dispose()
