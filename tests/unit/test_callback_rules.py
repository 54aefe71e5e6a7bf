"""Callback rules: deadlines (CB-1..CB-4, CB-7), the state machine, attempts and retries
(CB-5 windows), and the customer's "call me back later"."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import product
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.callbacks.rules import (
    ALLOWED_TRANSITIONS,
    CALL_BACK_MIN_LEAD,
    CALLBACK_FOR_EVENT,
    CLOSED_BY,
    TERMINAL,
    AttemptOutcome,
    CallbackStatus,
    CallBackTimeRefused,
    EventType,
    IllegalTransition,
    attempt_counts,
    attempt_effect,
    check_call_back_time,
    check_transition,
    deadlines_for,
    next_retry_at,
    valid_call_back_windows,
)
from callcenter.config import (
    AttemptPolicy,
    CallbackType,
    ChurnRule,
    ProactiveRule,
    RulesConfig,
    TypeRule,
    WindowSpec,
)
from callcenter.windows.rules import is_open, next_close, next_open, window_intervals
from tests.unit.strategies import (
    DEFAULT_WINDOWS,
    FALL_BACK_2026,
    FAST,
    MINUTE,
    NEW_YORK,
    SHANGHAI,
    SPRING_FORWARD_2026,
    TICK,
    as_zone,
    assert_closed_between,
    build_windows,
    grid,
    instants_for,
    utc_delta,
    window_sets,
    zones,
)

H = timedelta(hours=1)
DEFAULT = RulesConfig()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def rules_with(windows: tuple[WindowSpec, ...], **changes: object) -> RulesConfig:
    return RulesConfig(windows=windows, **changes)  # type: ignore[arg-type]


def is_window_end(at: datetime, zone: ZoneInfo, windows: tuple[WindowSpec, ...]) -> bool:
    return is_open(at - TICK, zone, windows) and not is_open(at, zone, windows)


# --- deadlines --------------------------------------------------------------------------

# (available after the anchor, due after the anchor, hard limit after the anchor)
EXPECTED_DEFAULT_DEADLINES = {
    CallbackType.INSTALL: (timedelta(0), 24 * H, 72 * H),  # rule CB-1
    CallbackType.REPAIR: (timedelta(0), 24 * H, 48 * H),  # rule CB-2
    CallbackType.COMPLAINT: (timedelta(0), 48 * H, 48 * H),  # rule CB-3
    # rule CB-7: day 5 of an install not completed in 4 days; fault not restored in 4 h;
    # complaint contact within 30 minutes
    CallbackType.INSTALL_DELAY: (96 * H, 96 * H + 8 * H, 96 * H + 24 * H),
    CallbackType.FAULT_DELAY: (4 * H, 5 * H, 8 * H),
    CallbackType.COMPLAINT_CONTACT: (timedelta(0), timedelta(minutes=30), 24 * H),
    # rule RT-4: from the first window of the day the lost customer named
    CallbackType.WIN_BACK: (timedelta(0), 24 * H, 7 * 24 * H),
}


def test_every_non_churn_type_has_expected_deadlines() -> None:
    assert set(EXPECTED_DEFAULT_DEADLINES) == set(CallbackType) - {CallbackType.CHURN}


@FAST
@given(
    kind=st.sampled_from(sorted(EXPECTED_DEFAULT_DEADLINES)),
    data=st.data(),
    zone=zones,
)
def test_default_deadlines_count_from_the_anchor(
    kind: CallbackType, data: st.DataObject, zone: ZoneInfo
) -> None:
    anchor = data.draw(instants_for(zone, DEFAULT_WINDOWS))
    got = deadlines_for(kind, anchor, zone, DEFAULT)
    available, due, hard = EXPECTED_DEFAULT_DEADLINES[kind]
    assert got.anchor_at == anchor
    assert utc_delta(got.available_at, anchor) == available
    assert utc_delta(got.due_at, anchor) == due
    assert utc_delta(got.hard_due_at, anchor) == hard
    assert got.available_at <= got.due_at <= got.hard_due_at


@FAST
@given(
    kind=st.sampled_from(list(CallbackType)),
    data=st.data(),
    zone=zones,
    which=st.sampled_from([0, 2]),  # UTC or a fixed offset (see the xfail below for zones)
)
def test_deadlines_are_ordered_for_every_type(
    kind: CallbackType, data: st.DataObject, zone: ZoneInfo, which: int
) -> None:
    anchor = data.draw(instants_for(zone, DEFAULT_WINDOWS))
    got = deadlines_for(kind, as_zone(anchor, zone, which), zone, DEFAULT)
    assert anchor <= got.available_at <= got.due_at <= got.hard_due_at


@FAST
@given(
    kind=st.sampled_from(sorted(EXPECTED_DEFAULT_DEADLINES)),
    target_minutes=st.integers(0, 10_000),
    extra_minutes=st.integers(1, 10_000),
    install_after=st.timedeltas(min_value=MINUTE, max_value=timedelta(days=10)),
    fault_after=st.timedeltas(min_value=MINUTE, max_value=timedelta(days=1)),
    anchor=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_deadlines_follow_the_configured_numbers(
    kind: CallbackType,
    target_minutes: int,
    extra_minutes: int,
    install_after: timedelta,
    fault_after: timedelta,
    anchor: datetime,
) -> None:
    # every number is the operator's to change; the deadlines follow them
    target = timedelta(minutes=target_minutes)
    hard_limit = target + timedelta(minutes=extra_minutes)
    rules = RulesConfig(
        types={kind: TypeRule(target=target, hard_limit=hard_limit)},
        proactive=ProactiveRule(
            install_not_completed_after=install_after, fault_not_restored_after=fault_after
        ),
    )
    trigger = {
        CallbackType.INSTALL_DELAY: install_after,
        CallbackType.FAULT_DELAY: fault_after,
    }.get(kind, timedelta(0))
    got = deadlines_for(kind, anchor, SHANGHAI, rules)
    assert got.available_at - anchor == trigger
    assert got.due_at - got.available_at == target
    assert got.hard_due_at - got.available_at == hard_limit


def check_churn(anchor: datetime, zone: ZoneInfo, rules: RulesConfig) -> tuple[datetime, datetime]:
    """Rule CB-4: due at the first opening, hard limit the end of the first window that still
    has `min_first_window` left."""
    windows = rules.windows
    got = deadlines_for(CallbackType.CHURN, anchor, zone, rules)
    assert got.anchor_at == anchor
    assert got.available_at == anchor  # at once
    # due_at: the first instant at or after the anchor when a window is open
    assert got.due_at >= anchor
    assert is_open(got.due_at, zone, windows)
    if got.due_at > anchor:
        assert not is_open(got.due_at - TICK, zone, windows)
    assert_closed_between(anchor, got.due_at, zone, windows)
    # hard_due_at: a window's end, after the due time
    assert got.due_at < got.hard_due_at
    assert is_window_end(got.hard_due_at, zone, windows)
    # ...of the first window with at least min_first_window left after the anchor
    intervals = window_intervals(anchor, got.hard_due_at, zone, windows)
    assert intervals[0][0] == got.due_at
    assert intervals[-1][1] == got.hard_due_at
    opens, closes = intervals[-1]
    assert closes - opens >= rules.churn.min_first_window
    assert all(c - o < rules.churn.min_first_window for o, c in intervals[:-1])
    return got.due_at, got.hard_due_at


@FAST
@given(data=st.data(), zone=zones)
def test_churn_deadlines_default_rules(data: st.DataObject, zone: ZoneInfo) -> None:
    anchor = data.draw(instants_for(zone, DEFAULT_WINDOWS))
    _, hard = check_churn(anchor, zone, DEFAULT)  # rule CB-4
    assert hard - anchor <= DEFAULT.rule_for(CallbackType.CHURN).hard_limit


@FAST
@given(
    data=st.data(),
    zone=zones,
    windows=window_sets,
    fraction=st.one_of(st.just(1.0), st.floats(min_value=0, max_value=1)),
)
def test_churn_deadlines_random_windows(
    data: st.DataObject, zone: ZoneInfo, windows: tuple[WindowSpec, ...], fraction: float
) -> None:
    # A hard-limit cap long enough never to bite (see the xfail tests below for when the
    # default 24 h does), and a first-window minimum no longer than the shortest window.
    shortest = min(
        datetime.combine(datetime.min, w.end) - datetime.combine(datetime.min, w.start)
        for w in windows
    )
    rules = rules_with(
        windows,
        churn=ChurnRule(min_first_window=shortest * fraction),
        types={CallbackType.CHURN: TypeRule(target=timedelta(0), hard_limit=72 * H)},
    )
    anchor = data.draw(instants_for(zone, windows))
    check_churn(anchor, zone, rules)  # rule CB-4


@pytest.mark.parametrize(
    ("anchor", "due", "hard"),
    [
        # 10:00 CST: in the morning window, 2 h left: that window
        (utc(2026, 6, 1, 2, 0), utc(2026, 6, 1, 2, 0), utc(2026, 6, 1, 4, 0)),
        # 11:30 CST: only 30 min left, so the afternoon window counts as the first one
        (utc(2026, 6, 1, 3, 30), utc(2026, 6, 1, 3, 30), utc(2026, 6, 1, 12, 30)),
        # 21:00 CST: the next morning
        (utc(2026, 6, 1, 13, 0), utc(2026, 6, 2, 0, 30), utc(2026, 6, 2, 4, 0)),
        # 12:30 CST: the afternoon
        (utc(2026, 6, 1, 4, 30), utc(2026, 6, 1, 6, 30), utc(2026, 6, 1, 12, 30)),
        # 11:00 CST: exactly min_first_window (1 h) left, which is enough
        (utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 4, 0)),
        # 11:00:00.000001 CST: a tick less than 1 h left, which is not
        (utc(2026, 6, 1, 3, 0) + TICK, utc(2026, 6, 1, 3, 0) + TICK, utc(2026, 6, 1, 12, 30)),
    ],
)
def test_churn_deadlines_examples(anchor: datetime, due: datetime, hard: datetime) -> None:
    got = deadlines_for(CallbackType.CHURN, anchor, SHANGHAI, DEFAULT)  # rule CB-4
    assert (got.available_at, got.due_at, got.hard_due_at) == (anchor, due, hard)


def test_churn_hard_limit_is_never_before_due_on_a_25_hour_day() -> None:
    rules = rules_with(build_windows([(time(3, 0), time(3, 15))]))
    anchor = utc(2026, 10, 31, 7, 15)  # 03:15 EDT, just after the window closed
    got = deadlines_for(CallbackType.CHURN, anchor, NEW_YORK, rules)
    assert got.due_at == utc(2026, 11, 1, 8, 0)  # 03:00 EST, 24 h 45 min later
    assert got.due_at <= got.hard_due_at  # rule CB-4


def test_churn_limit_from_configuration_shortens_the_first_window() -> None:
    # rule CB-4: the first usable window here ends at 09:30 the next day; the configured
    # 24 h limit (08:45 the next day) is later than the due time, so it applies.
    rules = rules_with(build_windows([(time(8, 0), time(9, 30))]))
    anchor = utc(2026, 6, 1, 0, 45)  # 08:45 CST: 45 min left, less than min_first_window
    got = deadlines_for(CallbackType.CHURN, anchor, SHANGHAI, rules)
    assert got.due_at == anchor  # inside a window: at once
    assert got.hard_due_at == anchor + 24 * H
    assert got.due_at < got.hard_due_at


def test_deadlines_are_elapsed_time_for_an_anchor_in_the_customers_zone() -> None:
    anchor = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)  # the day before spring forward
    got = deadlines_for(CallbackType.INSTALL, anchor, NEW_YORK, DEFAULT)
    assert utc_delta(got.due_at, anchor) == 24 * H  # rule CB-1


# --- the state machine ----------------------------------------------------------------------

# Written out from the domain, to catch an accidental edit of ALLOWED_TRANSITIONS.
EXPECTED_EDGES = {
    (CallbackStatus.PENDING, CallbackStatus.CLAIMED),
    (CallbackStatus.PENDING, CallbackStatus.CANCELLED),
    (CallbackStatus.PENDING, CallbackStatus.EXPIRED),
    (CallbackStatus.CLAIMED, CallbackStatus.PENDING),
    (CallbackStatus.CLAIMED, CallbackStatus.COMPLETED),
    (CallbackStatus.CLAIMED, CallbackStatus.FAILED),
    (CallbackStatus.CLAIMED, CallbackStatus.EXPIRED),
    (CallbackStatus.CLAIMED, CallbackStatus.CANCELLED),
}


def test_allowed_transitions_are_the_expected_ones() -> None:
    table = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert table == EXPECTED_EDGES
    assert set(ALLOWED_TRANSITIONS) == set(CallbackStatus)
    # terminal states have no way out, every other state can reach one
    assert all(not ALLOWED_TRANSITIONS[s] for s in TERMINAL)
    assert all(ALLOWED_TRANSITIONS[s] & TERMINAL for s in set(CallbackStatus) - TERMINAL)


@pytest.mark.parametrize(("current", "wanted"), list(product(CallbackStatus, CallbackStatus)))
def test_check_transition_accepts_exactly_the_allowed_ones(
    current: CallbackStatus, wanted: CallbackStatus
) -> None:
    if (current, wanted) in EXPECTED_EDGES:
        check_transition(current, wanted)
    else:
        with pytest.raises(IllegalTransition) as caught:
            check_transition(current, wanted)
        assert (caught.value.current, caught.value.wanted) == (current, wanted)
        assert str(current) in str(caught.value) and str(wanted) in str(caught.value)


def test_events_map_to_callback_types() -> None:
    # every callback type has exactly one event that creates it, but the win-back callback:
    # a lost retention case creates that one (rule RT-4)
    assert sorted(CALLBACK_FOR_EVENT.values()) == sorted(
        set(CallbackType) - {CallbackType.WIN_BACK}
    )
    assert set(CALLBACK_FOR_EVENT) == set(EventType)
    # rule CB-7: a proactive contact is closed by the event that makes it pointless
    assert CLOSED_BY == {
        CallbackType.INSTALL_DELAY: EventType.INSTALL_COMPLETED,
        CallbackType.FAULT_DELAY: EventType.REPAIR_REPLIED,
        CallbackType.COMPLAINT_CONTACT: EventType.COMPLAINT_REPLIED,
    }


# --- retry time -----------------------------------------------------------------------------


@FAST
@given(
    data=st.data(),
    zone=zones,
    windows=window_sets,
    interval=st.one_of(
        st.just(2 * H),
        st.timedeltas(min_value=MINUTE, max_value=timedelta(hours=30)),
    ),
    which=st.sampled_from([0, 2]),  # UTC or a fixed offset (see the xfail below for zones)
)
def test_next_retry_at(
    data: st.DataObject,
    zone: ZoneInfo,
    windows: tuple[WindowSpec, ...],
    interval: timedelta,
    which: int,
) -> None:
    rules = rules_with(windows, attempts=AttemptPolicy(retry_interval=interval))
    now = data.draw(instants_for(zone, windows))
    retry = next_retry_at(as_zone(now, zone, which), zone, rules)
    # rule CB-5: in a window, after the retry interval...
    assert is_open(retry, zone, windows)
    assert retry >= now + interval
    # ...and in a later window than the one the attempt was made in
    bound = now + interval
    if is_open(now, zone, windows):
        assert any(not is_open(at, zone, windows) for at in grid(now, retry))
        bound = max(bound, next_close(now, zone, windows))
    # the earliest such instant
    if retry > bound:
        assert not is_open(retry - TICK, zone, windows)
        assert_closed_between(bound, retry, zone, windows)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 10:00 CST, in the morning window: the afternoon window, 14:30
        (utc(2026, 6, 1, 2, 0), utc(2026, 6, 1, 6, 30)),
        # 11:59 CST: 2 h later is 13:59, closed: 14:30
        (utc(2026, 6, 1, 3, 59), utc(2026, 6, 1, 6, 30)),
        # 14:30 CST: 16:30 is open, in the same window as now: the next morning
        (utc(2026, 6, 1, 6, 30), utc(2026, 6, 2, 0, 30)),
        # 13:00 CST, closed: 15:00 is open and later than the interval
        (utc(2026, 6, 1, 5, 0), utc(2026, 6, 1, 7, 0)),
    ],
)
def test_next_retry_at_examples(now: datetime, expected: datetime) -> None:
    assert next_retry_at(now, SHANGHAI, DEFAULT) == expected  # rule CB-5


def test_next_retry_at_is_elapsed_time_for_now_in_the_customers_zone() -> None:
    rules = rules_with(build_windows([(time(3, 0), time(23, 0))]))
    now = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK)  # 01:30 EST, window closed
    retry = next_retry_at(now, NEW_YORK, rules)
    assert utc_delta(retry, now) >= rules.attempts.retry_interval


# --- attempts -------------------------------------------------------------------------------

LATER = timedelta(days=30)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (AttemptOutcome.ANSWERED, CallbackStatus.COMPLETED),
        (AttemptOutcome.REFUSED, CallbackStatus.COMPLETED),
        (AttemptOutcome.DO_NOT_CALL, CallbackStatus.COMPLETED),
        (AttemptOutcome.WRONG_NUMBER, CallbackStatus.FAILED),
    ],
)
@pytest.mark.parametrize("unreached", [0, 2, 5])
def test_closing_outcomes(outcome: AttemptOutcome, status: CallbackStatus, unreached: int) -> None:
    now = utc(2026, 6, 1, 2, 0)
    effect = attempt_effect(
        outcome,
        now=now,
        unreached_so_far=unreached,
        hard_due_at=now + LATER,
        zone=SHANGHAI,
        rules=DEFAULT,
    )
    assert effect.status is status
    assert effect.available_at is None
    assert (effect.reason is None) is (outcome is AttemptOutcome.ANSWERED)


@FAST
@given(
    data=st.data(),
    zone=zones,
    windows=window_sets,
    max_attempts=st.integers(1, 6),
    outcomes=st.lists(
        st.sampled_from([AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY]),
        min_size=6,
        max_size=6,
    ),
)
def test_unanswered_attempts_until_the_last_one_fails(
    data: st.DataObject,
    zone: ZoneInfo,
    windows: tuple[WindowSpec, ...],
    max_attempts: int,
    outcomes: list[AttemptOutcome],
) -> None:
    rules = rules_with(windows, attempts=AttemptPolicy(max_attempts=max_attempts))
    now = data.draw(instants_for(zone, windows))
    hard = now + LATER
    effects = []
    for unreached in range(max_attempts):
        effect = attempt_effect(
            outcomes[unreached],
            now=now,
            unreached_so_far=unreached,
            hard_due_at=hard,
            zone=zone,
            rules=rules,
        )
        effects.append(effect)
        if effect.status is not CallbackStatus.PENDING:
            break
        assert effect.available_at is not None
        assert effect.available_at == next_retry_at(now, zone, rules)
        assert effect.available_at > now
        now = effect.available_at  # the next try is made when it is offered again
    # exactly max_attempts tries: all but the last put it back in the queue
    assert [e.status for e in effects] == [CallbackStatus.PENDING] * (max_attempts - 1) + [
        CallbackStatus.FAILED
    ]
    assert str(max_attempts) in (effects[-1].reason or "")
    assert effects[-1].available_at is None


@FAST
@given(
    data=st.data(),
    zone=zones,
    outcome=st.sampled_from([AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY]),
    hard_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
)
def test_a_retry_after_the_hard_limit_expires(
    data: st.DataObject, zone: ZoneInfo, outcome: AttemptOutcome, hard_after: timedelta
) -> None:
    now = data.draw(instants_for(zone, DEFAULT_WINDOWS))
    hard = now + hard_after
    effect = attempt_effect(
        outcome, now=now, unreached_so_far=0, hard_due_at=hard, zone=zone, rules=DEFAULT
    )
    retry = next_retry_at(now, zone, DEFAULT)
    if retry > hard:
        assert effect.status is CallbackStatus.EXPIRED
        assert effect.available_at is None
    else:
        assert effect.status is CallbackStatus.PENDING
        assert effect.available_at == retry


def test_a_retry_after_the_hard_limit_expires_example() -> None:
    now = utc(2026, 6, 1, 12, 0)  # 20:00 CST; the next try would be 08:30 tomorrow
    effect = attempt_effect(
        AttemptOutcome.NO_ANSWER,
        now=now,
        unreached_so_far=0,
        hard_due_at=utc(2026, 6, 1, 13, 0),  # 21:00 CST
        zone=SHANGHAI,
        rules=DEFAULT,
    )
    assert effect.status is CallbackStatus.EXPIRED
    # the last attempt fails, whatever the hard limit
    last = attempt_effect(
        AttemptOutcome.BUSY,
        now=now,
        unreached_so_far=DEFAULT.attempts.max_attempts - 1,
        hard_due_at=utc(2026, 6, 1, 13, 0),
        zone=SHANGHAI,
        rules=DEFAULT,
    )
    assert last.status is CallbackStatus.FAILED


# --- call back later ------------------------------------------------------------------------


def check_valid_windows(
    refused: CallBackTimeRefused,
    now: datetime,
    hard: datetime,
    zone: ZoneInfo,
    rules: RulesConfig,
) -> None:
    """The refusal lists the next windows after now and before the hard limit, up to three."""
    windows = rules.windows
    earliest = now + CALL_BACK_MIN_LEAD  # a time to call back is in the future
    expected_count = min(3, len(window_intervals(earliest, hard, zone, windows)))
    assert len(refused.valid) == expected_count
    previous = None
    for valid in refused.valid:
        assert earliest <= valid.opens < valid.closes <= hard
        assert is_open(valid.opens, zone, windows)
        assert is_open(valid.closes - TICK, zone, windows)
        if previous is not None:
            assert previous < valid.opens
            assert_closed_between(previous, valid.opens, zone, windows)
        previous = valid.closes
        # a time inside a listed window is accepted
        inside = max(valid.opens, now + TICK)
        if inside < valid.closes:
            check_call_back_time(inside, now=now, hard_due_at=hard, zone=zone, rules=rules)
    if refused.valid:
        assert refused.valid[0].opens == next_open(earliest, zone, windows)


@FAST
@given(
    data=st.data(),
    zone=zones,
    windows=window_sets,
    hard_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    requested_after=st.one_of(
        st.timedeltas(min_value=-timedelta(days=1), max_value=timedelta(days=4)),
        st.sampled_from([timedelta(0), TICK, -TICK]),
    ),
)
def test_call_back_later(
    data: st.DataObject,
    zone: ZoneInfo,
    windows: tuple[WindowSpec, ...],
    hard_after: timedelta,
    requested_after: timedelta,
) -> None:
    rules = rules_with(windows)
    now = data.draw(instants_for(zone, windows))
    hard = now + hard_after
    requested = data.draw(
        st.one_of(
            st.just(now + requested_after),
            instants_for(zone, windows),
            st.sampled_from([timedelta(0), TICK, -TICK, MINUTE]).map(lambda d: hard + d),
        )
    )
    allowed = now < requested < hard and is_open(requested, zone, windows)
    kwargs = {"now": now, "unreached_so_far": 0, "hard_due_at": hard, "zone": zone}
    if allowed:
        effect = attempt_effect(
            AttemptOutcome.CALL_BACK_LATER, call_back_at=requested, rules=rules, **kwargs
        )
        assert effect.status is CallbackStatus.PENDING
        assert effect.available_at == requested
    else:
        with pytest.raises(CallBackTimeRefused) as caught:
            attempt_effect(
                AttemptOutcome.CALL_BACK_LATER, call_back_at=requested, rules=rules, **kwargs
            )
        check_valid_windows(caught.value, now, hard, zone, rules)


@pytest.mark.parametrize(
    ("requested", "words"),
    [
        (utc(2026, 6, 1, 1, 0), "future"),  # in the past (09:00 CST)
        (utc(2026, 6, 1, 2, 0), "future"),  # now itself
        (utc(2026, 6, 1, 5, 0), "outside"),  # 13:00 CST
        (utc(2026, 6, 1, 14, 0), "outside"),  # 22:00 CST
        (utc(2026, 6, 3, 1, 0), "hard limit"),  # 09:00 CST, after the hard limit
    ],
)
def test_call_back_later_refusals(requested: datetime, words: str) -> None:
    now = utc(2026, 6, 1, 2, 0)  # 10:00 CST
    hard = utc(2026, 6, 2, 6, 0)  # 14:00 CST tomorrow
    with pytest.raises(CallBackTimeRefused) as caught:
        attempt_effect(
            AttemptOutcome.CALL_BACK_LATER,
            now=now,
            unreached_so_far=0,
            hard_due_at=hard,
            zone=SHANGHAI,
            rules=DEFAULT,
            call_back_at=requested,
        )
    assert words in caught.value.reason
    assert [(v.opens, v.closes) for v in caught.value.valid] == [
        (now + CALL_BACK_MIN_LEAD, utc(2026, 6, 1, 4, 0)),  # the rest of this morning
        (utc(2026, 6, 1, 6, 30), utc(2026, 6, 1, 12, 30)),  # this afternoon
        (utc(2026, 6, 2, 0, 30), utc(2026, 6, 2, 4, 0)),  # tomorrow morning
    ]


@pytest.mark.parametrize(
    ("requested", "allowed"),
    [
        (utc(2026, 6, 2, 2, 0) - TICK, True),
        (utc(2026, 6, 2, 2, 0), False),  # the hard limit itself: too late
        (utc(2026, 6, 2, 2, 0) + TICK, False),
        (utc(2026, 6, 2, 2, 1), False),
    ],
)
def test_call_back_later_up_to_the_hard_limit(requested: datetime, allowed: bool) -> None:
    now = utc(2026, 6, 1, 2, 0)  # 10:00 CST
    hard = utc(2026, 6, 2, 2, 0)  # 10:00 CST tomorrow, inside the morning window
    kwargs = {"now": now, "hard_due_at": hard, "zone": SHANGHAI, "rules": DEFAULT}
    if allowed:
        check_call_back_time(requested, **kwargs)  # type: ignore[arg-type]
    else:
        with pytest.raises(CallBackTimeRefused, match="hard limit"):
            check_call_back_time(requested, **kwargs)  # type: ignore[arg-type]


def test_call_back_later_needs_a_time() -> None:
    now = utc(2026, 6, 1, 13, 0)  # 21:00 CST
    hard = now + 48 * H
    with pytest.raises(CallBackTimeRefused) as caught:
        attempt_effect(
            AttemptOutcome.CALL_BACK_LATER,
            now=now,
            unreached_so_far=0,
            hard_due_at=hard,
            zone=SHANGHAI,
            rules=DEFAULT,
        )
    assert caught.value.valid == valid_call_back_windows(now, hard, SHANGHAI, DEFAULT)
    assert caught.value.valid[0].opens == utc(2026, 6, 2, 0, 30)


@pytest.mark.parametrize("requested", [SPRING_FORWARD_2026, FALL_BACK_2026])
def test_call_back_later_on_the_dst_days(requested: datetime) -> None:
    # rule CB-5: 03:00 EDT after the jump is outside 01:00-02:00; 01:00 EST (the repeated
    # hour) is inside it
    rules = rules_with(build_windows([(time(1, 0), time(2, 0))]))
    now = requested - 12 * H
    kwargs = {"now": now, "hard_due_at": now + 48 * H, "zone": NEW_YORK, "rules": rules}
    if requested == FALL_BACK_2026:
        check_call_back_time(requested, **kwargs)  # type: ignore[arg-type]
    else:
        with pytest.raises(CallBackTimeRefused):
            check_call_back_time(requested, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("outcome", list(AttemptOutcome))
def test_every_attempt_counts_and_only_unreached_ones_use_up_the_allowance(
    outcome: AttemptOutcome,
) -> None:
    unreached = outcome in (AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY)
    assert attempt_counts(2, 1, outcome) == {
        "attempt_count": 3,
        "unreached_count": 2 if unreached else 1,
    }
