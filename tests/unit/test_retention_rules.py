"""Retention rules, pure (rules CB-6, RT-1..RT-4): the state machine of a case, who reads and
acts at which level, offers bounded by level, due times, the checks of a step, the win-back
day, and the operator's retention settings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import product
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from callcenter.config import (
    RETENTION_LEVELS,
    RetentionRule,
    RulesConfig,
    load_settings,
)
from callcenter.retention.rules import (
    LAST_LEVEL,
    CaseState,
    IllegalMove,
    LevelForbidden,
    Move,
    OfferAboveLevel,
    StepFields,
    StepOutcome,
    acting_level,
    allowed_outcomes,
    check_may_act,
    check_may_read,
    check_offer,
    escalation_targets,
    level_due_at,
    next_move,
    offers_for,
    step_problems,
    win_back_opening,
)
from callcenter.users.models import UserRole
from callcenter.windows.rules import is_open
from tests.unit.strategies import DEFAULT_WINDOWS, FAST, NEW_YORK, SHANGHAI

RULES = RetentionRule()
ESCALATE_TO = (None, 1, 2, 3)


def expected_move(
    state: CaseState, level: int, outcome: StepOutcome, escalate_to: int | None, skip: bool
) -> Move | None:
    """The oracle, written out case by case: None where the move is illegal."""
    if state is not CaseState.OPEN:
        return None  # closed is final
    if outcome is StepOutcome.ESCALATED:
        if level == LAST_LEVEL:
            return None
        target = level + 1 if escalate_to is None else escalate_to
        if target <= level or (not skip and target != level + 1):
            return None  # rule CB-6: level by level unless the operator allows skipping
        return Move(CaseState.OPEN, target)
    if escalate_to is not None:
        return None
    if outcome is StepOutcome.RETAINED:
        return Move(CaseState.RETAINED, level)
    # lost: only once every level was tried (rules RT-2, RT-3), unless skipping is allowed
    return Move(CaseState.LOST, level) if level == LAST_LEVEL or skip else None


@pytest.mark.parametrize(
    ("state", "level", "outcome", "escalate_to", "skip"),
    list(product(CaseState, RETENTION_LEVELS, StepOutcome, ESCALATE_TO, (False, True))),
)
def test_the_state_machine_allows_exactly_the_listed_moves(
    state: CaseState, level: int, outcome: StepOutcome, escalate_to: int | None, skip: bool
) -> None:
    expected = expected_move(state, level, outcome, escalate_to, skip)
    if expected is None:
        with pytest.raises(IllegalMove):
            next_move(state, level, outcome, escalate_to=escalate_to, allow_skip=skip)
    else:
        got = next_move(state, level, outcome, escalate_to=escalate_to, allow_skip=skip)
        assert got == expected
        assert got.closed is (got.state is not CaseState.OPEN)


@pytest.mark.parametrize(("level", "skip"), list(product(RETENTION_LEVELS, (False, True))))
def test_allowed_outcomes_and_targets_agree_with_the_state_machine(level: int, skip: bool) -> None:
    outcomes = {
        outcome
        for outcome in StepOutcome
        if expected_move(CaseState.OPEN, level, outcome, None, skip) is not None
    }
    assert set(allowed_outcomes(level, allow_skip=skip)) == outcomes
    targets = {
        to
        for to in RETENTION_LEVELS
        if expected_move(CaseState.OPEN, level, StepOutcome.ESCALATED, to, skip) is not None
    }
    assert set(escalation_targets(level, allow_skip=skip)) == targets


def test_illegal_moves_say_why() -> None:
    with pytest.raises(IllegalMove, match="skips no level"):
        next_move(CaseState.OPEN, 1, StepOutcome.ESCALATED, escalate_to=3)
    with pytest.raises(IllegalMove, match="last level"):
        next_move(CaseState.OPEN, 3, StepOutcome.ESCALATED)
    with pytest.raises(IllegalMove, match="escalate it to level 2"):
        next_move(CaseState.OPEN, 1, StepOutcome.LOST)
    with pytest.raises(IllegalMove, match="closed"):
        next_move(CaseState.RETAINED, 2, StepOutcome.RETAINED)


@FAST
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(StepOutcome)), st.sampled_from(ESCALATE_TO)),
        max_size=8,
    ),
    skip=st.booleans(),
)
def test_a_case_only_goes_up_and_closes_once(
    steps: list[tuple[StepOutcome, int | None]], skip: bool
) -> None:
    # rule CB-6: whatever is tried, a case climbs the levels (one at a time unless the
    # operator allows skipping), never comes down, and a closed case stays as it closed.
    state, level = CaseState.OPEN, 1
    for outcome, escalate_to in steps:
        try:
            move = next_move(state, level, outcome, escalate_to=escalate_to, allow_skip=skip)
        except IllegalMove:
            continue
        assert state is CaseState.OPEN
        assert move.level >= level
        if not skip:
            assert move.level - level in (0, 1)
        if move.state is CaseState.LOST and not skip:
            assert move.level == LAST_LEVEL
        state, level = move.state, move.level
    assert level in RETENTION_LEVELS


# -- roles and levels ---------------------------------------------------------------------------

READS = {
    UserRole.AGENT: 1,
    UserRole.SUPERVISOR: 2,
    UserRole.RETENTION_LEAD: 3,
    UserRole.MANAGER: 3,
    UserRole.ADMIN: 3,
    UserRole.SYSTEM: 0,
}
ACTS = {UserRole.AGENT: 1, UserRole.SUPERVISOR: 2, UserRole.RETENTION_LEAD: 3}


@pytest.mark.parametrize(("role", "level"), list(product(UserRole, RETENTION_LEVELS)))
def test_each_level_is_read_and_recorded_by_its_role_and_above(role: UserRole, level: int) -> None:
    if level <= READS[role]:
        check_may_read(role, level)
    else:
        with pytest.raises(LevelForbidden, match=f"level-{level}"):
            check_may_read(role, level)
    if level <= ACTS.get(role, 0):
        check_may_act(role, level)
    else:
        with pytest.raises(LevelForbidden, match=str(role)):
            check_may_act(role, level)


@pytest.mark.parametrize(("role", "level"), list(product(UserRole, RETENTION_LEVELS)))
def test_an_offer_is_allowed_from_its_lowest_level_up(role: UserRole, level: int) -> None:
    # rules RT-1..RT-3: wider offers at higher levels
    acting = acting_level(role)
    for offer in RULES.offers:
        if acting is not None and offer.lowest_level <= acting:
            check_offer(offer, acting)
        else:
            with pytest.raises(OfferAboveLevel) as refused:
                check_offer(offer, acting)
            message = str(refused.value)
            assert offer.code in message and f"level {offer.lowest_level}" in message
    assert offers_for(acting, RULES) == [
        o for o in RULES.offers if acting is not None and o.lowest_level <= acting
    ]


def test_the_default_catalogue_widens_with_each_level() -> None:
    sizes = [len(offers_for(level, RULES)) for level in RETENTION_LEVELS]
    assert sizes == sorted(sizes) and sizes[0] > 0 and sizes[-1] == len(RULES.offers)
    assert {o.lowest_level for o in RULES.offers} == set(RETENTION_LEVELS)


# -- due times ----------------------------------------------------------------------------------


@FAST
@given(
    since=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from([SHANGHAI, NEW_YORK]),
)
def test_a_level_is_due_the_configured_elapsed_time_after_the_last_outcome(
    since: datetime, zone: ZoneInfo
) -> None:
    # rules RT-2, RT-3: 24 h and 48 h of elapsed time, also across a DST change
    local = since.astimezone(zone)
    assert level_due_at(2, since=local, rules=RULES) - since == timedelta(hours=24)
    assert level_due_at(3, since=local, rules=RULES) - since == timedelta(hours=48)
    assert level_due_at(2, since=local, rules=RULES).tzinfo is UTC
    custom = RetentionRule(level_2_within=timedelta(hours=4), level_3_within=timedelta(days=5))
    assert level_due_at(3, since=since, rules=custom) - since == timedelta(days=5)


# -- the win-back day ---------------------------------------------------------------------------


def test_a_win_back_call_starts_at_the_first_window_of_the_day() -> None:
    opens = win_back_opening(date(2027, 3, 1), SHANGHAI, DEFAULT_WINDOWS)
    assert opens == datetime(2027, 3, 1, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai, rule CB-5


@FAST
@given(
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    zone=st.sampled_from([SHANGHAI, NEW_YORK]),
)
def test_the_win_back_opening_is_the_first_open_instant_of_that_local_day(
    day: date, zone: ZoneInfo
) -> None:
    opens = win_back_opening(day, zone, DEFAULT_WINDOWS)
    assert opens.astimezone(zone).date() == day
    assert is_open(opens, zone, DEFAULT_WINDOWS)
    # nothing earlier that day was open: the first window starts at 08:30 every day
    assert opens.astimezone(zone).time() == time(8, 30)


# -- the fields of a step -----------------------------------------------------------------------

TODAY = date(2026, 11, 25)


def problems(**kwargs: object) -> set[str]:
    kwargs.setdefault("reason_code", "price")
    step = StepFields(**kwargs)  # type: ignore[arg-type]
    return {field for field, _ in step_problems(step, today=TODAY, rules=RULES)}


def test_a_complete_step_has_no_problem() -> None:
    assert problems(outcome=StepOutcome.RETAINED) == set()
    assert (
        problems(outcome=StepOutcome.RETAINED, offer_code="discount_10_6m", offer_accepted=True)
        == set()
    )
    assert (
        problems(outcome=StepOutcome.ESCALATED, offer_code="discount_10_6m", offer_accepted=False)
        == set()
    )
    assert problems(outcome=StepOutcome.ESCALATED, escalate_to=2) == set()
    assert problems(outcome=StepOutcome.LOST, win_back=False) == set()
    assert (
        problems(outcome=StepOutcome.LOST, win_back=True, win_back_on=TODAY + timedelta(days=1))
        == set()
    )
    assert problems(outcome=StepOutcome.RETAINED, reason_code="other", reason_text="装修") == set()


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"reason_code": "weather"}, {"reason_code"}),
        ({"reason_code": "other"}, {"reason_text"}),  # the customer's own words
        ({"offer_code": "gold_bar", "offer_accepted": True}, {"offer_code"}),
        ({"offer_code": "discount_10_6m"}, {"offer_accepted"}),
        ({"offer_accepted": True}, {"offer_accepted"}),
        ({"escalate_to": 2}, {"escalate_to"}),
        ({"win_back": True}, {"win_back"}),
        ({"win_back_on": date(2027, 1, 1)}, {"win_back_on"}),
    ],
)
def test_a_retained_step_with_a_wrong_field_names_it(
    kwargs: dict[str, object], fields: set[str]
) -> None:
    assert problems(outcome=StepOutcome.RETAINED, **kwargs) == fields


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({}, {"win_back"}),  # rule RT-4: asked whether they might come back
        ({"win_back": True}, {"win_back_on"}),
        ({"win_back": False, "win_back_on": date(2027, 1, 1)}, {"win_back_on"}),
        ({"win_back": True, "win_back_on": TODAY}, {"win_back_on"}),  # a later day
        ({"win_back": True, "win_back_on": TODAY + timedelta(days=731)}, {"win_back_on"}),
        (
            {"win_back": False, "offer_code": "discount_10_6m", "offer_accepted": True},
            {"offer_accepted"},  # accepted, yet lost
        ),
    ],
)
def test_a_lost_step_with_a_wrong_field_names_it(
    kwargs: dict[str, object], fields: set[str]
) -> None:
    assert problems(outcome=StepOutcome.LOST, **kwargs) == fields


# -- the operator's settings --------------------------------------------------------------------


def test_the_reasons_taxonomy_is_extended_never_shrunk() -> None:
    rules = RetentionRule(
        reasons=[  # type: ignore[list-item]
            {"code": "construction", "zh": "施工影响", "en": "Building work"},
            {"code": "price", "zh": "价格太高", "en": "Too expensive"},
        ]
    )
    codes = [reason.code for reason in rules.reasons]
    assert codes[:7] == [reason.code for reason in RULES.reasons]  # the defaults stay
    assert codes[-1] == "construction"
    price = rules.reason("price")
    assert price is not None and price.zh == "价格太高"


@pytest.mark.parametrize(
    ("retention", "words"),
    [
        (
            {
                "offers": [
                    {
                        "code": "a",
                        "zh": "甲",
                        "en": "A",
                        "kind": "discount",
                        "cost_yuan": 1,
                        "lowest_level": 4,
                    }
                ]
            },
            "less than or equal to 3",
        ),
        (
            {
                "offers": [
                    {
                        "code": "a",
                        "zh": "甲",
                        "en": "A",
                        "kind": "discount",
                        "cost_yuan": 1,
                        "lowest_level": 1,
                    }
                ]
                * 2
            },
            "used twice",
        ),
        ({"reasons": [{"code": "Bad Code", "zh": "甲", "en": "A"}]}, "pattern"),
        ({"level_2_within": "PT0S"}, "greater"),
    ],
)
def test_a_bad_retention_setting_is_refused(retention: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        RulesConfig(retention=retention)  # type: ignore[arg-type]


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_RULES__RETENTION__LEVEL_2_WITHIN", "PT12H")
    monkeypatch.setenv("CALLCENTER_RULES__RETENTION__ALLOW_SKIP_LEVELS", "true")
    rules = load_settings().rules.retention
    assert rules.level_2_within == timedelta(hours=12)
    assert rules.level_3_within == timedelta(hours=48)  # the default stays
    assert rules.allow_skip_levels is True
