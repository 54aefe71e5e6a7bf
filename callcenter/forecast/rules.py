"""Capacity forecast as pure functions: which callbacks miss a deadline if the roster stays as it
is, and how many more agent-hours each calling window would need (rules CB-1..CB-5).

The model:

- Horizon: the rest of today and all of tomorrow, in the default zone. Capacity comes from
  its calling windows (rule CB-5): a window with `agents` rostered serves
  `capacity = floor(agents × length / AHT)` calls, at an even pace: the k-th call (from 0)
  starts `k × AHT / agents` after the window opens (or after now, for the window that is
  open now).
- A callback is callable in a window from its `available_at` on and while its customer's own
  window is open too: a customer in another zone is served in the part of the rostered window
  that overlaps their window.
- The queue's order (earliest hard limit, then target, then id, as the claim takes them):
  each callback takes the next call of the earliest window in which it is callable when that
  call comes, and is called at that call's start (or when it becomes callable, if later).
- The SLA watch expires a callback at its hard limit, so a callback whose turn would come
  after its hard limit is never called: it misses its hard limit and its call goes to the
  next callback in the queue.
- A callback called after its `due_at` misses its target. One not called by its
  `hard_due_at` misses its hard limit. One not called within the horizon misses the first of
  its deadlines that falls within the horizon; if neither does, it is carried beyond.
- Extra agent-hours (one extra call is one AHT of agent time), per window:
  - for the hard limits, every hard-limit miss that could be called in time (it is callable
    in some window before its hard limit) needs one extra call in the earliest such window;
  - for the targets, the same simulation is run again, except that a callback whose call
    would come after its target does not take it: it needs an extra call in the earliest
    window in which it is callable by its target (when no window allows that, its hard limit
    is kept as above). Misses that no number of agents can avoid are not counted.

Everything here is O(n log n) in the number of callbacks (the sort; the rest is linear, times
the number of windows in the horizon, four by default). Instants of callbacks are POSIX
seconds so that 100,000 of them are compared without datetime arithmetic; zones are handled
once per zone, not once per callback.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.config import ForecastRule
from callcenter.windows.rules import Window, window_intervals

_MICROSECOND = timedelta(microseconds=1)
_HOUR_SECONDS = 3600.0

Pieces = tuple[tuple[float, float], ...]


class MissedDeadline(StrEnum):
    TARGET = "target"  # due_at
    HARD_LIMIT = "hard_limit"  # hard_due_at


# (id, zone, available_at, due_at, hard_due_at), instants as POSIX seconds: what the
# simulation reads, straight from the database's rows.
CallbackRow = tuple[int, str, float, float, float]


class OpenCallback(NamedTuple):
    """One open agent callback (a `CallbackRow` with names); instants are POSIX seconds."""

    id: int
    zone: str
    available_at: float
    due_at: float
    hard_due_at: float

    @classmethod
    def at(
        cls,
        id: int,
        zone: str,
        *,
        available_at: datetime,
        due_at: datetime,
        hard_due_at: datetime,
    ) -> OpenCallback:
        """Built from aware datetimes."""
        return cls(id, zone, available_at.timestamp(), due_at.timestamp(), hard_due_at.timestamp())


@dataclass(frozen=True, slots=True)
class HorizonWindow:
    """One calling window of the horizon, in the default zone: the roster's key (day, local
    start time) and the part of it still ahead, in UTC."""

    day: date
    window_start: time
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class HandlingTime:
    """The average handling time (AHT) the forecast uses, and where it came from."""

    duration: timedelta
    samples: int
    measured: bool


def handling_time(*, samples: int, mean_seconds: float | None, rule: ForecastRule) -> HandlingTime:
    """The measured mean when there are enough samples of it, else the configured default."""
    if mean_seconds is None or samples < rule.min_handling_samples or mean_seconds <= 0:
        return HandlingTime(rule.default_handling_time, samples, measured=False)
    duration = timedelta(seconds=round(mean_seconds, 6))
    return HandlingTime(max(duration, _MICROSECOND), samples, measured=True)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def horizon_windows(
    now: datetime, zone: ZoneInfo, windows: Sequence[Window]
) -> tuple[list[HorizonWindow], datetime]:
    """The calling windows (rule CB-5) of the rest of today and of tomorrow in `zone`, each cut
    to start no earlier than `now`; and the end of the horizon (midnight after tomorrow)."""
    today = now.astimezone(zone).date()
    horizon_end = _local_midnight(today + timedelta(days=2), zone)
    found: list[HorizonWindow] = []
    for day in (today, today + timedelta(days=1)):
        day_start, day_end = _local_midnight(day, zone), _local_midnight(day + timedelta(1), zone)
        # One window at a time: two windows that touch stay two roster entries.
        for spec in sorted(windows, key=lambda w: w.start):
            for opens, closes in window_intervals(day_start, day_end, zone, [spec]):
                if closes > now:
                    found.append(HorizonWindow(day, spec.start, max(opens, now), closes))
    found.sort(key=lambda w: w.starts_at)
    return found, horizon_end


def _overlap(
    windows: Sequence[HorizonWindow], intervals: Sequence[tuple[datetime, datetime]]
) -> list[Pieces]:
    """For each window, the parts of it inside `intervals` (both sorted), as POSIX seconds."""
    result: list[Pieces] = []
    for window in windows:
        parts = tuple(
            (max(opens, window.starts_at).timestamp(), min(closes, window.ends_at).timestamp())
            for opens, closes in intervals
            if opens < window.ends_at and closes > window.starts_at
        )
        result.append(parts)
    return result


def zone_pieces(
    zones: Iterable[str],
    *,
    windows: Sequence[HorizonWindow],
    horizon_end: datetime,
    default_zone: str,
    calling_windows: Sequence[Window],
) -> dict[str, list[Pieces]]:
    """For each zone, the parts of each horizon window in which its customers may be called:
    where the rostered (default-zone) window and the customer's own window are both open."""
    default: list[Pieces] = [((w.starts_at.timestamp(), w.ends_at.timestamp()),) for w in windows]
    found: dict[str, list[Pieces]] = {default_zone: default}
    if not windows:
        return found
    start = windows[0].starts_at
    for name in zones:
        if name in found:
            continue
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            # Intake only stores known zones; an unknown one is called on the default's clock.
            found[name] = default
            continue
        found[name] = _overlap(windows, window_intervals(start, horizon_end, zone, calling_windows))
    return found


class Miss(NamedTuple):
    """A callback predicted to miss a deadline. `predicted_at` is when it is called (POSIX
    seconds), None when it is not called within the horizon (or expires first).
    `avoidable`: more agents could prevent it (it is callable before that deadline)."""

    callback: CallbackRow
    deadline: MissedDeadline
    predicted_at: float | None
    avoidable: bool


@dataclass(frozen=True, slots=True)
class WindowLoad:
    window: HorizonWindow
    agents: int
    capacity: int  # calls
    demand: int  # callbacks callable in the window and not called in an earlier one
    assigned: int  # calls the window makes
    shortfall: int  # callable in the window, not called in it for want of agents
    extra_calls_for_hard_limits: int
    extra_calls_for_targets: int
    handling: timedelta

    def _hours(self, calls: int) -> float:
        return calls * self.handling.total_seconds() / _HOUR_SECONDS

    @property
    def extra_agent_hours_for_hard_limits(self) -> float:
        return self._hours(self.extra_calls_for_hard_limits)

    @property
    def extra_agent_hours_for_targets(self) -> float:
        return self._hours(self.extra_calls_for_targets)


@dataclass(frozen=True, slots=True)
class Forecast:
    windows: list[WindowLoad]
    misses: list[Miss]  # in queue order, the first `miss_limit` of them
    missing_hard_limit: int
    missing_target_only: int
    callbacks: int
    called: int  # called within the horizon
    carried: int  # not called within the horizon, both deadlines after it
    horizon_end: datetime
    handling: timedelta


_Entry = tuple[int, Pieces, float, float, bool]


class _Zone:
    """A zone's windows for the inner loop, and where the simulation stands in them."""

    __slots__ = ("entries", "opens", "windows", "size", "first_opens", "full", "full_t", "waits")

    def __init__(self, pieces_by_window: list[Pieces]) -> None:
        # Each window it can be called in: (index, pieces, first opening, last closing, whether
        # it is one piece).
        self.entries: list[_Entry] = [
            (j, pieces, pieces[0][0], pieces[-1][1], len(pieces) == 1)
            for j, pieces in enumerate(pieces_by_window)
            if pieces
        ]
        self.opens = [entry[2] for entry in self.entries]
        self.windows = [entry[0] for entry in self.entries]
        self.size = len(self.entries)
        self.first_opens = self.opens[0] if self.entries else -math.inf
        # Windows fill in order and stay full: how many of its first windows are full, as it
        # is (`full`) and in the targets' run (`full_t`). A callback waits in those without a
        # look at each; the count goes to `waits`, a difference array over the zone's windows.
        self.full = self.full_t = 0
        self.waits = [0] * (self.size + 1)


def _first_at_or_after(pieces: Pieces, instant: float) -> float:
    """The first moment at or after `instant` inside `pieces`; -1 when there is none."""
    for opens, closes in pieces:
        if closes > instant:
            return opens if opens > instant else instant
    return -1.0


def forecast(
    callbacks: Iterable[CallbackRow],
    *,
    windows: Sequence[HorizonWindow],
    horizon_end: datetime,
    agents: Mapping[tuple[date, time], int],
    handling: timedelta,
    default_zone: str,
    calling_windows: Sequence[Window],
    in_queue_order: bool = False,
    miss_limit: int | None = None,
) -> Forecast:
    """Simulate the queue over the horizon's windows (see the module's docstring).

    `in_queue_order`: the caller guarantees the callbacks come by hard limit, target, id (as
    the database returns them), so they are not sorted again. `miss_limit`: list only the
    first (most urgent) misses; all are counted."""
    if handling <= timedelta(0):
        raise ValueError("the average handling time must be positive")
    if in_queue_order:
        ordered = callbacks if isinstance(callbacks, list) else list(callbacks)
    else:
        ordered = sorted(callbacks, key=itemgetter(4, 3, 0))  # hard limit, target, id
    rostered = [max(0, agents.get((w.day, w.window_start), 0)) for w in windows]
    pieces_of = zone_pieces(
        {row[1] for row in ordered},
        windows=windows,
        horizon_end=horizon_end,
        default_zone=default_zone,
        calling_windows=calling_windows,
    )
    zones = {name: _Zone(pieces) for name, pieces in pieces_of.items()}
    per_call = handling // _MICROSECOND
    starts = [w.starts_at.timestamp() for w in windows]
    capacity = [
        count * ((w.ends_at - w.starts_at) // _MICROSECOND) // per_call  # integers: exact
        for w, count in zip(windows, rostered, strict=True)
    ]
    step = [handling.total_seconds() / count if count else 0.0 for count in rostered]
    end = horizon_end.timestamp()
    n = len(windows)
    # Two runs side by side: the queue as it is (`used`), and the one in which nobody is
    # called after their target (`used_t`), for the extra hours the targets need.
    used, used_t = [0] * n, [0] * n
    demand, shortfall, extra_hard, extra_target = [0] * n, [0] * n, [0] * n, [0] * n
    misses: list[Miss] = []
    limit = len(ordered) if miss_limit is None else miss_limit
    called_count = carried = lost = late = listed = 0
    target, hard_limit = MissedDeadline.TARGET, MissedDeadline.HARD_LIMIT
    first_at_or_after = _first_at_or_after
    for row in ordered:
        _, name, release, due, hard = row
        zone = zones[name]
        size = zone.size
        # The first of the zone's windows in which it can be called (`first`), and when.
        if release <= zone.first_opens:
            first, first_at = 0, zone.first_opens
        else:
            entries = zone.entries
            first, first_at = 0, -1.0
            while first < size and release >= entries[first][3]:
                first += 1
            if first < size:
                _, pieces, opens, _, single = entries[first]
                if release <= opens:
                    first_at = opens
                else:
                    first_at = release if single else first_at_or_after(pieces, release)
        goal = due if 0 <= first_at <= due < end else hard  # the deadline of the targets' run

        # As it is: the next call of the earliest window with room, if it comes in time.
        called = -1.0
        if 0 <= first_at <= hard:
            full, zone_windows = zone.full, zone.windows
            while full < size and used[zone_windows[full]] >= capacity[zone_windows[full]]:
                full += 1
            zone.full = full
            reach = bisect_right(zone.opens, hard)  # its windows that open by its hard limit
            k = first
            if full > first:
                zone.waits[first] += 1
                zone.waits[reach if reach < full else full] -= 1
                k = full
            while k < reach:
                j, pieces, opens, closes, single = zone.entries[k]
                demand[j] += 1
                count = used[j]
                if count < capacity[j]:
                    turn = starts[j] + count * step[j]
                    callable_at = first_at if k == first else opens
                    if turn < callable_at:
                        turn = callable_at
                    if single:
                        at = turn if turn < closes else -1.0
                    else:
                        at = first_at_or_after(pieces, turn)
                    if 0 <= at <= hard:
                        used[j] = count + 1
                        called = at
                        break
                    shortfall[j] += 1
                    if at > hard:
                        break  # its turn comes after its hard limit: the SLA watch expires it
                    # its customer's window closes before its turn: a later window
                else:
                    shortfall[j] += 1
                k += 1

        # The targets' run: the same, but only calls that come by `goal` are taken.
        if 0 <= first_at <= goal:
            full, zone_windows = zone.full_t, zone.windows
            while full < size and used_t[zone_windows[full]] >= capacity[zone_windows[full]]:
                full += 1
            zone.full_t = full
            reach = bisect_right(zone.opens, goal) if full < size else 0
            k = first if first > full else full
            while k < reach:
                j, pieces, opens, closes, single = zone.entries[k]
                count = used_t[j]
                if count < capacity[j]:
                    turn = starts[j] + count * step[j]
                    callable_at = first_at if k == first else opens
                    if turn < callable_at:
                        turn = callable_at
                    if single:
                        at = turn if turn < closes else -1.0
                    else:
                        at = first_at_or_after(pieces, turn)
                    if 0 <= at <= goal:
                        used_t[j] = count + 1
                        break
                    if at > goal:
                        k = reach
                        break
                k += 1
            if k >= reach and goal < end:  # no call in time: one more, in its first window
                extra_target[zone.windows[first]] += 1

        if called >= 0:
            called_count += 1
            if called > due:
                late += 1
                if listed < limit:
                    misses.append(Miss(row, target, called, 0 <= first_at <= due))
                    listed += 1
        elif hard < end:
            lost += 1
            in_time = 0 <= first_at <= hard
            if in_time:
                extra_hard[zone.windows[first]] += 1
            if listed < limit:
                misses.append(Miss(row, hard_limit, None, in_time))
                listed += 1
        elif due < end:
            late += 1
            if listed < limit:
                misses.append(Miss(row, target, None, 0 <= first_at <= due))
                listed += 1
        else:
            carried += 1

    for zone in zones.values():
        waiting = 0
        for index, j in enumerate(zone.windows):
            waiting += zone.waits[index]
            demand[j] += waiting
            shortfall[j] += waiting

    loads = [
        WindowLoad(
            window=w,
            agents=rostered[j],
            capacity=capacity[j],
            demand=demand[j],
            assigned=used[j],
            shortfall=shortfall[j],
            extra_calls_for_hard_limits=extra_hard[j],
            extra_calls_for_targets=extra_target[j],
            handling=handling,
        )
        for j, w in enumerate(windows)
    ]
    return Forecast(
        windows=loads,
        misses=misses,
        missing_hard_limit=lost,
        missing_target_only=late,
        callbacks=len(ordered),
        called=called_count,
        carried=carried,
        horizon_end=horizon_end,
        handling=handling,
    )
