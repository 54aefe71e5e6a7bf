"""The do-not-call list: imported by the operator, or added when a customer asks."""

from __future__ import annotations

import csv
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.customers.models import DoNotCall, DoNotCallSource, KnownZone
from callcenter.customers.rules import InvalidPhone, normalize_phone
from callcenter.db import UnitOfWork, upsert_into


@dataclass(frozen=True)
class ListLine:
    line: int
    phone: str
    reason: str | None


class ListFileError(ValueError):
    """A do-not-call file with bad lines; nothing was imported. One `file:line: why` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_list_file(path: Path, default_region: str) -> list[ListLine]:
    """Read a CSV of `phone[,reason]` (a header line `phone,...` is allowed). Every bad line
    is reported with its number; a file with any bad line is refused whole."""
    problems: list[str] = []
    lines: list[ListLine] = []
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ListFileError([f"{path}: cannot read: {exc.strerror}"]) from exc
    with handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and row[0].strip().lower() == "phone":
                continue
            raw = row[0]
            reason = row[1].strip() if len(row) > 1 and row[1].strip() else None
            try:
                phone = normalize_phone(raw, default_region)
            except InvalidPhone as exc:
                problems.append(f"{path}:{number}: {exc}")
                continue
            lines.append(ListLine(number, phone, reason))
    if problems:
        raise ListFileError(problems)
    return lines


def add_to_list(
    uow: UnitOfWork,
    *,
    lines: Iterable[ListLine],
    source: DoNotCallSource,
    now: datetime,
    created_by_id: int | None = None,
) -> int:
    """Put numbers on the do-not-call list; numbers already on it stay as they are. Returns
    how many were added."""
    rows = {
        line.phone: {
            "phone": line.phone,
            "source": source,
            "reason": line.reason,
            "created_at": now,
            "created_by_id": created_by_id,
        }
        for line in lines
    }
    if not rows:
        return 0
    with uow:
        added = put_on_list(uow.session, list(rows.values()))
        uow.commit()
    return added


def put_on_list(session: Session, entries: Sequence[Mapping[str, Any]]) -> int:
    """Insert do-not-call entries in the caller's transaction; a number already on the list
    stays as it is. Returns how many were added."""
    table = DoNotCall.__table__  # type: ignore[attr-defined]
    added = 0
    for start in range(0, len(entries), 1000):
        result = session.execute(
            upsert_into(session, table)
            .values(list(entries[start : start + 1000]))
            .on_conflict_do_nothing(index_elements=["phone"])
            .returning(table.c.phone)
        )
        added += len(result.all())
    return added


def on_list(uow: UnitOfWork, *, phone: str) -> bool:
    with uow:
        stmt = sa.select(col(DoNotCall.phone)).where(col(DoNotCall.phone) == phone)
        return uow.session.execute(stmt).first() is not None


# The zones customers live in change rarely (a new one arrives with its first customer), and
# every claim asks for them: each process keeps them for a few seconds per database. Intake in
# this process forgets them at once when it adds a zone; other processes see it within the TTL.
ZONE_TTL_SECONDS = 10.0
_zones: weakref.WeakKeyDictionary[sa.Engine, tuple[float, list[str]]] = weakref.WeakKeyDictionary()
_zones_lock = threading.Lock()


def known_zones(session: Session) -> list[str]:
    """The time zones of all customers (rule CB-5: each has its own calling windows)."""
    engine = session.get_bind().engine
    cached = cached_zones(engine)
    if cached is not None:
        return cached
    names = list(session.execute(KNOWN_ZONES).scalars())
    remember_zones(engine, names)
    return names


KNOWN_ZONES = sa.select(col(KnownZone.name))


def cached_zones(engine: sa.Engine) -> list[str] | None:
    """The zones this process read from `engine` within the TTL, if it did."""
    with _zones_lock:
        cached = _zones.get(engine)
    if cached is not None and time.monotonic() - cached[0] < ZONE_TTL_SECONDS:
        return cached[1]
    return None


def remember_zones(engine: sa.Engine, names: list[str]) -> None:
    with _zones_lock:
        _zones[engine] = (time.monotonic(), names)


def forget_zones(session: Session) -> None:
    with _zones_lock:
        _zones.pop(session.get_bind().engine, None)
