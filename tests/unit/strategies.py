"""Hypothesis strategies and brute-force oracles shared by the unit tests (rule CB-5).

The oracles step through time minute by minute. That is exact for the window sets built here:
every window boundary is a whole minute and so is every offset change of the zones under test,
so each open or closed stretch lasts at least a minute and any half-open span of a minute or
more contains a point of the grid `t, t + 1 min, ...`, whatever the phase of `t`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from callcenter.config import RulesConfig, WindowSpec
from callcenter.windows.rules import is_open

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = (SHANGHAI, NEW_YORK)

DEFAULT_WINDOWS: tuple[WindowSpec, ...] = RulesConfig().windows  # rule CB-5

MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)  # the resolution of datetime: the instant just before

FIRST = datetime(2024, 1, 1, tzinfo=UTC)
LAST = datetime(2031, 1, 1, tzinfo=UTC)

# Fast and reproducible; no example database, so nothing is written outside tests/.
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def offset_changes(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Every instant in [first, last) where the zone's UTC offset changes, to the second."""
    found = []
    low = first
    while low < last:
        high = low + timedelta(hours=1)
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            a, b = low, high
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                if mid.astimezone(zone).utcoffset() == a.astimezone(zone).utcoffset():
                    a = mid
                else:
                    b = mid
            found.append(b)
        low = high
    return found


NEW_YORK_CHANGES = offset_changes(NEW_YORK, FIRST, LAST)
# The two changes the brief names: spring forward and fall back in 2026.
SPRING_FORWARD_2026 = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
FALL_BACK_2026 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 02:00 EDT -> 01:00 EST

# Windows that sit in, on or across the hour New York skips (02:00-03:00 in March) and the
# hour it repeats (01:00-02:00 in November).
DST_WINDOW_SETS: tuple[tuple[tuple[time, time], ...], ...] = (
    ((time(1, 0), time(2, 0)),),
    ((time(2, 0), time(3, 0)),),
    ((time(2, 15), time(2, 45)),),
    ((time(1, 30), time(2, 30)),),
    ((time(2, 30), time(3, 30)),),
    ((time(1, 0), time(2, 0)), (time(2, 0), time(3, 0))),
    ((time(0, 30), time(1, 30)), (time(2, 15), time(2, 45)), (time(3, 0), time(4, 0))),
    ((time(1, 59), time(2, 1)), (time(8, 30), time(12, 0))),
    ((time(0, 0), time(1, 0)), (time(1, 0), time(23, 59))),
)

_SPECIAL_WALLS = [time(h, m) for h in range(5) for m in (0, 15, 30, 45)] + [time(23, 59)]


def build_windows(pairs: Sequence[tuple[time, time]]) -> tuple[WindowSpec, ...]:
    """Windows as the application builds them: validated (and sorted) by RulesConfig."""
    specs = tuple(WindowSpec(start=start, end=end) for start, end in pairs)
    return RulesConfig(windows=specs).windows


def _minute_of_day(minute: int) -> time:
    return time(minute // 60, minute % 60)


walls = st.one_of(
    st.integers(min_value=0, max_value=24 * 60 - 1).map(_minute_of_day),
    st.sampled_from(_SPECIAL_WALLS),
)


@st.composite
def random_window_sets(draw: st.DrawFn) -> tuple[WindowSpec, ...]:
    """1-3 non-overlapping windows from random whole-minute times, some of them touching."""
    count = draw(st.integers(min_value=1, max_value=3))
    points = sorted(draw(st.lists(walls, min_size=2 * count, max_size=2 * count, unique=True)))
    pairs = []
    for i in range(count):
        start = points[2 * i]
        if i and draw(st.booleans()):
            start = points[2 * i - 1]  # touches the window before it
        pairs.append((start, points[2 * i + 1]))
    return build_windows(pairs)


window_sets = st.one_of(
    st.just(DEFAULT_WINDOWS),
    st.sampled_from(DST_WINDOW_SETS).map(build_windows),
    random_window_sets(),
)

zones = st.sampled_from(ZONES)

random_instants = st.datetimes(
    min_value=FIRST.replace(tzinfo=None),
    max_value=LAST.replace(tzinfo=None) - timedelta(days=10),
    timezones=st.just(UTC),
)

_jitters = st.one_of(
    st.sampled_from(
        [timedelta(0), TICK, -TICK, timedelta(seconds=1), -timedelta(seconds=1), MINUTE, -MINUTE]
    ),
    st.timedeltas(min_value=-timedelta(hours=3), max_value=timedelta(hours=3)),
    st.timedeltas(min_value=-timedelta(hours=36), max_value=timedelta(hours=36)),
)

near_changes = st.builds(
    lambda change, jitter: change + jitter,
    st.sampled_from([SPRING_FORWARD_2026, FALL_BACK_2026, *NEW_YORK_CHANGES]),
    _jitters,
)

_days_near_changes = st.builds(
    lambda change, shift: change.date() + timedelta(days=shift),
    st.sampled_from(NEW_YORK_CHANGES),
    st.integers(min_value=-1, max_value=1),
)
_any_day = st.dates(min_value=FIRST.date(), max_value=LAST.date() - timedelta(days=10))


def wall_instant(day: date, wall: time, fold: int, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which the wall clock in `zone` reads `day wall` (fold picks)."""
    return datetime.combine(day, wall, tzinfo=zone).replace(fold=fold).astimezone(UTC)


def instants_for(zone: ZoneInfo, windows: Sequence[WindowSpec]) -> st.SearchStrategy[datetime]:
    """Random instants, instants near New York's offset changes, and instants on or a tick
    around a window boundary on the wall clock (often on the days of those changes)."""
    boundaries = sorted({w.start for w in windows} | {w.end for w in windows})
    on_boundaries = st.builds(
        lambda day, wall, fold, jitter: wall_instant(day, wall, fold, zone) + jitter,
        st.one_of(_days_near_changes, _any_day),
        st.sampled_from(boundaries),
        st.sampled_from([0, 1]),
        st.sampled_from([timedelta(0), TICK, -TICK, timedelta(seconds=1), -timedelta(seconds=1)]),
    )
    return st.one_of(random_instants, near_changes, on_boundaries)


def as_zone(at: datetime, zone: ZoneInfo, which: int) -> datetime:
    """The same instant expressed in UTC, in the customer's zone or at a fixed offset."""
    if which == 0:
        return at
    if which == 1:
        return at.astimezone(zone)
    offset = at.astimezone(zone).utcoffset()
    assert offset is not None
    return at.astimezone(timezone(offset))


def utc_delta(later: datetime, earlier: datetime) -> timedelta:
    """Elapsed time between two instants (never wall-clock arithmetic in one zone)."""
    return later.astimezone(UTC) - earlier.astimezone(UTC)


def grid(start: datetime, end: datetime, step: timedelta = MINUTE) -> list[datetime]:
    points = []
    at, end = start.astimezone(UTC), end.astimezone(UTC)  # elapsed time, not wall-clock
    while at < end:
        points.append(at)
        at += step
    return points


def assert_closed_between(
    start: datetime, end: datetime, zone: ZoneInfo, windows: Sequence[WindowSpec]
) -> None:
    """Brute force: no window is open anywhere in [start, end)."""
    for at in grid(start, end):
        assert not is_open(at, zone, windows), f"open at {at} ({at.astimezone(zone)})"


def assert_open_between(
    start: datetime, end: datetime, zone: ZoneInfo, windows: Sequence[WindowSpec]
) -> None:
    """Brute force: a window is open everywhere in [start, end)."""
    for at in grid(start, end):
        assert is_open(at, zone, windows), f"closed at {at} ({at.astimezone(zone)})"
    if end > start:
        assert is_open(end.astimezone(UTC) - TICK, zone, windows)
