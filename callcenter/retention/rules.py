"""The three-level retention flow (三级挽留) as pure functions: the state machine of a case,
who may read and act at which level, the offers a level may make, the due time of each level
and the checks of one recorded step (rules CB-6, RT-1..RT-4).

Nothing here reads the clock or the database; every instant is passed in and is aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo

from callcenter.config import RETENTION_LEVELS, OfferSpec, RetentionRule, WindowSpec
from callcenter.errors import Conflict, PermissionDenied
from callcenter.users.models import UserRole
from callcenter.windows.rules import next_open

FIRST_LEVEL = RETENTION_LEVELS[0]
LAST_LEVEL = RETENTION_LEVELS[-1]


class CaseState(StrEnum):
    OPEN = "open"  # waiting for the step of its current level
    RETAINED = "retained"  # the customer stays
    LOST = "lost"  # the customer leaves; the cancellation stands as the customer decided


class StepOutcome(StrEnum):
    """What one level recorded (rule RT-4)."""

    RETAINED = "retained"
    ESCALATED = "escalated"
    LOST = "lost"


# The explicit moves of the state machine: which outcomes a case in each state may take.
ALLOWED_OUTCOMES: dict[CaseState, frozenset[StepOutcome]] = {
    CaseState.OPEN: frozenset(StepOutcome),
    CaseState.RETAINED: frozenset(),
    CaseState.LOST: frozenset(),
}
CLOSING: dict[StepOutcome, CaseState] = {
    StepOutcome.RETAINED: CaseState.RETAINED,
    StepOutcome.LOST: CaseState.LOST,
}

LEVEL_NAMES: dict[int, str] = {
    1: "agent",  # rule RT-1
    2: "supervisor",  # rule RT-2
    3: "retention lead",  # rule RT-3
}
# The level each role acts at; supervisors and leads may also do the levels below theirs.
ACTING_LEVEL: dict[UserRole, int] = {
    UserRole.AGENT: 1,
    UserRole.SUPERVISOR: 2,
    UserRole.RETENTION_LEAD: 3,
}
# The queues each role may read: its own level and those below; managers and admins all.
READING_LEVEL: dict[UserRole, int] = {
    **ACTING_LEVEL,
    UserRole.MANAGER: LAST_LEVEL,
    UserRole.ADMIN: LAST_LEVEL,
}


class IllegalMove(Conflict):
    """A step the state machine does not allow (HTTP 409)."""


class LevelForbidden(PermissionDenied):
    """The user's role does not reach the case's level (HTTP 403)."""


class OfferAboveLevel(PermissionDenied):
    """An offer that only a higher level may make (HTTP 403)."""

    def __init__(self, offer: OfferSpec, level: int | None) -> None:
        acting = f"you act at level {level}" if level else "your role makes no offers"
        super().__init__(
            f"offer {offer.code!r} ({offer.zh} / {offer.en}) needs level {offer.lowest_level} "
            f"({LEVEL_NAMES[offer.lowest_level]}) or above; {acting}"
        )
        self.offer = offer
        self.level = level


def acting_level(role: UserRole) -> int | None:
    """The highest level a role records steps at; None: the role records none."""
    return ACTING_LEVEL.get(role)


def reading_level(role: UserRole) -> int | None:
    """The highest level whose queue a role may read; None: none."""
    return READING_LEVEL.get(role)


def check_may_read(role: UserRole, level: int) -> None:
    """Raise unless `role` may see the cases of `level` (each queue: that role and above)."""
    top = reading_level(role)
    if top is None or level > top:
        raise LevelForbidden(
            f"the level-{level} retention queue is for the {LEVEL_NAMES[level]} and above; "
            f"your role ({role}) "
            + (f"reads levels up to {top}" if top else "reads no retention cases")
        )


def check_may_act(role: UserRole, level: int) -> None:
    """Raise unless `role` may record the step of a case at `level` (rules RT-1..RT-3)."""
    top = acting_level(role)
    if top is None or level > top:
        raise LevelForbidden(
            f"a level-{level} retention step is recorded by the {LEVEL_NAMES[level]} or above; "
            f"your role ({role}) "
            + (f"acts up to level {top}" if top else "records no retention steps")
        )


def offers_for(level: int | None, rules: RetentionRule) -> list[OfferSpec]:
    """The offers a user acting at `level` may make: those whose lowest level is not above."""
    if level is None:
        return []
    return [offer for offer in rules.offers if offer.lowest_level <= level]


def check_offer(offer: OfferSpec, level: int | None) -> None:
    """Raise `OfferAboveLevel` unless a user acting at `level` may make `offer` (RT-1..RT-3)."""
    if level is None or offer.lowest_level > level:
        raise OfferAboveLevel(offer, level)


def escalation_targets(level: int, *, allow_skip: bool) -> tuple[int, ...]:
    """The levels a case at `level` may be escalated to: the next one, or with the operator's
    leave any higher one."""
    higher = tuple(n for n in RETENTION_LEVELS if n > level)
    return higher if allow_skip else higher[:1]


def allowed_outcomes(level: int, *, allow_skip: bool) -> tuple[StepOutcome, ...]:
    """The outcomes an open case at `level` may record."""
    outcomes = [StepOutcome.RETAINED]
    if escalation_targets(level, allow_skip=allow_skip):
        outcomes.append(StepOutcome.ESCALATED)
    if level == LAST_LEVEL or allow_skip:
        outcomes.append(StepOutcome.LOST)
    return tuple(outcomes)


@dataclass(frozen=True)
class Move:
    """Where a case goes after a step."""

    state: CaseState
    level: int

    @property
    def closed(self) -> bool:
        return self.state is not CaseState.OPEN


def next_move(
    state: CaseState,
    level: int,
    outcome: StepOutcome,
    *,
    escalate_to: int | None = None,
    allow_skip: bool = False,
) -> Move:
    """The case's state and level after a step with `outcome`; `IllegalMove` when the state
    machine does not allow it. Escalation goes to the next level (rule CB-6: level by level)
    unless `allow_skip`; lost closes a case only at the last level unless `allow_skip` (every
    customer is tried at every level, rules RT-2, RT-3)."""
    if outcome not in ALLOWED_OUTCOMES[state]:
        raise IllegalMove(f"the case is closed ({state}); a closed case takes no more steps")
    if outcome is StepOutcome.ESCALATED:
        targets = escalation_targets(level, allow_skip=allow_skip)
        if not targets:
            raise IllegalMove(
                f"level {level} is the last level: the case closes as retained or lost"
            )
        target = targets[0] if escalate_to is None else escalate_to
        if target not in targets:
            if target <= level:
                raise IllegalMove(f"escalate_to {target} is not above the case's level {level}")
            raise IllegalMove(
                f"escalation skips no level: a level-{level} case goes to level {targets[0]} "
                f"(rules.retention.allow_skip_levels is false)"
            )
        return Move(CaseState.OPEN, target)
    if escalate_to is not None:
        raise IllegalMove("escalate_to is only for the outcome escalated")
    if outcome is StepOutcome.LOST and level != LAST_LEVEL and not allow_skip:
        raise IllegalMove(
            f"a level-{level} case is not closed as lost: escalate it to level {level + 1}; "
            "every customer is tried at every level (rules CB-6, RT-2; "
            "rules.retention.allow_skip_levels is false)"
        )
    return Move(CLOSING[outcome], level)


def level_due_at(level: int, *, since: datetime, rules: RetentionRule) -> datetime:
    """When a case that reached `level` (2 or 3) at `since` is due: the configured time after
    the previous level's outcome. Elapsed time: added in UTC. Level 1 is due with its churn
    callback (at once, rule CB-4)."""
    return since.astimezone(UTC) + rules.level_within(level)


def local_today(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def win_back_opening(on: date, zone: ZoneInfo, windows: tuple[WindowSpec, ...]) -> datetime:
    """The first calling window opening on the customer's local day `on` (rule CB-5): when
    the win-back callback is due to start (rule RT-4)."""
    return next_open(datetime.combine(on, time(0), tzinfo=zone), zone, windows)


@dataclass(frozen=True)
class StepFields:
    """What a person records at one level (rule RT-4), as plain values."""

    outcome: StepOutcome
    reason_code: str
    reason_text: str | None = None
    offer_code: str | None = None
    offer_accepted: bool | None = None
    escalate_to: int | None = None
    win_back: bool | None = None
    win_back_on: date | None = None


def step_problems(step: StepFields, *, today: date, rules: RetentionRule) -> list[tuple[str, str]]:
    """Every problem of a step's fields, as `(field, message)`; empty when it may be recorded.
    `today` is the customer's local date (a win-back date is a later day)."""
    problems: list[tuple[str, str]] = []
    reason = rules.reason(step.reason_code)
    if reason is None:
        known = ", ".join(r.code for r in rules.reasons)
        problems.append(("reason_code", f"unknown reason {step.reason_code!r}; one of: {known}"))
    elif reason.needs_text and not step.reason_text:
        problems.append(
            ("reason_text", f"the reason {reason.code!r} needs the customer's own words")
        )
    if step.offer_code is not None:
        if rules.offer(step.offer_code) is None:
            known = ", ".join(o.code for o in rules.offers)
            problems.append(("offer_code", f"unknown offer {step.offer_code!r}; one of: {known}"))
        if step.offer_accepted is None:
            problems.append(("offer_accepted", "say whether the customer accepted the offer made"))
    elif step.offer_accepted is not None:
        problems.append(("offer_accepted", "no offer was made (offer_code is empty)"))
    if step.offer_accepted and step.outcome is not StepOutcome.RETAINED:
        problems.append(
            (
                "offer_accepted",
                f"the customer accepted the offer, yet the outcome is {step.outcome}",
            )
        )
    if step.escalate_to is not None and step.outcome is not StepOutcome.ESCALATED:
        problems.append(("escalate_to", "only with the outcome escalated"))
    if step.outcome is StepOutcome.LOST:
        # rule RT-4: a lost customer is asked whether a re-install is possible later, and when
        if step.win_back is None:
            problems.append(
                ("win_back", "a lost customer is asked whether they might come back: true or false")
            )
        elif step.win_back and step.win_back_on is None:
            problems.append(
                ("win_back_on", "the day the customer might come back is required with win_back")
            )
        elif not step.win_back and step.win_back_on is not None:
            problems.append(("win_back_on", "only when the customer might come back (win_back)"))
        if step.win_back_on is not None:
            latest = today + rules.win_back_within
            if step.win_back_on <= today:
                problems.append(("win_back_on", f"must be a day after today ({today.isoformat()})"))
            elif step.win_back_on > latest:
                problems.append(
                    (
                        "win_back_on",
                        f"must be no later than {latest.isoformat()} "
                        "(rules.retention.win_back_within)",
                    )
                )
    else:
        if step.win_back is not None:
            problems.append(("win_back", "only for the outcome lost"))
        if step.win_back_on is not None:
            problems.append(("win_back_on", "only for the outcome lost"))
    return problems
