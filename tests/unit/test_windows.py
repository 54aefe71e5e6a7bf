"""Calling windows (rule CB-5): examples on the DST days, and properties checked against a
minute-by-minute brute-force oracle, for Asia/Shanghai and America/New_York."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config import WindowSpec
from callcenter.windows.rules import (
    NaiveInstant,
    call_slots,
    is_open,
    next_close,
    next_open,
    open_zones,
    window_intervals,
)
from tests.unit.strategies import (
    DEFAULT_WINDOWS,
    FALL_BACK_2026,
    FAST,
    FIRST,
    LAST,
    MINUTE,
    NEW_YORK,
    NEW_YORK_CHANGES,
    SHANGHAI,
    SPRING_FORWARD_2026,
    TICK,
    as_zone,
    assert_closed_between,
    assert_open_between,
    build_windows,
    grid,
    instants_for,
    offset_changes,
    window_sets,
    zones,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone).replace(fold=fold)  # type: ignore[misc]


def oracle_is_open(at: datetime, zone: ZoneInfo, windows: Sequence[WindowSpec]) -> bool:
    """The wall clock computed another way: UTC reading plus the zone's offset."""
    offset = at.astimezone(zone).utcoffset()
    assert offset is not None
    wall = (at.astimezone(UTC).replace(tzinfo=None) + offset).time()
    return any(w.start <= wall < w.end for w in windows)


# --- the test fixtures themselves --------------------------------------------------------


def test_the_dst_changes_under_test_are_the_real_ones() -> None:
    # New York changes twice a year; Shanghai has had no DST since 1991.
    assert SPRING_FORWARD_2026 in NEW_YORK_CHANGES
    assert FALL_BACK_2026 in NEW_YORK_CHANGES
    assert len(NEW_YORK_CHANGES) == 2 * (LAST.year - FIRST.year)
    assert offset_changes(SHANGHAI, FIRST, LAST) == []
    assert (SPRING_FORWARD_2026 - TICK).astimezone(NEW_YORK).hour == 1
    assert SPRING_FORWARD_2026.astimezone(NEW_YORK).hour == 3
    assert FALL_BACK_2026.astimezone(NEW_YORK).hour == 1
    assert FALL_BACK_2026.astimezone(NEW_YORK).fold == 1


# --- is_open ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "zone", "expected"),
    [
        # rule CB-5 in Shanghai (UTC+8): 08:30-12:00 and 14:30-20:30, start in, end out
        (utc(2026, 6, 1, 0, 29, 59, 999999), SHANGHAI, False),
        (utc(2026, 6, 1, 0, 30), SHANGHAI, True),
        (utc(2026, 6, 1, 3, 59, 59, 999999), SHANGHAI, True),
        (utc(2026, 6, 1, 4, 0), SHANGHAI, False),
        (utc(2026, 6, 1, 6, 29, 59), SHANGHAI, False),
        (utc(2026, 6, 1, 6, 30), SHANGHAI, True),
        (utc(2026, 6, 1, 12, 29, 59, 999999), SHANGHAI, True),
        (utc(2026, 6, 1, 12, 30), SHANGHAI, False),
        (utc(2026, 6, 1, 20, 0), SHANGHAI, False),  # 04:00 next day
        # New York: 08:30 is 13:30 UTC in winter (EST) and 12:30 UTC in summer (EDT)
        (utc(2026, 3, 7, 13, 30), NEW_YORK, True),
        (utc(2026, 3, 7, 13, 29, 59, 999999), NEW_YORK, False),
        (utc(2026, 3, 8, 12, 29, 59, 999999), NEW_YORK, False),
        (utc(2026, 3, 8, 12, 30), NEW_YORK, True),
        (utc(2026, 3, 8, 13, 29), NEW_YORK, True),
        (utc(2026, 11, 1, 12, 30), NEW_YORK, False),  # 07:30 EST
        (utc(2026, 11, 1, 13, 30), NEW_YORK, True),  # 08:30 EST
        (utc(2026, 11, 1, 0, 29), NEW_YORK, True),  # 20:29 EDT on Oct 31
        (utc(2026, 11, 1, 0, 30), NEW_YORK, False),  # 20:30 EDT
        # an aware instant in another zone is the same instant
        (local(SHANGHAI, 2026, 6, 1, 21, 30), NEW_YORK, True),  # 09:30 EDT
    ],
)
def test_is_open_examples(at: datetime, zone: ZoneInfo, expected: bool) -> None:
    assert is_open(at, zone, DEFAULT_WINDOWS) is expected  # rule CB-5


@pytest.mark.parametrize(
    ("pair", "at", "expected"),
    [
        # the hour 02:00-03:00 does not exist on 2026-03-08: window 02:00-03:00 never opens
        ((time(2, 0), time(3, 0)), local(NEW_YORK, 2026, 3, 8, 1, 59, 59), False),
        ((time(2, 0), time(3, 0)), SPRING_FORWARD_2026 - TICK, False),  # 01:59:59.999999 EST
        ((time(2, 0), time(3, 0)), SPRING_FORWARD_2026, False),  # reads 03:00 EDT
        ((time(2, 0), time(3, 0)), utc(2026, 3, 9, 6, 0), True),  # 02:00 EDT the day after
        ((time(1, 0), time(2, 0)), SPRING_FORWARD_2026 - TICK, True),
        # the hour 01:00-02:00 happens twice on 2026-11-01: window 01:00-02:00 is open twice
        ((time(1, 0), time(2, 0)), local(NEW_YORK, 2026, 11, 1, 1, 0, fold=0), True),
        ((time(1, 0), time(2, 0)), local(NEW_YORK, 2026, 11, 1, 1, 0, fold=1), True),
        ((time(1, 0), time(2, 0)), FALL_BACK_2026 - TICK, True),  # 01:59:59.999999 EDT
        ((time(1, 0), time(2, 0)), FALL_BACK_2026, True),  # 01:00 EST
        ((time(1, 0), time(2, 0)), FALL_BACK_2026 + timedelta(hours=1), False),  # 02:00 EST
        ((time(2, 0), time(3, 0)), FALL_BACK_2026 + timedelta(hours=1), True),
    ],
)
def test_is_open_in_the_skipped_and_repeated_hours(
    pair: tuple[time, time], at: datetime, expected: bool
) -> None:
    assert is_open(at, NEW_YORK, build_windows([pair])) is expected  # rule CB-5


@FAST
@given(data=st.data(), zone=zones, windows=window_sets, which=st.integers(0, 2))
def test_is_open_is_the_wall_clock_in_a_window(
    data: st.DataObject,
    zone: ZoneInfo,
    windows: tuple[WindowSpec, ...],
    which: int,
) -> None:
    at = data.draw(instants_for(zone, windows))
    # rule CB-5: same answer as the oracle, whatever zone the instant is written in
    assert is_open(as_zone(at, zone, which), zone, windows) is oracle_is_open(at, zone, windows)


@pytest.mark.parametrize(
    "call",
    [
        lambda at: is_open(at, SHANGHAI, DEFAULT_WINDOWS),
        lambda at: next_open(at, SHANGHAI, DEFAULT_WINDOWS),
        lambda at: next_close(at, SHANGHAI, DEFAULT_WINDOWS),
        lambda at: window_intervals(at, at, SHANGHAI, DEFAULT_WINDOWS),
    ],
)
def test_naive_instants_are_refused(call: object) -> None:
    with pytest.raises(NaiveInstant):
        call(datetime(2026, 6, 1, 9, 0))  # type: ignore[operator]


# --- next_open / next_close: exact answers on the DST days ---------------------------------


@pytest.mark.parametrize(
    ("pairs", "at", "expected"),
    [
        # default windows, the night before the change and the morning of it
        (None, utc(2026, 3, 8, 2, 0), utc(2026, 3, 8, 12, 30)),
        (None, utc(2026, 3, 7, 5, 0), utc(2026, 3, 7, 13, 30)),
        (None, utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 13, 30)),
        # a window inside the skipped hour: no opening that day, the next day at 02:00 EDT
        ([(time(2, 0), time(3, 0))], utc(2026, 3, 8, 5, 0), utc(2026, 3, 9, 6, 0)),
        ([(time(2, 15), time(2, 45))], utc(2026, 3, 7, 8, 0), utc(2026, 3, 9, 6, 15)),
        # a window across the skipped hour opens at the change itself (03:00 EDT)
        ([(time(2, 30), time(3, 30))], utc(2026, 3, 8, 5, 0), SPRING_FORWARD_2026),
        # the repeated hour: open again at 01:00 EST
        ([(time(0, 30), time(1, 30))], utc(2026, 11, 1, 5, 30), FALL_BACK_2026),
        # already open: the instant itself
        ([(time(1, 0), time(2, 0))], FALL_BACK_2026, FALL_BACK_2026),
    ],
)
def test_next_open_examples(
    pairs: list[tuple[time, time]] | None, at: datetime, expected: datetime
) -> None:
    windows = DEFAULT_WINDOWS if pairs is None else build_windows(pairs)
    assert next_open(at, NEW_YORK, windows) == expected  # rule CB-5


@pytest.mark.parametrize(
    ("pairs", "at", "expected"),
    [
        (None, utc(2026, 3, 8, 12, 30), utc(2026, 3, 8, 16, 0)),  # 12:00 EDT
        (None, utc(2026, 3, 7, 13, 30), utc(2026, 3, 7, 17, 0)),  # 12:00 EST
        # 01:30 EST, then the clock jumps from 02:00 EST to 03:00 EDT: closes at the change
        ([(time(1, 30), time(2, 30))], utc(2026, 3, 8, 6, 30), SPRING_FORWARD_2026),
        ([(time(2, 30), time(3, 30))], SPRING_FORWARD_2026, utc(2026, 3, 8, 7, 30)),
        # the repeated hour keeps 01:00-02:00 open for two real hours
        ([(time(1, 0), time(2, 0))], utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 7, 0)),
        # already closed: the instant itself
        (None, utc(2026, 11, 1, 12, 0), utc(2026, 11, 1, 12, 0)),
    ],
)
def test_next_close_examples(
    pairs: list[tuple[time, time]] | None, at: datetime, expected: datetime
) -> None:
    windows = DEFAULT_WINDOWS if pairs is None else build_windows(pairs)
    assert next_close(at, NEW_YORK, windows) == expected  # rule CB-5


def test_window_intervals_examples() -> None:
    # rule CB-5: a Shanghai day, and New York's repeated hour
    day = (utc(2026, 6, 1, 0, 0), utc(2026, 6, 1, 16, 0))
    assert window_intervals(*day, SHANGHAI, DEFAULT_WINDOWS) == [
        (utc(2026, 6, 1, 0, 30), utc(2026, 6, 1, 4, 0)),
        (utc(2026, 6, 1, 6, 30), utc(2026, 6, 1, 12, 30)),
    ]
    windows = build_windows([(time(0, 30), time(1, 30))])
    assert window_intervals(utc(2026, 11, 1, 4), utc(2026, 11, 2, 4), NEW_YORK, windows) == [
        (utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5, 30)),  # 00:30-01:30 EDT
        (utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 6, 30)),  # 01:00-01:30 EST
    ]
    # clipped to [start, end), and empty when the span is empty
    assert window_intervals(
        utc(2026, 6, 1, 1, 0), utc(2026, 6, 1, 2, 0), SHANGHAI, DEFAULT_WINDOWS
    ) == [(utc(2026, 6, 1, 1, 0), utc(2026, 6, 1, 2, 0))]
    assert window_intervals(day[1], day[0], SHANGHAI, DEFAULT_WINDOWS) == []


def test_boundaries_finer_than_a_minute_are_exact() -> None:
    # two windows half a second apart, and one that closes a microsecond before midnight
    windows = build_windows(
        [
            (time(8, 0), time(9, 0)),
            (time(9, 0, 0, 500_000), time(10, 0)),
            (time(23, 0), time(23, 59, 59, 999_999)),
        ]
    )
    day = (utc(2026, 6, 1, 0, 0), utc(2026, 6, 1, 2, 30))  # 08:00-10:30 CST
    assert window_intervals(*day, SHANGHAI, windows) == [
        (utc(2026, 6, 1, 0, 0), utc(2026, 6, 1, 1, 0)),
        (utc(2026, 6, 1, 1, 0, 0, 500_000), utc(2026, 6, 1, 2, 0)),
    ]
    assert next_open(utc(2026, 6, 1, 1, 0), SHANGHAI, windows) == utc(2026, 6, 1, 1, 0, 0, 500_000)
    midnight = utc(2026, 6, 1, 16, 0)  # 00:00 CST
    assert next_close(midnight - MINUTE, SHANGHAI, windows) == midnight - TICK
    assert next_open(midnight - TICK, SHANGHAI, windows) == midnight + 8 * timedelta(hours=1)


# --- next_open / next_close: properties against the brute-force oracle ---------------------


def check_next_open(at: datetime, zone: ZoneInfo, windows: Sequence[WindowSpec]) -> None:
    found = next_open(at, zone, windows)
    assert found.utcoffset() == timedelta(0)  # answers in UTC
    assert found >= at
    assert is_open(found, zone, windows)
    if found > at:
        assert not is_open(found - TICK, zone, windows)
    assert found - at < timedelta(days=3)
    assert_closed_between(at, found, zone, windows)


def check_next_close(at: datetime, zone: ZoneInfo, windows: Sequence[WindowSpec]) -> None:
    found = next_close(at, zone, windows)
    assert found.utcoffset() == timedelta(0)
    assert found >= at
    assert not is_open(found, zone, windows)
    if found > at:
        assert is_open(found - TICK, zone, windows)
    assert found - at < timedelta(days=2)
    assert_open_between(at, found, zone, windows)


_DST_EXAMPLES = [
    SPRING_FORWARD_2026,
    SPRING_FORWARD_2026 - TICK,
    FALL_BACK_2026,
    FALL_BACK_2026 - TICK,
    utc(2026, 3, 8, 2, 0),
    utc(2026, 11, 1, 2, 0),
]


@FAST
@given(data=st.data(), zone=zones, which=st.integers(0, 2))
def test_next_open_default_windows(data: st.DataObject, zone: ZoneInfo, which: int) -> None:
    at = data.draw(instants_for(zone, DEFAULT_WINDOWS))
    check_next_open(as_zone(at, zone, which), zone, DEFAULT_WINDOWS)  # rule CB-5


@FAST
@given(data=st.data(), zone=zones, which=st.integers(0, 2))
def test_next_close_default_windows(data: st.DataObject, zone: ZoneInfo, which: int) -> None:
    at = data.draw(instants_for(zone, DEFAULT_WINDOWS))
    check_next_close(as_zone(at, zone, which), zone, DEFAULT_WINDOWS)  # rule CB-5


@pytest.mark.parametrize("at", _DST_EXAMPLES)
@pytest.mark.parametrize("zone", [SHANGHAI, NEW_YORK])
def test_next_open_and_close_at_the_changes(at: datetime, zone: ZoneInfo) -> None:
    for pairs in [None, [(time(1, 0), time(2, 0))], [(time(2, 0), time(3, 0))]]:
        windows = DEFAULT_WINDOWS if pairs is None else build_windows(pairs)
        check_next_open(at, zone, windows)
        check_next_close(at, zone, windows)


@FAST
@given(data=st.data(), zone=zones, windows=window_sets, which=st.integers(0, 2))
def test_next_open_random_windows(
    data: st.DataObject, zone: ZoneInfo, windows: tuple[WindowSpec, ...], which: int
) -> None:
    at = data.draw(instants_for(zone, windows))
    check_next_open(as_zone(at, zone, which), zone, windows)  # rule CB-5


@FAST
@given(data=st.data(), zone=zones, windows=window_sets, which=st.integers(0, 2))
def test_next_close_random_windows(
    data: st.DataObject, zone: ZoneInfo, windows: tuple[WindowSpec, ...], which: int
) -> None:
    at = data.draw(instants_for(zone, windows))
    check_next_close(as_zone(at, zone, which), zone, windows)  # rule CB-5


# --- window_intervals -----------------------------------------------------------------------


def check_window_intervals(
    start: datetime, end: datetime, zone: ZoneInfo, windows: Sequence[WindowSpec]
) -> None:
    intervals = window_intervals(start, end, zone, windows)
    previous_close: datetime | None = None
    for opens, closes in intervals:
        assert opens.utcoffset() == timedelta(0) and closes.utcoffset() == timedelta(0)
        assert start <= opens < closes <= end  # inside [start, end)
        if previous_close is not None:
            assert previous_close < opens  # ordered, disjoint, not even touching
        previous_close = closes
        assert is_open(opens, zone, windows)
        assert is_open(closes - TICK, zone, windows)
        if opens > start:
            assert not is_open(opens - TICK, zone, windows)  # maximal on the left
        if closes < end:
            assert not is_open(closes, zone, windows)  # maximal on the right
    # brute force: open exactly inside the intervals, closed in the gaps
    for at in grid(start, end):
        inside = any(opens <= at < closes for opens, closes in intervals)
        assert is_open(at, zone, windows) is inside, at


@FAST
@given(
    data=st.data(),
    zone=zones,
    windows=window_sets,
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_window_intervals(
    data: st.DataObject, zone: ZoneInfo, windows: tuple[WindowSpec, ...], length: timedelta
) -> None:
    start = data.draw(instants_for(zone, windows))
    check_window_intervals(start, start + length, zone, windows)  # rule CB-5
    assert window_intervals(start, start - length, zone, windows) == []


@pytest.mark.parametrize("zone", [SHANGHAI, NEW_YORK])
@pytest.mark.parametrize("change", [SPRING_FORWARD_2026, FALL_BACK_2026])
def test_window_intervals_across_the_changes(zone: ZoneInfo, change: datetime) -> None:
    for pairs in [None, [(time(1, 0), time(2, 0)), (time(2, 0), time(3, 0))]]:
        windows = DEFAULT_WINDOWS if pairs is None else build_windows(pairs)
        check_window_intervals(
            change - timedelta(days=1), change + timedelta(days=1), zone, windows
        )


# --- open_zones -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 6, 1, 1, 0), ["Asia/Shanghai"]),  # 09:00 CST, 21:00 EDT
        (utc(2026, 6, 1, 13, 0), ["America/New_York"]),  # 21:00 CST, 09:00 EDT
        (utc(2026, 6, 1, 17, 0), ["Europe/London"]),  # 01:00 CST, 13:00 EDT, 18:00 BST
        (utc(2026, 1, 5, 13, 30), ["America/New_York"]),  # 21:30 CST, 08:30 EST, 13:30 GMT
        (utc(2026, 1, 5, 2, 0), ["Asia/Shanghai"]),  # 10:00 CST, 21:00 EST, 02:00 GMT
        (utc(2026, 1, 5, 1, 0), ["America/New_York", "Asia/Shanghai"]),  # 20:00 EST
    ],
)
def test_open_zones_examples(at: datetime, expected: list[str]) -> None:
    names = ["America/New_York", "Europe/London", "Asia/Shanghai"]
    assert open_zones(at, names, DEFAULT_WINDOWS) == expected  # rule CB-5


@FAST
@given(
    at=st.datetimes(
        min_value=FIRST.replace(tzinfo=None),
        max_value=LAST.replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    names=st.permutations(["Asia/Shanghai", "America/New_York", "Europe/London", "UTC"]),
    windows=window_sets,
)
def test_open_zones_keeps_order_and_filters_by_local_time(
    at: datetime, names: list[str], windows: tuple[WindowSpec, ...]
) -> None:
    found = open_zones(at, names, windows)
    assert found == [n for n in names if n in found]  # a subsequence, in the given order
    for name in names:
        assert (name in found) is oracle_is_open(at, ZoneInfo(name), windows)


# --- call_slots: the times offered to a customer who asks to be called back ----------------


@FAST
@given(
    start=instants_for(SHANGHAI, DEFAULT_WINDOWS) | instants_for(NEW_YORK, DEFAULT_WINDOWS),
    hours=st.integers(min_value=0, max_value=48),
    zone=st.sampled_from([SHANGHAI, NEW_YORK]),
    step=st.sampled_from([15, 30, 60]),
)
def test_call_slots_are_inside_windows_on_whole_steps_and_none_is_missed(
    start: datetime, hours: int, zone: ZoneInfo, step: int
) -> None:
    end = start + timedelta(hours=hours)
    slots = call_slots(start, end, zone, DEFAULT_WINDOWS, step=timedelta(minutes=step))
    for slot in slots:  # rule CB-5: only times inside a window, before the hard limit
        assert start < slot < end
        assert is_open(slot, zone, DEFAULT_WINDOWS)
        local = slot.astimezone(zone)
        assert (local.hour * 60 + local.minute) % step == 0 and local.second == 0
    assert slots == sorted(set(slots))
    # None missed: every whole step of the local clock inside a window between the two.
    expected = [
        at
        for at in grid(start.replace(second=0, microsecond=0), end)
        if start < at < end
        and is_open(at, zone, DEFAULT_WINDOWS)
        and (at.astimezone(zone).hour * 60 + at.astimezone(zone).minute) % step == 0
        and at.astimezone(zone).second == 0
    ]
    assert slots == expected


def test_call_slots_on_a_known_afternoon() -> None:
    # 11:40 Shanghai, limit 15:10: 11:45 in the morning window, then 14:30 … 15:00.
    start = datetime(2026, 11, 25, 3, 40, tzinfo=UTC)
    end = datetime(2026, 11, 25, 7, 10, tzinfo=UTC)
    slots = call_slots(start, end, SHANGHAI, DEFAULT_WINDOWS, step=timedelta(minutes=15))
    assert [s.astimezone(SHANGHAI).strftime("%H:%M") for s in slots] == [
        "11:45",
        "14:30",
        "14:45",
        "15:00",
    ]
