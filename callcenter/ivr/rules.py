"""The IVR call as pure functions: dial slots under the rate limit, which question comes
next, what a key means, and what a call's end does to its callback.

Nothing here reads the clock or the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from callcenter.callbacks.rules import (
    UNREACHED_OUTCOMES,
    AttemptOutcome,
    CallbackStatus,
    attempt_effect,
    next_retry_at,
)
from callcenter.config import Channel, RulesConfig
from callcenter.questionnaires.answers import asked_questions, validate_answers
from callcenter.questionnaires.definitions import Question, QuestionKind, Scalar, ScriptDefinition


class CallStatus(StrEnum):
    QUEUED = "queued"  # written; the provider has not confirmed it yet
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"  # answered
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"
    LOST = "lost"  # never confirmed by the provider: settled without redialling


ACTIVE = frozenset(
    {CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS}
)
FINAL = frozenset(CallStatus) - ACTIVE
_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
}

# Twilio's CallStatus values (and the "answered" status event) → ours.
PROVIDER_STATUS: dict[str, CallStatus] = {
    "queued": CallStatus.INITIATED,  # queued at the provider: it has the call
    "initiated": CallStatus.INITIATED,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "answered": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "no-answer": CallStatus.NO_ANSWER,
    "failed": CallStatus.FAILED,
    "canceled": CallStatus.CANCELED,
}


def provider_status(raw: str) -> CallStatus | None:
    return PROVIDER_STATUS.get(raw.strip().lower())


def advances(current: CallStatus, reported: CallStatus) -> bool:
    """Whether a reported status moves the call on (callbacks may arrive out of order)."""
    if current in FINAL:
        return False
    if reported in FINAL:
        return True
    return _RANK[reported] > _RANK[current]


class StepResult(StrEnum):
    ANSWERED = "answered"
    INVALID = "invalid"  # a key the question does not take
    NO_INPUT = "no_input"
    REPEAT = "repeat"  # '*': say it again
    AGENT = "agent"  # '0': the customer wants a person


class Disposition(StrEnum):
    """What the end of the call did to its callback."""

    COMPLETED = "completed"  # every required question answered: closed
    TO_AGENT = "to_agent"  # an agent makes the rest of the callback
    RETRY = "retry"  # the IVR tries again in a later window
    FAILED = "failed"
    EXPIRED = "expired"
    UNCHANGED = "unchanged"  # the callback was closed meanwhile (e.g. expired by the watch)


AGENT_KEY = "0"
REPEAT_KEY = "*"
MAX_FAILED_TRIES = 2  # no input or a wrong key: asked again once, with a hint; then moved on
MAX_TRIES = 5  # '*' repeats too, but not for ever


def is_machine(answered_by: str | None) -> bool:
    """Twilio's answering-machine detection: machine_start, machine_end_beep, …, fax."""
    return answered_by is not None and (answered_by.startswith("machine") or answered_by == "fax")


# -- the rate limit ------------------------------------------------------------------------------


def slot_interval(calls_per_second: float) -> timedelta:
    """Time between two calls, rounded up to the microsecond: never faster than the limit."""
    return timedelta(microseconds=math.ceil(1_000_000 / calls_per_second))


def dial_slots(
    *, next_free: datetime, now: datetime, horizon: timedelta, calls_per_second: float, room: int
) -> list[datetime]:
    """The instants at which calls may be placed from now until `now + horizon`: one every
    1/cps seconds from the first free slot (an idle dialer saves up no credit), at most
    `room` of them (the concurrent calls still allowed)."""
    step = slot_interval(calls_per_second)
    at = max(next_free, now)
    slots: list[datetime] = []
    while at < now + horizon and len(slots) < room:
        slots.append(at)
        at += step
    return slots


# -- the survey --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    question_id: str
    try_number: int
    result: StepResult


@dataclass(frozen=True)
class Ask:
    question: Question
    try_number: int
    hint: StepResult | None  # why it is asked again (no input, a wrong key, '*')


class EndReason(StrEnum):
    FINISHED = "finished"  # every question the IVR asks was asked
    AGENT_REQUESTED = "agent_requested"


@dataclass(frozen=True)
class End:
    reason: EndReason


def next_action(
    definition: ScriptDefinition, answers: Mapping[str, object], steps: Sequence[Step]
) -> Ask | End:
    """What the IVR does next, given the answers in force and this call's steps so far.

    The questions asked are those the script asks on this path that the IVR may ask (agent-
    only ones are skipped); a question with no valid key after MAX_FAILED_TRIES is left for an
    agent.
    """
    if any(step.result is StepResult.AGENT for step in steps):
        return End(EndReason.AGENT_REQUESTED)
    for question in asked_questions(definition, answers, channel=Channel.IVR):
        if answers.get(question.id) is not None:
            continue
        mine = [step for step in steps if step.question_id == question.id]
        failed = sum(step.result in (StepResult.INVALID, StepResult.NO_INPUT) for step in mine)
        if failed >= MAX_FAILED_TRIES or len(mine) >= MAX_TRIES:
            continue
        hint = mine[-1].result if mine else None
        return Ask(question=question, try_number=len(mine) + 1, hint=hint)
    return End(EndReason.FINISHED)


@dataclass(frozen=True)
class KeyReading:
    result: StepResult
    value: Scalar | None = None


def read_keys(question: Question, digits: str | None) -> KeyReading:
    """What the keys pressed at a question mean. A keyed question takes one of its keys, and
    0 (when not one of them) asks for an agent; a count takes digits ended by '#'."""
    keys = (digits or "").strip().rstrip("#")
    if not keys:
        return KeyReading(StepResult.NO_INPUT)
    if REPEAT_KEY in keys:
        return KeyReading(StepResult.REPEAT)
    assert question.ivr is not None
    if question.kind is QuestionKind.COUNT:
        limit = question.ivr.max_digits or 2
        if keys.isdigit() and len(keys) <= limit:
            return KeyReading(StepResult.ANSWERED, int(keys))
        return KeyReading(StepResult.INVALID)
    options = question.ivr.keys or {}
    if keys in options:
        return KeyReading(StepResult.ANSWERED, options[keys])
    if keys == AGENT_KEY:
        return KeyReading(StepResult.AGENT)
    return KeyReading(StepResult.INVALID)


def survey_complete(definition: ScriptDefinition, answers: Mapping[str, object]) -> bool:
    """Whether the answers settle the callback: every required question on the path they
    take is answered, the ones only an agent asks included."""
    return not validate_answers(definition, answers, channel=Channel.AGENT)


# -- the end of a call -------------------------------------------------------------------------


@dataclass(frozen=True)
class CallResult:
    outcome: AttemptOutcome
    note: str


def call_result(
    status: CallStatus, answered_by: str | None, *, end: Ask | End | None, answered: int
) -> CallResult:
    """The attempt a finished call is: the same outcomes as an agent's call."""
    if status is CallStatus.COMPLETED and is_machine(answered_by):
        return CallResult(AttemptOutcome.NO_ANSWER, f"answering machine ({answered_by})")
    if status is CallStatus.COMPLETED:
        if isinstance(end, End) and end.reason is EndReason.AGENT_REQUESTED:
            note = f"the customer pressed 0 for an agent after {answered} answer(s)"
        elif isinstance(end, End):
            note = f"IVR survey finished, {answered} answer(s)"
        else:
            note = f"the customer hung up during the survey after {answered} answer(s)"
        return CallResult(AttemptOutcome.ANSWERED, note)
    if status is CallStatus.BUSY:
        return CallResult(AttemptOutcome.BUSY, "busy")
    if status is CallStatus.NO_ANSWER:
        return CallResult(AttemptOutcome.NO_ANSWER, "no answer")
    if status is CallStatus.CANCELED:
        return CallResult(AttemptOutcome.NO_ANSWER, "the call was cancelled before it connected")
    if status is CallStatus.LOST:
        return CallResult(
            AttemptOutcome.NO_ANSWER, "the provider never confirmed the call; not redialled"
        )
    # failed: the network could not connect it (a wrong number among other reasons)
    return CallResult(AttemptOutcome.NO_ANSWER, "the call failed to connect")


@dataclass(frozen=True)
class Settlement:
    disposition: Disposition
    status: CallbackStatus
    channel: Channel
    available_at: datetime | None
    reason: str | None


def settle(
    outcome: AttemptOutcome,
    *,
    complete: bool,
    now: datetime,
    unreached_so_far: int,
    hard_due_at: datetime,
    zone: ZoneInfo,
    rules: RulesConfig,
    ivr_max_attempts: int | None = None,
) -> Settlement:
    """What one IVR attempt does to its callback: the agents' retry policy, except that what
    the IVR cannot settle goes to an agent instead of failing.

    An answered call closes the callback when the survey is complete; otherwise (a hang-up
    midway, key 0, a required question only an agent asks, a question never keyed) an agent
    makes the rest, at once. An unreached customer is tried again in a later window; after
    the IVR's last attempt an agent takes over.
    """
    if outcome is AttemptOutcome.ANSWERED:
        if complete:
            return Settlement(
                Disposition.COMPLETED, CallbackStatus.COMPLETED, Channel.IVR, None, None
            )
        return Settlement(Disposition.TO_AGENT, CallbackStatus.PENDING, Channel.AGENT, now, None)
    limit = ivr_max_attempts or rules.attempts.max_attempts
    ivr_rules = rules.model_copy(
        update={"attempts": rules.attempts.model_copy(update={"max_attempts": limit})}
    )
    effect = attempt_effect(
        outcome,
        now=now,
        unreached_so_far=unreached_so_far,
        hard_due_at=hard_due_at,
        zone=zone,
        rules=ivr_rules,
    )
    if effect.status is CallbackStatus.PENDING:
        return Settlement(
            Disposition.RETRY, CallbackStatus.PENDING, Channel.IVR, effect.available_at, None
        )
    if effect.status is CallbackStatus.FAILED and outcome in UNREACHED_OUTCOMES:
        # The IVR's last attempt: an agent tries instead of the callback failing, in a later
        # window like any retry, or at once when that would pass the hard limit.
        retry_at = next_retry_at(now, zone, rules)
        when = retry_at if retry_at <= hard_due_at else now
        return Settlement(Disposition.TO_AGENT, CallbackStatus.PENDING, Channel.AGENT, when, None)
    disposition = (
        Disposition.EXPIRED if effect.status is CallbackStatus.EXPIRED else Disposition.FAILED
    )
    return Settlement(disposition, effect.status, Channel.IVR, None, effect.reason)
