"""Calling windows (rule CB-5) as pure functions of an instant and a time zone.

A window is open at an instant when the customer's local wall-clock time at that instant lies
in one of the daily windows, start included, end excluded. Instants are aware datetimes; the
answers are in UTC.

Open-ness only changes at instants where the wall clock reads a window boundary, or where the
zone's offset changes (a daylight-saving jump can skip over a boundary or repeat an hour). So
the next instant with a given open-ness is found among those candidates, which are few and
exact: no stepping through time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

_SEARCH_DAYS = 8  # every day has a window, so the answer is always within a day or two


class Window(Protocol):
    @property
    def start(self) -> time: ...

    @property
    def end(self) -> time: ...


class NaiveInstant(ValueError):
    """A datetime without an offset cannot be placed in time."""


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise NaiveInstant(f"{at.isoformat()} has no UTC offset")
    return at.astimezone(UTC)


def is_open(at: datetime, zone: ZoneInfo, windows: Sequence[Window]) -> bool:
    """Is a calling window open for a customer in `zone` at instant `at`? (rule CB-5)"""
    local = _require_aware(at).astimezone(zone).time().replace(tzinfo=None)
    return any(w.start <= local < w.end for w in windows)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _transitions(day: date, zone: ZoneInfo) -> list[datetime]:
    """The instants around local `day` where the zone's UTC offset changes (to the second).

    Zones change offset at most a few times a year, never twice within two days, so a change
    shows as different offsets at the two ends of the span.
    """
    low = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=15)
    high = low + timedelta(hours=54)
    before = _offset(low, zone)
    if before == _offset(high, zone):
        return []
    while high - low > timedelta(seconds=1):
        mid = (low + (high - low) / 2).replace(microsecond=0)
        if mid <= low:
            mid = low + timedelta(seconds=1)
        if _offset(mid, zone) == before:
            low = mid
        else:
            high = mid
    return [high]


def _wall_instants(day: date, wall: time, zone: ZoneInfo) -> Iterator[datetime]:
    """Every instant (0, 1 or 2 of them) at which the wall clock in `zone` reads `day wall`."""
    naive = datetime.combine(day, wall)
    for fold in (0, 1):
        candidate = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if candidate.astimezone(zone).replace(tzinfo=None) == naive:
            yield candidate


@lru_cache(maxsize=4096)
def _day_candidates(day: date, zone: ZoneInfo, walls: tuple[time, ...]) -> tuple[datetime, ...]:
    """Instants near local `day` where open-ness can change: boundaries and offset changes."""
    found: set[datetime] = set(_transitions(day, zone))
    for wall in walls:
        found.update(_wall_instants(day, wall, zone))
    return tuple(sorted(found))


def _candidates(at: datetime, zone: ZoneInfo, windows: Sequence[Window]) -> Iterator[datetime]:
    """Candidate instants at or after `at`, in order, day after day."""
    walls = tuple(sorted({w.start for w in windows} | {w.end for w in windows}))
    day = at.astimezone(zone).date() - timedelta(days=1)
    pending: list[datetime] = []
    for _ in range(_SEARCH_DAYS):
        pending.extend(c for c in _day_candidates(day, zone, walls) if c >= at)
        pending.sort()
        # Every candidate of a later day is at or after this bound (offsets are within
        # ±15 h), so the ones before it are final and in order.
        horizon = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) - timedelta(
            hours=15
        )
        while pending and pending[0] < horizon:
            yield pending.pop(0)
        day += timedelta(days=1)
    yield from pending


def _next_with(
    at: datetime, zone: ZoneInfo, windows: Sequence[Window], want_open: bool
) -> datetime:
    at = _require_aware(at)
    if is_open(at, zone, windows) == want_open:
        return at
    for candidate in _candidates(at, zone, windows):
        if is_open(candidate, zone, windows) == want_open:
            return candidate
    raise ValueError("no calling window within a week: check the window settings")


def next_open(at: datetime, zone: ZoneInfo, windows: Sequence[Window]) -> datetime:
    """The earliest instant at or after `at` at which a window is open (rule CB-5)."""
    return _next_with(at, zone, windows, want_open=True)


def next_close(at: datetime, zone: ZoneInfo, windows: Sequence[Window]) -> datetime:
    """The earliest instant at or after `at` at which no window is open."""
    return _next_with(at, zone, windows, want_open=False)


def window_intervals(
    start: datetime, end: datetime, zone: ZoneInfo, windows: Sequence[Window]
) -> list[tuple[datetime, datetime]]:
    """The open intervals `[opens, closes)` within `[start, end)`, in UTC, in order."""
    return list(iter_window_intervals(start, end, zone, windows))


def iter_window_intervals(
    start: datetime, end: datetime, zone: ZoneInfo, windows: Sequence[Window]
) -> Iterator[tuple[datetime, datetime]]:
    """`window_intervals`, one at a time: a caller that needs only the first few stops early."""
    start, end = _require_aware(start), _require_aware(end)
    cursor = start
    while cursor < end:
        opens = next_open(cursor, zone, windows)
        if opens >= end:
            break
        closes = min(next_close(opens, zone, windows), end)
        yield opens, closes
        cursor = closes


def open_zones(at: datetime, zones: Sequence[str], windows: Sequence[Window]) -> list[str]:
    """The zones, among `zones`, whose calling window is open at `at`."""
    return [name for name in zones if is_open(at, ZoneInfo(name), windows)]


def call_slots(
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    windows: Sequence[Window],
    *,
    step: timedelta,
    limit: int = 500,
) -> list[datetime]:
    """The instants after `start` and before `end` that are inside a window and fall on a
    whole `step` of the customer's local clock (10:00, 10:15, …): the times a person may
    pick to be called back at (rule CB-5). In UTC, in order, at most `limit` of them."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    slots: list[datetime] = []
    for opens, closes in window_intervals(start, end, zone, windows):
        local = opens.astimezone(zone)
        into_day = timedelta(
            hours=local.hour,
            minutes=local.minute,
            seconds=local.second,
            microseconds=local.microsecond,
        )
        slot = opens + (-into_day) % step  # the first whole step at or after the opening
        while slot < closes:
            if len(slots) >= limit:
                return slots
            if slot > start:
                slots.append(slot)
            slot += step
    return slots
