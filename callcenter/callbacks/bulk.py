"""Batch statements of the intake on PostgreSQL: one short statement per batch that takes a
column of values as an array each (`unnest`), instead of a statement with a thousand rows of
placeholders. Its text never changes, so the driver and the server do not parse a new
thousand-row statement for every batch, and each column goes over as one binary array.

SQLite takes the same rows through SQLAlchemy's executemany (callcenter/callbacks/service.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlmodel import Session

# PostgreSQL's array type for each kind of column value.
_ARRAY = {int: "int[]", str: "text[]", datetime: "timestamptz[]", date: "date[]"}
# How the driver sends each kind of array: binary (`%b`) unless text is cheaper. A thousand
# instants take the driver ~19 ms to write as text and ~3 ms as binary.
_FORMAT = {int: "s", str: "b", datetime: "b", date: "b"}


def _plain(value: Any) -> Any:
    # An enum column stores the member's value (see callcenter.db.enum_type).
    return value.value if isinstance(value, Enum) else value


def _unnest(columns: Sequence[tuple[str, type]]) -> str:
    return ", ".join(f"%({name}){_FORMAT[kind]}::{_ARRAY[kind]}" for name, kind in columns)


def _arrays(
    columns: Sequence[tuple[str, type]], rows: Iterable[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {name: [] for name, _ in columns}
    for row in rows:
        for name, _ in columns:
            arrays[name].append(_plain(row[name]))
    return arrays


def insert_rows(
    session: Session,
    table: str,
    columns: Sequence[tuple[str, type]],
    rows: Sequence[Mapping[str, Any]],
    *,
    suffix: str = "",
) -> list[Any]:
    """`INSERT INTO table (columns) SELECT … FROM unnest(…)` plus `suffix` (an `ON CONFLICT`
    or `RETURNING` clause); the first column of each returned row, if it returns any."""
    names = ", ".join(name for name, _ in columns)
    sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({_unnest(columns)}) {suffix}"
    result = session.connection().exec_driver_sql(sql, _arrays(columns, rows))
    return [row[0] for row in result] if result.returns_rows else []


def update_rows(
    session: Session,
    table: str,
    key: tuple[str, type],
    columns: Sequence[tuple[str, type]],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """`UPDATE table SET columns = … FROM unnest(…) WHERE table.key = …`, one row each."""
    every = [key, *columns]
    names = ", ".join(name for name, _ in every)
    assignments = ", ".join(f"{name} = v.{name}" for name, _ in columns)
    sql = (
        f"UPDATE {table} SET {assignments} FROM unnest({_unnest(every)}) AS v({names}) "
        f"WHERE {table}.{key[0]} = v.{key[0]}"
    )
    session.connection().exec_driver_sql(sql, _arrays(every, rows))


def select_ids(session: Session, table: str, key: str, values: Sequence[str]) -> dict[str, int]:
    """`{key: id}` of the rows whose `key` is one of `values` (one array parameter)."""
    sql = f"SELECT {key}, id FROM {table} WHERE {key} = ANY(%(values)b::text[])"
    result = session.connection().exec_driver_sql(sql, {"values": list(values)})
    return {row[0]: row[1] for row in result}


def next_ids(session: Session, table: str, count: int) -> list[int]:
    """`count` new ids from the table's sequence, drawn before the rows are inserted."""
    sql = (
        "SELECT nextval(pg_get_serial_sequence(%(table)s, 'id')) FROM generate_series(1, %(count)s)"
    )
    result = session.connection().exec_driver_sql(sql, {"table": table, "count": count})
    return [int(row[0]) for row in result]
