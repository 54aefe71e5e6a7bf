"""Callback rules as pure functions: deadlines, states, attempts (chapter 4 §1, CB rules).

Nothing here reads the clock or the database; every instant is passed in and is aware.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from callcenter.config import CallbackType, RulesConfig
from callcenter.windows.rules import (
    is_open,
    iter_window_intervals,
    next_close,
    next_open,
    window_intervals,
)


class EventType(StrEnum):
    """What the order system reports."""

    INSTALL_COMPLETED = "install_completed"  # rule CB-1
    REPAIR_REPLIED = "repair_replied"  # rule CB-2
    COMPLAINT_REPLIED = "complaint_replied"  # rule CB-3
    CANCELLATION = "cancellation"  # rule CB-4
    INSTALL_ACCEPTED = "install_accepted"  # rule CB-7
    FAULT_ACCEPTED = "fault_accepted"  # rule CB-7
    COMPLAINT_ACCEPTED = "complaint_accepted"  # rule CB-7


CALLBACK_FOR_EVENT: dict[EventType, CallbackType] = {
    EventType.INSTALL_COMPLETED: CallbackType.INSTALL,
    EventType.REPAIR_REPLIED: CallbackType.REPAIR,
    EventType.COMPLAINT_REPLIED: CallbackType.COMPLAINT,
    EventType.CANCELLATION: CallbackType.CHURN,
    EventType.INSTALL_ACCEPTED: CallbackType.INSTALL_DELAY,
    EventType.FAULT_ACCEPTED: CallbackType.FAULT_DELAY,
    EventType.COMPLAINT_ACCEPTED: CallbackType.COMPLAINT_CONTACT,
}

# rule CB-7: the event that makes a proactive contact pointless when it arrives first.
CLOSES_PROACTIVE: dict[EventType, CallbackType] = {
    EventType.INSTALL_COMPLETED: CallbackType.INSTALL_DELAY,
    EventType.REPAIR_REPLIED: CallbackType.FAULT_DELAY,
    EventType.COMPLAINT_REPLIED: CallbackType.COMPLAINT_CONTACT,
}
CLOSED_BY: dict[CallbackType, EventType] = {v: k for k, v in CLOSES_PROACTIVE.items()}


class CallbackStatus(StrEnum):
    PENDING = "pending"  # in the queue (possibly waiting until `available_at`)
    CLAIMED = "claimed"  # leased to an agent until `lease_expires_at`
    COMPLETED = "completed"  # the customer was reached and the call closed
    FAILED = "failed"  # attempts used up or the number is wrong: supervisors look at it
    EXPIRED = "expired"  # the hard limit passed before the customer was reached
    CANCELLED = "cancelled"  # no longer needed (a CB-7 contact whose closing event came)


TERMINAL = frozenset(
    {
        CallbackStatus.COMPLETED,
        CallbackStatus.FAILED,
        CallbackStatus.EXPIRED,
        CallbackStatus.CANCELLED,
    }
)

ALLOWED_TRANSITIONS: dict[CallbackStatus, frozenset[CallbackStatus]] = {
    CallbackStatus.PENDING: frozenset(
        {CallbackStatus.CLAIMED, CallbackStatus.CANCELLED, CallbackStatus.EXPIRED}
    ),
    CallbackStatus.CLAIMED: frozenset(
        {
            CallbackStatus.PENDING,
            CallbackStatus.COMPLETED,
            CallbackStatus.FAILED,
            CallbackStatus.EXPIRED,
            CallbackStatus.CANCELLED,
        }
    ),
    CallbackStatus.COMPLETED: frozenset(),
    CallbackStatus.FAILED: frozenset(),
    CallbackStatus.EXPIRED: frozenset(),
    CallbackStatus.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: CallbackStatus, wanted: CallbackStatus) -> None:
        super().__init__(f"a {current} callback cannot become {wanted}")
        self.current = current
        self.wanted = wanted


def check_transition(current: CallbackStatus, wanted: CallbackStatus) -> None:
    """Raise `IllegalTransition` unless the state machine allows `current → wanted`."""
    if wanted not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)


@dataclass(frozen=True)
class Deadlines:
    anchor_at: datetime  # the event the deadlines count from
    available_at: datetime  # when it may first be offered
    due_at: datetime  # the target
    hard_due_at: datetime  # the hard limit


def deadlines_for(
    kind: CallbackType, anchor_at: datetime, zone: ZoneInfo, rules: RulesConfig
) -> Deadlines:
    """Target and hard limit of a new callback from its anchor event (rules CB-1..CB-4, CB-7)."""
    # Durations are elapsed time: add them in UTC (in a local zone Python adds wall-clock
    # time, and a DST change would make "24 hours" 23 or 25).
    anchor_at = anchor_at.astimezone(UTC)
    rule = rules.rule_for(kind)
    if kind is CallbackType.CHURN:
        return _churn_deadlines(anchor_at, zone, rules)
    trigger = anchor_at
    if kind is CallbackType.INSTALL_DELAY:
        trigger = anchor_at + rules.proactive.install_not_completed_after  # rule CB-7
    elif kind is CallbackType.FAULT_DELAY:
        trigger = anchor_at + rules.proactive.fault_not_restored_after  # rule CB-7
    return Deadlines(
        anchor_at=anchor_at,
        available_at=trigger,
        due_at=trigger + rule.target,
        hard_due_at=trigger + rule.hard_limit,
    )


def _churn_deadlines(anchor_at: datetime, zone: ZoneInfo, rules: RulesConfig) -> Deadlines:
    # rule CB-4: at once, within the first calling window (a too-short remainder of a window
    # does not count as the first window).
    windows = rules.windows
    horizon = anchor_at + timedelta(days=3)
    # The windows one at a time, up to the first long enough (usually the first or second).
    intervals = iter_window_intervals(anchor_at, horizon, zone, windows)
    due = first_usable = None
    for opens, closes in intervals:
        due = opens if due is None else due
        first_usable = closes  # the last one, if none is long enough
        if closes - opens >= rules.churn.min_first_window:
            break
    if due is None or first_usable is None:
        raise ValueError("no calling window within three days: check the window settings")
    # The configured limit only shortens the first window; it never ends before the callback
    # is due, so the limit is always a time the callback could still be made.
    cap = anchor_at + rules.rule_for(CallbackType.CHURN).hard_limit
    hard = cap if due < cap < first_usable else first_usable
    return Deadlines(anchor_at=anchor_at, available_at=anchor_at, due_at=due, hard_due_at=hard)


class AttemptOutcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"
    REFUSED = "refused"
    CALL_BACK_LATER = "call_back_later"
    DO_NOT_CALL = "do_not_call"


# Outcomes about the call itself, not one conversation: they apply to every callback that the
# same claim took for the customer (the customer is called once for all of them).
WHOLE_CALL_OUTCOMES = frozenset(
    {
        AttemptOutcome.NO_ANSWER,
        AttemptOutcome.BUSY,
        AttemptOutcome.WRONG_NUMBER,
        AttemptOutcome.DO_NOT_CALL,
    }
)
# Outcomes where the customer was not reached; these use up the attempt allowance.
UNREACHED_OUTCOMES = frozenset({AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY})

# What a callback holds only while it is leased: cleared when the lease ends (an attempt, a
# lapse, a release by a supervisor, the hard limit passing).
LEASE_ENDED: Mapping[str, None] = MappingProxyType(
    {"claim_id": None, "claimed_by_id": None, "claimed_at": None, "lease_expires_at": None}
)


def attempt_counts(
    attempt_count: int, unreached_count: int, outcome: AttemptOutcome
) -> dict[str, int]:
    """A callback's counters once one more attempt with `outcome` is recorded (the unreached
    ones use up the attempt allowance)."""
    return {
        "attempt_count": attempt_count + 1,
        "unreached_count": unreached_count + (1 if outcome in UNREACHED_OUTCOMES else 0),
    }


@dataclass(frozen=True)
class AttemptEffect:
    status: CallbackStatus
    available_at: datetime | None  # when it returns to the queue (pending only)
    reason: str | None  # why it closed, in words a supervisor reads


@dataclass(frozen=True)
class ValidWindow:
    opens: datetime
    closes: datetime


class CallBackTimeRefused(ValueError):
    """A 'call back later' time that the rules do not allow, with the times they do."""

    def __init__(self, reason: str, valid: list[ValidWindow], zone: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.valid = valid
        self.zone = zone  # the customer's zone, to show the valid times in local time


# A time to call back is in the future; the windows offered start this much after now.
CALL_BACK_MIN_LEAD = timedelta(minutes=1)


def next_retry_at(now: datetime, zone: ZoneInfo, rules: RulesConfig) -> datetime:
    """When an unanswered callback may be tried again: after the retry interval, in a later
    window than the one it was tried in (rule CB-5)."""
    now = now.astimezone(UTC)  # elapsed time, not wall-clock time
    earliest = now + rules.attempts.retry_interval
    if is_open(now, zone, rules.windows):
        earliest = max(earliest, next_close(now, zone, rules.windows))
    return next_open(earliest, zone, rules.windows)


def valid_call_back_windows(
    now: datetime, hard_due_at: datetime, zone: ZoneInfo, rules: RulesConfig, limit: int = 3
) -> list[ValidWindow]:
    """The next windows in which a customer may be called back: after now (a time to call
    back is in the future) and before the hard limit."""
    after = now.astimezone(UTC) + CALL_BACK_MIN_LEAD
    return [
        ValidWindow(opens=opens, closes=closes)
        for opens, closes in window_intervals(after, hard_due_at, zone, rules.windows)[:limit]
    ]


def check_call_back_time(
    requested: datetime, *, now: datetime, hard_due_at: datetime, zone: ZoneInfo, rules: RulesConfig
) -> None:
    """Raise `CallBackTimeRefused` unless `requested` is in the future, inside a calling window
    (rule CB-5) and before the hard limit (the valid windows are listed when it is not)."""
    reason: str | None = None
    if requested <= now:
        reason = "the time to call back is not in the future"
    elif requested >= hard_due_at:
        reason = "the time to call back is at or after the callback's hard limit"
    elif not is_open(requested, zone, rules.windows):
        reason = "the time to call back is outside the calling windows"
    if reason is not None:
        raise CallBackTimeRefused(reason, valid_call_back_windows(now, hard_due_at, zone, rules))


def attempt_effect(
    outcome: AttemptOutcome,
    *,
    now: datetime,
    unreached_so_far: int,
    hard_due_at: datetime,
    zone: ZoneInfo,
    rules: RulesConfig,
    call_back_at: datetime | None = None,
) -> AttemptEffect:
    """What one recorded attempt does to its callback.

    `unreached_so_far` counts the earlier no-answer and busy attempts, not this one.
    """
    if outcome is AttemptOutcome.ANSWERED:
        return AttemptEffect(CallbackStatus.COMPLETED, None, None)
    if outcome is AttemptOutcome.REFUSED:
        return AttemptEffect(CallbackStatus.COMPLETED, None, "the customer declined the survey")
    if outcome is AttemptOutcome.DO_NOT_CALL:
        return AttemptEffect(
            CallbackStatus.COMPLETED, None, "the customer asked not to be called again"
        )
    if outcome is AttemptOutcome.WRONG_NUMBER:
        return AttemptEffect(CallbackStatus.FAILED, None, "wrong number")
    if outcome is AttemptOutcome.CALL_BACK_LATER:
        if call_back_at is None:
            raise CallBackTimeRefused(
                "call_back_later needs the time the customer asked for",
                valid_call_back_windows(now, hard_due_at, zone, rules),
            )
        check_call_back_time(call_back_at, now=now, hard_due_at=hard_due_at, zone=zone, rules=rules)
        return AttemptEffect(CallbackStatus.PENDING, call_back_at, None)
    # no answer or busy
    used = unreached_so_far + 1
    if used >= rules.attempts.max_attempts:
        return AttemptEffect(
            CallbackStatus.FAILED, None, f"not reached after {used} attempts ({outcome})"
        )
    retry_at = next_retry_at(now, zone, rules)
    if retry_at > hard_due_at:
        return AttemptEffect(
            CallbackStatus.EXPIRED, None, "the next try would fall after the hard limit"
        )
    return AttemptEffect(CallbackStatus.PENDING, retry_at, None)
