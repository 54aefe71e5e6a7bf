"""The capacity forecast's simulation on hand-made cases whose answers are worked out by hand
(calling windows, rule CB-5; the queue's order, hard limit then target, rules CB-1..CB-4), and
the fast simulation checked against a plain one on random cases."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.config import ForecastRule, RulesConfig, WindowSpec
from callcenter.forecast.rules import (
    Forecast,
    MissedDeadline,
    OpenCallback,
    handling_time,
    horizon_windows,
    zone_pieces,
)
from callcenter.forecast.rules import forecast as simulate

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT = RulesConfig()
MORNING_ONLY = RulesConfig(windows=(WindowSpec(start=time(8, 30), end=time(12, 0)),))
AHT = timedelta(minutes=6)
TODAY = date(2026, 11, 25)  # a Wednesday; Shanghai has no daylight saving
TOMORROW = date(2026, 11, 26)
MORNING, AFTERNOON = time(8, 30), time(14, 30)


def cst(day: date, hour: int, minute: int = 0) -> datetime:
    """Wall-clock time in Shanghai, as UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


def callback(
    id: int,
    *,
    due: datetime,
    hard: datetime,
    available: datetime | None = None,
    zone: str = "Asia/Shanghai",
) -> OpenCallback:
    return OpenCallback.at(
        id, zone, available_at=available or cst(TODAY, 8), due_at=due, hard_due_at=hard
    )


def run(
    callbacks: Sequence[OpenCallback],
    *,
    now: datetime,
    agents: Mapping[tuple[date, time], int],
    config: RulesConfig = DEFAULT,
    handling: timedelta = AHT,
    miss_limit: int | None = None,
) -> Forecast:
    windows, end = horizon_windows(now, SHANGHAI, config.windows)
    return simulate(
        callbacks,
        windows=windows,
        horizon_end=end,
        agents=agents,
        handling=handling,
        default_zone="Asia/Shanghai",
        calling_windows=config.windows,
        miss_limit=miss_limit,
    )


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def test_the_horizon_is_the_rest_of_today_and_tomorrow() -> None:
    # At 10:00 the morning window is open: only its remaining two hours count (rule CB-5).
    windows, end = horizon_windows(cst(TODAY, 10), SHANGHAI, DEFAULT.windows)
    assert [(w.day, w.window_start, w.starts_at, w.ends_at) for w in windows] == [
        (TODAY, MORNING, cst(TODAY, 10), cst(TODAY, 12)),
        (TODAY, AFTERNOON, cst(TODAY, 14, 30), cst(TODAY, 20, 30)),
        (TOMORROW, MORNING, cst(TOMORROW, 8, 30), cst(TOMORROW, 12)),
        (TOMORROW, AFTERNOON, cst(TOMORROW, 14, 30), cst(TOMORROW, 20, 30)),
    ]
    assert end == cst(date(2026, 11, 27), 0)
    # After the last window of the day only tomorrow is left.
    windows, _ = horizon_windows(cst(TODAY, 21), SHANGHAI, DEFAULT.windows)
    assert [(w.day, w.window_start) for w in windows] == [
        (TOMORROW, MORNING),
        (TOMORROW, AFTERNOON),
    ]


def test_two_agents_serve_a_window_at_an_even_pace() -> None:
    # 08:30-12:00 is 210 minutes: 2 agents x 210 / 6 = 70 calls, one every 3 minutes.
    # Ten callbacks due at 08:40: calls at 08:30, 08:33, 08:36, 08:39 are in time, the
    # other six (08:42 ... 08:57) are late for their target but well within their hard limit.
    callbacks = [callback(i, due=cst(TODAY, 8, 40), hard=cst(TODAY, 12)) for i in range(1, 11)]
    result = run(
        callbacks, now=cst(TODAY, 8, 30), agents={(TODAY, MORNING): 2}, config=MORNING_ONLY
    )

    today, tomorrow = result.windows
    assert (today.agents, today.capacity, today.demand, today.assigned, today.shortfall) == (
        2,
        70,
        10,
        10,
        0,
    )
    assert (tomorrow.agents, tomorrow.capacity, tomorrow.demand) == (0, 0, 0)
    assert result.called == 10
    assert [(m.callback.id, m.deadline, at(m.predicted_at)) for m in result.misses] == [
        (i, MissedDeadline.TARGET, cst(TODAY, 8, 30 + 3 * (i - 1))) for i in range(5, 11)
    ]
    assert all(m.avoidable for m in result.misses)
    assert today.extra_calls_for_hard_limits == 0
    # Six more calls by 08:40, 6 minutes each: 0.6 agent-hours.
    assert today.extra_calls_for_targets == 6
    assert today.extra_agent_hours_for_targets == pytest.approx(0.6)


def test_shortfall_and_the_extra_agent_hours_it_takes() -> None:
    # 100 callbacks due at 10:00, hard limit 12:00; 70 calls fit in the window (see above).
    # Calls 0..30 start by 10:00 (08:30 + 3 x 30 = 10:00): 31 in time.
    # Calls 31..69 start 10:03 ... 11:57: 39 miss their target only.
    # The last 30 get no call before 12:00: they miss their hard limit (the SLA watch expires
    # them), and 30 more calls of 6 minutes are 3 agent-hours.
    # To meet every target, all 100 calls must start by 10:00: 69 more calls, 6.9 agent-hours.
    callbacks = [callback(i, due=cst(TODAY, 10), hard=cst(TODAY, 12)) for i in range(1, 101)]
    result = run(
        callbacks, now=cst(TODAY, 8, 30), agents={(TODAY, MORNING): 2}, config=MORNING_ONLY
    )

    today = result.windows[0]
    assert (today.capacity, today.demand, today.assigned, today.shortfall) == (70, 100, 70, 30)
    hard = [m for m in result.misses if m.deadline is MissedDeadline.HARD_LIMIT]
    late = [m for m in result.misses if m.deadline is MissedDeadline.TARGET]
    assert [m.callback.id for m in hard] == list(range(71, 101))
    assert all(m.predicted_at is None and m.avoidable for m in hard)
    assert [m.callback.id for m in late] == list(range(32, 71))
    assert at(late[0].predicted_at) == cst(TODAY, 10, 3)
    assert at(late[-1].predicted_at) == cst(TODAY, 11, 57)
    assert (result.missing_hard_limit, result.missing_target_only) == (30, 39)
    assert today.extra_calls_for_hard_limits == 30
    assert today.extra_agent_hours_for_hard_limits == pytest.approx(3.0)
    assert today.extra_calls_for_targets == 69
    assert today.extra_agent_hours_for_targets == pytest.approx(6.9)
    # Tomorrow's window is after their hard limit: no demand there.
    assert result.windows[1].demand == 0


def test_no_agent_can_save_a_hard_limit_before_the_first_window() -> None:
    # 21:00: today's windows are over. A's hard limit, 08:00 tomorrow, comes before the first
    # window in which it can be called (08:30): it is lost whatever the roster, and needs no
    # extra hours. B (hard limit 12:00 tomorrow) could be called; nobody is rostered.
    # C's target falls within the horizon, its hard limit after it; D's deadlines both after.
    day_after = date(2026, 11, 27)
    a = callback(1, due=cst(TODAY, 22), hard=cst(TOMORROW, 8))
    b = callback(2, due=cst(TOMORROW, 10), hard=cst(TOMORROW, 12))
    c = callback(3, due=cst(TOMORROW, 22), hard=cst(day_after, 12))
    d = callback(4, due=cst(day_after, 12), hard=cst(day_after, 18))
    result = run([d, c, b, a], now=cst(TODAY, 21), agents={})

    assert [(m.callback.id, m.deadline, m.predicted_at, m.avoidable) for m in result.misses] == [
        (1, MissedDeadline.HARD_LIMIT, None, False),
        (2, MissedDeadline.HARD_LIMIT, None, True),
        (3, MissedDeadline.TARGET, None, True),
    ]
    assert (result.called, result.carried) == (0, 1)
    morning, afternoon = result.windows
    assert morning.demand == 3  # B, C, D; A expired before the window opened
    assert (morning.extra_calls_for_hard_limits, afternoon.extra_calls_for_hard_limits) == (1, 0)
    # Targets: B and C in the morning (by 10:00 and by 22:00); D's target is beyond the horizon
    # but it takes no call either, since nobody is rostered: it is not counted.
    assert morning.extra_calls_for_targets == 2
    assert morning.extra_agent_hours_for_hard_limits == pytest.approx(0.1)


def test_a_customer_in_another_zone_is_called_where_both_windows_are_open() -> None:
    # New York (EST, UTC-5) is 13 hours behind Shanghai in November. Its 14:30-20:30 window is
    # 03:30-09:30 in Shanghai, its 08:30-12:00 window 21:30-01:00: so a New York customer can
    # be called only 08:30-09:30 of Shanghai's morning window, never in the afternoon one.
    now = cst(TODAY, 8, 30)
    windows, end = horizon_windows(now, SHANGHAI, DEFAULT.windows)
    pieces = zone_pieces(
        ["America/New_York"],
        windows=windows,
        horizon_end=end,
        default_zone="Asia/Shanghai",
        calling_windows=DEFAULT.windows,
    )["America/New_York"]
    seconds = [tuple((at(p), at(q)) for p, q in parts) for parts in pieces]
    assert seconds == [
        ((cst(TODAY, 8, 30), cst(TODAY, 9, 30)),),
        (),
        ((cst(TOMORROW, 8, 30), cst(TOMORROW, 9, 30)),),
        (),
    ]

    # NY1 is the most urgent and is called first, at 08:30. Then 30 Shanghai callbacks take
    # the calls up to 10:00. NY2's turn (10:03) comes after its customer's window closed at
    # 09:30; the afternoon never opens for it; it is called tomorrow at 08:30, after its
    # target (today 20:00): a target miss that one extra call this morning would avoid.
    ny1 = callback(100, due=cst(TODAY, 12), hard=cst(TODAY, 12), zone="America/New_York")
    local = [callback(i, due=cst(TODAY, 20), hard=cst(TODAY, 20)) for i in range(1, 31)]
    ny2 = callback(101, due=cst(TODAY, 20), hard=cst(TOMORROW, 12), zone="America/New_York")
    agents = {(TODAY, MORNING): 2, (TODAY, AFTERNOON): 2, (TOMORROW, MORNING): 2}
    result = run([ny2, *local, ny1], now=now, agents=agents)

    assert [(m.callback.id, m.deadline, at(m.predicted_at)) for m in result.misses] == [
        (101, MissedDeadline.TARGET, cst(TOMORROW, 8, 30))
    ]
    assert result.misses[0].avoidable
    morning, afternoon, tomorrow, _ = result.windows
    assert (morning.demand, morning.assigned, morning.shortfall) == (32, 31, 1)
    assert (afternoon.demand, afternoon.assigned) == (0, 0)
    assert (tomorrow.demand, tomorrow.assigned) == (1, 1)
    assert morning.extra_calls_for_targets == 1
    assert sum(w.extra_calls_for_hard_limits for w in result.windows) == 0


def test_a_callback_is_called_when_it_becomes_available() -> None:
    # Available at 11:00 (a retry time): the first call that suits it starts then.
    late = callback(1, available=cst(TODAY, 11), due=cst(TODAY, 10, 59), hard=cst(TODAY, 20))
    result = run([late], now=cst(TODAY, 8, 30), agents={(TODAY, MORNING): 1})
    assert [(m.deadline, at(m.predicted_at), m.avoidable) for m in result.misses] == [
        (MissedDeadline.TARGET, cst(TODAY, 11), False)
    ]
    # Unavoidable misses ask for no extra hours.
    assert sum(w.extra_calls_for_targets for w in result.windows) == 0


def test_a_window_that_is_open_now_counts_from_now() -> None:
    # 10:00-12:00 with 2 agents and 6 minutes a call: 40 calls.
    result = run([], now=cst(TODAY, 10), agents={(TODAY, MORNING): 2})
    assert result.windows[0].capacity == 40


def test_handling_time_falls_back_to_the_default_without_history() -> None:
    rule = ForecastRule()
    none = handling_time(samples=0, mean_seconds=None, rule=rule)
    assert (none.duration, none.measured) == (timedelta(minutes=6), False)
    few = handling_time(samples=3, mean_seconds=120.0, rule=rule)
    assert (few.duration, few.measured) == (timedelta(minutes=6), False)
    enough = handling_time(samples=10, mean_seconds=300.0, rule=rule)
    assert (enough.duration, enough.measured, enough.samples) == (timedelta(minutes=5), True, 10)


def test_a_longer_handling_time_means_fewer_calls() -> None:
    # 4 minutes a call: 2 agents x 210 / 4 = 105 calls; 7 minutes: 60.
    quick = run(
        [], now=cst(TODAY, 8, 30), agents={(TODAY, MORNING): 2}, handling=timedelta(minutes=4)
    )
    slow = run(
        [], now=cst(TODAY, 8, 30), agents={(TODAY, MORNING): 2}, handling=timedelta(minutes=7)
    )
    assert (quick.windows[0].capacity, slow.windows[0].capacity) == (105, 60)


# ---------------------------------------------------------------------------------------
# The fast simulation against a plain one, written the way the module's docstring reads
# ---------------------------------------------------------------------------------------

ZONES = ("Asia/Shanghai", "Asia/Tokyo", "America/New_York", "Asia/Dubai", "Nowhere/Unknown")


def reference(
    callbacks: Sequence[OpenCallback],
    *,
    now: datetime,
    agents: Mapping[tuple[date, time], int],
    handling: timedelta,
) -> tuple[list[tuple[int, MissedDeadline, float | None, bool]], list[tuple[int, ...]], int, int]:
    """Every callback looks at every window in turn; no shortcuts."""
    windows, horizon_end = horizon_windows(now, SHANGHAI, DEFAULT.windows)
    end = horizon_end.timestamp()
    pieces_of = zone_pieces(
        {c.zone for c in callbacks},
        windows=windows,
        horizon_end=horizon_end,
        default_zone="Asia/Shanghai",
        calling_windows=DEFAULT.windows,
    )
    n = len(windows)
    rostered = [agents.get((w.day, w.window_start), 0) for w in windows]
    aht = handling.total_seconds()
    capacity = [
        int(a * round((w.ends_at - w.starts_at).total_seconds() * 1e6) // round(aht * 1e6))
        for w, a in zip(windows, rostered, strict=True)
    ]

    def turn(j: int, count: int) -> float:
        return windows[j].starts_at.timestamp() + count * aht / rostered[j]

    def callable_from(zone: str, j: int, instant: float) -> float | None:
        for opens, closes in pieces_of[zone][j]:
            if closes > instant:
                return max(opens, instant)
        return None

    ordered = sorted(callbacks, key=lambda c: (c.hard_due_at, c.due_at, c.id))
    used, used_t = [0] * n, [0] * n
    demand, shortfall, extra_hard, extra_target = [0] * n, [0] * n, [0] * n, [0] * n
    misses: list[tuple[int, MissedDeadline, float | None, bool]] = []
    called_count = carried = 0
    for c in ordered:
        firsts = [
            (j, at)
            for j in range(n)
            if (at := callable_from(c.zone, j, c.available_at)) is not None
        ]
        first_j, first_at = firsts[0] if firsts else (-1, None)
        called = None
        for j, at in firsts:
            if at > c.hard_due_at:
                break
            demand[j] += 1
            if used[j] < capacity[j]:
                when = callable_from(c.zone, j, max(turn(j, used[j]), c.available_at))
                if when is not None and when <= c.hard_due_at:
                    used[j] += 1
                    called = when
                    break
                shortfall[j] += 1
                if when is not None:
                    break
            else:
                shortfall[j] += 1
        if called is not None:
            called_count += 1
            if called > c.due_at:
                on_time = first_at is not None and first_at <= c.due_at
                misses.append((c.id, MissedDeadline.TARGET, called, on_time))
        elif c.hard_due_at < end:
            can = first_at is not None and first_at <= c.hard_due_at
            misses.append((c.id, MissedDeadline.HARD_LIMIT, None, can))
            if can:
                extra_hard[first_j] += 1
        elif c.due_at < end:
            can = first_at is not None and first_at <= c.due_at
            misses.append((c.id, MissedDeadline.TARGET, None, can))
        else:
            carried += 1
        # The targets' run.
        if first_at is None:
            continue
        goal = c.due_at if first_at <= c.due_at < end else c.hard_due_at
        taken = False
        for j, at in firsts:
            if at > goal:
                break
            if used_t[j] < capacity[j]:
                when = callable_from(c.zone, j, max(turn(j, used_t[j]), c.available_at))
                if when is not None and when <= goal:
                    used_t[j] += 1
                    taken = True
                    break
                if when is not None:
                    break
        if not taken and first_at <= goal < end:
            extra_target[first_j] += 1
    loads = [
        (rostered[j], capacity[j], demand[j], used[j], shortfall[j], extra_hard[j], extra_target[j])
        for j in range(n)
    ]
    return misses, loads, called_count, carried


@pytest.mark.parametrize("seed", range(60))
def test_the_fast_simulation_agrees_with_the_plain_one(seed: int) -> None:
    rng = random.Random(seed)
    now = cst(TODAY, rng.choice([7, 8, 10, 13, 15, 21]), rng.choice([0, 17, 45]))
    agents = {
        (day, start): rng.choice([0, 0, 1, 2, 3, 8])
        for day in (TODAY, TOMORROW)
        for start in (MORNING, AFTERNOON)
    }
    handling = timedelta(seconds=rng.choice([90, 240, 360, 701]))
    hour = 3600.0
    base = now.timestamp()
    callbacks = []
    for i in range(rng.choice([5, 60, 400])):
        available = base + rng.uniform(-30, 40) * hour
        due = base + rng.uniform(-10, 50) * hour
        hard = due + rng.choice([0.0, rng.uniform(0, 30) * hour])
        if rng.random() < 0.1:  # ties on both deadlines, ordered by id
            due, hard = base + 5 * hour, base + 9 * hour
        zone = rng.choice(ZONES)
        callbacks.append(OpenCallback(i, zone, available, due, hard))

    limit = rng.choice([None, 0, 3])
    result = run(callbacks, now=now, agents=agents, handling=handling, miss_limit=limit)
    misses, loads, called, carried = reference(callbacks, now=now, agents=agents, handling=handling)

    assert [
        (m.callback[0], m.deadline, m.predicted_at, m.avoidable) for m in result.misses
    ] == misses[:limit]
    hard = sum(1 for m in misses if m[1] is MissedDeadline.HARD_LIMIT)
    assert (result.missing_hard_limit, result.missing_target_only) == (hard, len(misses) - hard)
    assert [
        (
            w.agents,
            w.capacity,
            w.demand,
            w.assigned,
            w.shortfall,
            w.extra_calls_for_hard_limits,
            w.extra_calls_for_targets,
        )
        for w in result.windows
    ] == loads
    assert (result.called, result.carried) == (called, carried)
