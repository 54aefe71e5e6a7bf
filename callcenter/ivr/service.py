"""IVR use cases: dialling due IVR callbacks under the rate limit, answering the provider's
webhooks (the call's TwiML, the keys, the statuses) and settling each call as an attempt.

Each function owns its transaction. Calls are claimed like an agent claims a callback (the
callback becomes `claimed` with the call's claim id), so an agent never rings a customer the
IVR is talking to.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.audit import service as audit
from callcenter.audit.rules import IVR, AuditAction, SubjectType
from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import LEASE_ENDED, CallbackStatus, attempt_counts
from callcenter.config import CallbackType, Channel, RulesConfig, TelephonySettings
from callcenter.customers.models import Customer, DoNotCall
from callcenter.customers.rules import mask_phone
from callcenter.customers.service import known_zones
from callcenter.db import UnitOfWork, upsert_into
from callcenter.errors import Conflict, NotFound
from callcenter.ivr import rules
from callcenter.ivr.models import IvrCall, IvrCallStep, IvrDialSlot
from callcenter.ivr.rules import (
    FINAL,
    Ask,
    CallStatus,
    Disposition,
    End,
    EndReason,
    StepResult,
)
from callcenter.ivr.schemas import DialReport, IvrCallRead, IvrStepRead
from callcenter.questionnaires.answers import ChoiceAnswer
from callcenter.questionnaires.definitions import Lang, PhraseBook, QuestionKind, ScriptDefinition
from callcenter.questionnaires.models import Answer, ScriptVersion
from callcenter.questionnaires.render import (
    CallbackInfo,
    CustomerInfo,
    RenderContext,
    RenderedIvrCall,
    Title,
    render_ivr,
    render_text,
)
from callcenter.questionnaires.service import addressed_as, definition_of
from callcenter.sla.rules import late_by
from callcenter.telephony.base import (
    CallRequest,
    Gather,
    Hangup,
    Redirect,
    Say,
    Telephony,
    TelephonyError,
    Verb,
)
from callcenter.windows.rules import is_open, open_zones

_DIALER_ROW = 1
_ACTIVE_SQL = "ivr_calls.status IN ('queued', 'initiated', 'ringing', 'in_progress')"


class NotCallableByIvr(Conflict):
    """The callback cannot be called by the IVR now; the message says why."""


def _active_call() -> sa.ColumnElement[bool]:
    # Literal SQL, so that PostgreSQL matches it to the partial index of active calls.
    return sa.literal_column(_ACTIVE_SQL, sa.Boolean()).self_group()


def script_lang(telephony: TelephonySettings) -> Lang:
    """The script language the IVR speaks: Chinese for a zh-* voice, else English."""
    return Lang.ZH if telephony.language.lower().startswith("zh") else Lang.EN


# ---------------------------------------------------------------------------------------
# The calls' statements
# ---------------------------------------------------------------------------------------

# Built once, with bind parameters: SQLAlchemy reuses their compiled form, and as no ORM
# object is made, a webhook costs little more than its SQL.
_CALLS = IvrCall.__table__  # type: ignore[attr-defined]
_CALLBACKS = Callback.__table__  # type: ignore[attr-defined]
_CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
_VERSIONS = ScriptVersion.__table__  # type: ignore[attr-defined]
_ANSWERS = Answer.__table__  # type: ignore[attr-defined]
_STEPS = IvrCallStep.__table__  # type: ignore[attr-defined]
_ATTEMPTS = Attempt.__table__  # type: ignore[attr-defined]
_CALL_COLUMNS = (
    _CALLS.c.id,
    _CALLS.c.ref,
    _CALLS.c.callback_id,
    _CALLS.c.claim_id,
    _CALLS.c.status,
    _CALLS.c.provider_sid,
    _CALLS.c.answered_by,
)
# Calls, with what their survey needs of their callback, customer and script version.
_WITH_SURVEY = sa.select(
    *_CALL_COLUMNS,
    _CALLBACKS.c.script_version_id,
    _CALLBACKS.c.type.label("callback_type"),
    _CALLBACKS.c.order_id,
    _CALLBACKS.c.due_at,
    _CUSTOMERS.c.name.label("customer_name"),
    _CUSTOMERS.c.title.label("customer_title"),
    _VERSIONS.c.fingerprint,
).select_from(
    _CALLS.join(_CALLBACKS, _CALLBACKS.c.id == _CALLS.c.callback_id)
    .join(_CUSTOMERS, _CUSTOMERS.c.id == _CALLBACKS.c.customer_id)
    .outerjoin(_VERSIONS, _VERSIONS.c.id == _CALLBACKS.c.script_version_id)
)
# A call's webhooks take turns: each that reads the call locks its row first.
_LOCK_CALL_WITH_SURVEY = _WITH_SURVEY.where(_CALLS.c.ref == sa.bindparam("ref")).with_for_update(
    of=_CALLS
)
_CALL_STATUS = sa.select(_CALLS.c.status).where(_CALLS.c.ref == sa.bindparam("ref"))
# The answers on a callback (kind 0) and the steps of a call (kind 1), in one round trip.
_ANSWERS_AND_STEPS = sa.union_all(
    sa.select(
        sa.literal(0).label("kind"),
        _ANSWERS.c.id,
        _ANSWERS.c.question_id,
        _ANSWERS.c.value,
        _ANSWERS.c.corrects_id,
        sa.null().label("try_number"),
        sa.null().label("result"),
    ).where(_ANSWERS.c.callback_id == sa.bindparam("callback_id")),
    sa.select(
        sa.literal(1),
        _STEPS.c.id,
        _STEPS.c.question_id,
        sa.null(),
        sa.null(),
        _STEPS.c.try_number,
        _STEPS.c.result,
    ).where(_STEPS.c.ivr_call_id == sa.bindparam("call_id")),
).order_by(sa.literal_column("kind"), sa.literal_column("id"))
# A status that moves the call on, in one statement (no transaction around it): only from
# the statuses given (those it advances), keeping the provider's id once known.
_ADVANCE_CALL = (
    sa.update(_CALLS)
    .where(
        _CALLS.c.ref == sa.bindparam("b_ref"),
        _CALLS.c.status.in_(sa.bindparam("b_from", expanding=True)),
    )
    .values(
        status=sa.bindparam("b_status"),
        provider_sid=sa.func.coalesce(
            _CALLS.c.provider_sid, sa.bindparam("b_provider_sid", type_=sa.String())
        ),
        answered_by=sa.func.coalesce(
            sa.bindparam("b_answered_by", type_=sa.String()), _CALLS.c.answered_by
        ),
        updated_at=sa.bindparam("b_updated_at"),
    )
)
_UPDATE_CALL = (
    sa.update(_CALLS)
    .where(_CALLS.c.id == sa.bindparam("b_id"))
    .values(
        status=sa.bindparam("b_status"),
        provider_sid=sa.bindparam("b_provider_sid"),
        answered_by=sa.bindparam("b_answered_by"),
        updated_at=sa.bindparam("b_updated_at"),
    )
)
_INSERT_STEP = sa.insert(_STEPS)
_INSERT_ANSWER = sa.insert(_ANSWERS)
# The end of a call: its callback (locked) with its customer's zone, the attempt, the call.
_LOCK_CALLBACK = (
    sa.select(
        _CALLBACKS.c.id,
        _CALLBACKS.c.status,
        _CALLBACKS.c.claim_id,
        _CALLBACKS.c.attempt_count,
        _CALLBACKS.c.unreached_count,
        _CALLBACKS.c.due_at,
        _CALLBACKS.c.hard_due_at,
        _CUSTOMERS.c.timezone,
    )
    .select_from(_CALLBACKS.join(_CUSTOMERS, _CUSTOMERS.c.id == _CALLBACKS.c.customer_id))
    .where(_CALLBACKS.c.id == sa.bindparam("callback_id"))
    .with_for_update(of=_CALLBACKS)
)
_INSERT_ATTEMPT = sa.insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)
_END_CALL = (
    sa.update(_CALLS)
    .where(_CALLS.c.id == sa.bindparam("b_id"))
    .values(
        {
            name: sa.bindparam(f"b_{name}")
            for name in (
                "status",
                "answered_by",
                "provider_sid",
                "ended_at",
                "updated_at",
                "duration_seconds",
                "outcome",
                "disposition",
                "attempt_id",
                "note",
            )
        }
    )
)
_Row = sa.Row[*tuple[Any, ...]]  # a row of the statements above


# ---------------------------------------------------------------------------------------
# URLs and phrases
# ---------------------------------------------------------------------------------------


def voice_url(base: str, ref: str) -> str:
    return f"{base.rstrip('/')}/twilio/ivr/{ref}/voice"


def status_url(base: str, ref: str) -> str:
    return f"{base.rstrip('/')}/twilio/ivr/{ref}/status"


def gather_url(base: str, ref: str, question_id: str, try_number: int) -> str:
    return f"{base.rstrip('/')}/twilio/ivr/{ref}/gather?q={question_id}&t={try_number}"


_DEFAULT_PHRASES = {
    "ivr_no_input": ("抱歉，没有收到您的按键。", "Sorry, we did not receive your answer."),
    "ivr_invalid_key": (
        "抱歉，您按的键不在选项之中。",
        "Sorry, that key is not one of the options.",
    ),
    "ivr_agent_key": (
        "如需人工服务，请按0。",
        "To speak to a customer service representative, press 0.",
    ),
    "ivr_to_agent": (
        "好的，稍后将由客服代表与您联系。",
        "Thank you. A customer service representative will call you shortly.",
    ),
}


def _phrase(book: PhraseBook | None, name: str, lang: Lang) -> str:
    if book is not None and name in book.standard:
        return render_text(book.standard[name].text, {}, lang, where=f"phrases: {name}")
    zh, en = _DEFAULT_PHRASES[name]
    return zh if lang is Lang.ZH else en


# ---------------------------------------------------------------------------------------
# Dialling
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCall:
    """A call written to the database and due to be placed at `dial_at`."""

    ref: str
    callback_id: int
    dial_at: datetime
    request: CallRequest


def _lock_dialer(session: Session, now: datetime) -> IvrDialSlot:
    table = IvrDialSlot.__table__  # type: ignore[attr-defined]
    session.execute(
        upsert_into(session, table)
        .values(id=_DIALER_ROW, next_slot_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    # Every dialer (any replica) waits here for the others: the slots are taken one by one.
    stmt = sa.select(IvrDialSlot).where(col(IvrDialSlot.id) == _DIALER_ROW).with_for_update()
    row: IvrDialSlot = session.execute(stmt).scalar_one()
    return row


def _active_calls(session: Session) -> int:
    stmt = sa.select(sa.func.count()).select_from(IvrCall).where(_active_call())
    return int(session.execute(stmt).scalar_one())


def _due_ivr_callbacks(
    session: Session, *, now: datetime, zones: Sequence[str], limit: int
) -> list[tuple[Callback, str]]:
    """Due IVR callbacks whose customer's window is open (rule CB-5), who is not on the
    do-not-call list now, and whom nobody is calling; EDF order, locked, skipping rows another
    dialer holds."""
    held = Callback.__table__.alias("held")  # type: ignore[attr-defined]
    on_list = sa.select(sa.literal(1)).where(col(DoNotCall.phone) == col(Customer.phone))
    in_call = sa.select(sa.literal(1)).where(
        col(IvrCall.customer_id) == col(Callback.customer_id), _active_call()
    )
    agent_on_line = sa.select(sa.literal(1)).where(
        held.c.customer_id == col(Callback.customer_id),
        held.c.status == CallbackStatus.CLAIMED,
        held.c.lease_expires_at > now,
    )
    stmt = (
        sa.select(Callback, col(Customer.phone))
        .join(Customer, col(Customer.id) == col(Callback.customer_id))
        .where(
            col(Callback.status) == CallbackStatus.PENDING,
            col(Callback.channel) == Channel.IVR,
            col(Callback.available_at) <= now,
            col(Callback.hard_due_at) > now,
            col(Customer.timezone).in_(list(zones)),
            ~on_list.exists(),  # rule: the do-not-call list is checked at dial time
            ~in_call.exists(),
            ~agent_on_line.exists(),
        )
        .order_by(col(Callback.hard_due_at), col(Callback.due_at), col(Callback.id))
        .limit(limit)
        .with_for_update(of=Callback, skip_locked=True)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]


def _call_lease(telephony: TelephonySettings) -> timedelta:
    # Longer than any call can last: the call's own end (or the dialer's sweep) frees it.
    seconds = telephony.ring_timeout_seconds + telephony.time_limit_seconds
    return timedelta(seconds=seconds) + telephony.confirm_within


def _start_call(
    session: Session,
    callback: Callback,
    phone: str,
    *,
    dial_at: datetime,
    now: datetime,
    telephony: TelephonySettings,
    provider: str,
) -> PlannedCall:
    assert callback.id is not None
    ref = str(uuid.uuid4())
    claim_id = str(uuid.uuid4())
    lease_end = now + _call_lease(telephony)
    callback.status = CallbackStatus.CLAIMED
    callback.claim_id = claim_id
    callback.claimed_by_id = None  # the IVR, not an agent
    callback.claimed_at = now
    callback.lease_expires_at = lease_end
    callback.available_at = lease_end
    callback.updated_at = now
    session.add(
        IvrCall(
            ref=ref,
            callback_id=callback.id,
            customer_id=callback.customer_id,
            claim_id=claim_id,
            number=callback.attempt_count + 1,
            provider=provider,
            status=CallStatus.QUEUED,
            dial_at=dial_at,
            created_at=now,
            updated_at=now,
        )
    )
    base = telephony.public_base_url
    request = CallRequest(
        to=phone,
        from_=telephony.from_number or "+10000000000",
        url=voice_url(base, ref),
        status_callback=status_url(base, ref),
        machine_detection=telephony.machine_detection,
        ring_timeout_seconds=telephony.ring_timeout_seconds,
        time_limit_seconds=telephony.time_limit_seconds,
    )
    return PlannedCall(ref=ref, callback_id=callback.id, dial_at=dial_at, request=request)


def _ivr_can_ask(session: Session, callback: Callback) -> bool:
    if callback.script_version_id is None:
        return False
    _, definition = definition_of(session, callback.script_version_id)
    return bool(definition.ivr_questions)


def _hand_to_agents(callback: Callback, now: datetime) -> None:
    callback.channel = Channel.AGENT
    callback.updated_at = now


def plan_dials(
    uow: UnitOfWork,
    *,
    now: datetime,
    config: RulesConfig,
    telephony: TelephonySettings,
    provider: str,
    horizon: timedelta,
    report: DialReport | None = None,
) -> list[PlannedCall]:
    """Take the dial slots from now until `now + horizon` (calls_per_second, shared by every
    dialer through one locked row), within the concurrent-call limit, and write a call for
    each of the most urgent due IVR callbacks. Placing them is `place_planned`."""
    report = report or DialReport()
    with uow:
        session = uow.session
        zones = open_zones(now, known_zones(session), config.windows)
        if not zones:
            return []
        dialer = _lock_dialer(session, now)
        room = telephony.max_concurrent - _active_calls(session)
        slots = rules.dial_slots(
            next_free=dialer.next_slot_at,
            now=now,
            horizon=horizon,
            calls_per_second=telephony.calls_per_second,
            room=room,
        )
        if not slots:
            return []
        planned: list[PlannedCall] = []
        customers: set[int] = set()
        # A few more than the slots: two callbacks of one customer make one call at a time.
        for callback, phone in _due_ivr_callbacks(
            session, now=now, zones=zones, limit=len(slots) * 2
        ):
            if len(planned) == len(slots):
                break
            if callback.customer_id in customers:
                continue
            if not _ivr_can_ask(session, callback):
                # Every question of its script is for agents only: an agent makes it.
                _hand_to_agents(callback, now)
                report.handed_to_agents += 1
                continue
            customers.add(callback.customer_id)
            planned.append(
                _start_call(
                    session,
                    callback,
                    phone,
                    dial_at=slots[len(planned)],
                    now=now,
                    telephony=telephony,
                    provider=provider,
                )
            )
        if planned:
            dialer.next_slot_at = planned[-1].dial_at + rules.slot_interval(
                telephony.calls_per_second
            )
        report.planned += len(planned)
        uow.commit()
    return planned


def start_call(
    uow: UnitOfWork,
    *,
    callback_id: int,
    now: datetime,
    config: RulesConfig,
    telephony: TelephonySettings,
    provider: str,
    any_time: bool = False,
) -> PlannedCall:
    """Write an IVR call for one given callback, to be placed at once (`callcenter ivr call`).
    Raises NotFound or NotCallableByIvr. `any_time` skips the calling-window check (for the
    simulator only; the caller enforces that)."""
    with uow:
        session = uow.session
        callback = session.get(Callback, callback_id, with_for_update=True)
        if callback is None:
            raise NotFound(f"callback {callback_id} does not exist")
        customer = session.get_one(Customer, callback.customer_id)
        if callback.channel is not Channel.IVR:
            raise NotCallableByIvr(f"callback {callback_id} is made by agents, not the IVR")
        if callback.status is not CallbackStatus.PENDING:
            raise NotCallableByIvr(f"callback {callback_id} is {callback.status}, not pending")
        if session.get(DoNotCall, customer.phone) is not None:
            raise NotCallableByIvr("the customer is on the do-not-call list")
        if not any_time and not is_open(now, ZoneInfo(customer.timezone), config.windows):
            raise NotCallableByIvr("the customer's calling window is closed now (rule CB-5)")
        busy = session.execute(
            sa.select(sa.literal(1)).where(col(IvrCall.customer_id) == customer.id, _active_call())
        ).first()
        if busy is not None:
            raise NotCallableByIvr("the IVR is already on the line with this customer")
        if not _ivr_can_ask(session, callback):
            raise NotCallableByIvr("every question of its script is asked by agents only")
        planned = _start_call(
            session,
            callback,
            customer.phone,
            dial_at=now,
            now=now,
            telephony=telephony,
            provider=provider,
        )
        uow.commit()
    return planned


def _locked_call(session: Session, ref: str) -> IvrCall | None:
    stmt = sa.select(IvrCall).where(col(IvrCall.ref) == ref).with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def record_placed(uow: UnitOfWork, *, ref: str, sid: str, now: datetime) -> None:
    """The provider took the call: keep its id (a webhook may have been faster)."""
    with uow:
        call = _locked_call(uow.session, ref)
        if call is None:
            return
        if call.provider_sid is None:
            call.provider_sid = sid
        if call.placed_at is None:
            call.placed_at = now
        if call.status is CallStatus.QUEUED:
            call.status = CallStatus.INITIATED
        call.updated_at = now
        uow.commit()


def record_refused(
    uow: UnitOfWork,
    *,
    ref: str,
    error: TelephonyError,
    now: datetime,
    config: RulesConfig,
    telephony: TelephonySettings,
) -> None:
    """The provider did not take the call. When that is certain the call is settled as
    failed (an attempt); when we cannot tell, it stays unconfirmed and the dialer's sweep
    settles it later — it is never placed a second time."""
    with uow:
        session = uow.session
        call = session.connection().execute(_LOCK_CALL_WITH_SURVEY, {"ref": ref}).first()
        if call is None or call.status in FINAL:
            return
        if error.certain and call.status is CallStatus.QUEUED:
            _finalize(
                session,
                call,
                CallStatus.FAILED,
                now=now,
                config=config,
                telephony=telephony,
                note=f"not placed: {error}",
            )
        else:
            session.connection().execute(
                sa.update(_CALLS)
                .where(_CALLS.c.id == call.id)
                .values(note=str(error)[:500], updated_at=now)
            )
        uow.commit()


def place_planned(
    uow: UnitOfWork,
    *,
    telephony: Telephony,
    planned: PlannedCall,
    now: datetime,
    config: RulesConfig,
    settings: TelephonySettings,
) -> bool:
    """Ask the provider to place one planned call; whether it took it."""
    try:
        placed = telephony.place_call(planned.request)
    except TelephonyError as exc:
        record_refused(uow, ref=planned.ref, error=exc, now=now, config=config, telephony=settings)
        return False
    record_placed(uow, ref=planned.ref, sid=placed.sid, now=now)
    return True


def settle_unconfirmed(
    uow: UnitOfWork,
    *,
    telephony: Telephony,
    now: datetime,
    config: RulesConfig,
    settings: TelephonySettings,
) -> int:
    """Settle calls whose confirmation or end never came: a call the provider never
    confirmed is recorded as lost (the attempt is kept, the customer is not redialled now);
    a call past any possible end is settled with what the provider says about it."""
    settled = 0
    unconfirmed_before = now - settings.confirm_within
    ended_before = now - _call_lease(settings)
    with uow:
        session = uow.session
        stmt = (
            _WITH_SURVEY.where(
                _active_call(),
                sa.or_(
                    sa.and_(
                        _CALLS.c.status == CallStatus.QUEUED,
                        _CALLS.c.provider_sid.is_(None),
                        _CALLS.c.created_at < unconfirmed_before,
                    ),
                    _CALLS.c.created_at < ended_before,
                ),
            )
            .order_by(_CALLS.c.id)
            .limit(100)
            .with_for_update(of=_CALLS, skip_locked=True)
        )
        for call in session.connection().execute(stmt).all():
            status, answered_by, duration = CallStatus.LOST, call.answered_by, None
            if call.provider_sid is not None:
                try:
                    known = telephony.fetch_call(call.provider_sid)
                except TelephonyError:
                    known = None
                reported = rules.provider_status(known.status) if known else None
                if known is not None and reported is not None:
                    if reported not in FINAL:
                        continue  # still on the line by the provider's word
                    status, answered_by = reported, known.answered_by or answered_by
                    duration = known.duration_seconds
            _finalize(
                session,
                call,
                status,
                now=now,
                config=config,
                telephony=settings,
                answered_by=answered_by,
                duration=duration,
            )
            settled += 1
        uow.commit()
    return settled


# ---------------------------------------------------------------------------------------
# The call: webhooks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """The fields of a provider's webhook that matter to us."""

    call_sid: str | None = None
    call_status: str | None = None
    answered_by: str | None = None
    digits: str | None = None
    duration_seconds: int | None = None

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Webhook:
        duration = form.get("CallDuration") or form.get("Duration")
        return cls(
            call_sid=form.get("CallSid") or None,
            call_status=form.get("CallStatus") or None,
            answered_by=form.get("AnsweredBy") or None,
            digits=form.get("Digits"),
            duration_seconds=int(duration) if duration and duration.isdigit() else None,
        )


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class _Lru(Generic[_K, _V]):
    """A small least-recently-used cache, shared by the API's worker threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


# A script version never changes: its parsed definition by its fingerprint (a hash of its
# content, so the same in any database), and what the IVR says on a call by the version and
# everything the templates may use. A call's webhooks render the same texts each time: the
# first renders them, the others find them here.
_DEFINITIONS: _Lru[str, ScriptDefinition] = _Lru(256)
_RenderKey = tuple[str, Lang, str, Title | None, CallbackType, str, bool]
_RENDERED: _Lru[_RenderKey, RenderedIvrCall] = _Lru(4096)


def _definition(session: Session, script_version_id: int, digest: str) -> ScriptDefinition:
    definition = _DEFINITIONS.get(digest)
    if definition is None:
        _, definition = definition_of(session, script_version_id)
        _DEFINITIONS.put(digest, definition)
    return definition


def _rendered(
    definition: ScriptDefinition, call: _Row, now: datetime, lang: Lang
) -> RenderedIvrCall:
    name, title = addressed_as(call.customer_name, call.customer_title)
    late = now > call.due_at
    key: _RenderKey = (call.fingerprint, lang, name, title, call.callback_type, call.order_id, late)
    rendered = _RENDERED.get(key)
    if rendered is None:
        context = RenderContext(
            customer=CustomerInfo(name=name, title=title),
            callback=CallbackInfo(type=call.callback_type, order_id=call.order_id, late=late),
        )
        rendered = render_ivr(definition, context, lang)
        _RENDERED.put(key, rendered)
    return rendered


@dataclass
class _Survey:
    definition: ScriptDefinition
    rendered: RenderedIvrCall
    answers: dict[str, object]
    steps: list[rules.Step]


def _survey(session: Session, call: _Row, now: datetime, lang: Lang) -> _Survey:
    """The survey of a call (a row of `_WITH_SURVEY`): its script, what the IVR says, the
    answers in force on its callback and this call's steps so far."""
    assert call.script_version_id is not None and call.fingerprint is not None
    definition = _definition(session, call.script_version_id, call.fingerprint)
    params = {"callback_id": call.callback_id, "call_id": call.id}
    rows = session.connection().execute(_ANSWERS_AND_STEPS, params).all()
    given = [row for row in rows if row.kind == 0]
    # The answer in force for each question: the original, or its latest correction.
    replaced = {row.corrects_id for row in given if row.corrects_id is not None}
    answers: dict[str, object] = {
        row.question_id: row.value for row in given if row.id not in replaced
    }
    steps = [
        rules.Step(row.question_id, int(row.try_number), StepResult(row.result))
        for row in rows
        if row.kind == 1
    ]
    return _Survey(definition, _rendered(definition, call, now, lang), answers, steps)


def _verbs_for(
    action: Ask | End,
    survey: _Survey,
    ref: str,
    *,
    telephony: TelephonySettings,
    phrases: PhraseBook | None,
    lang: Lang,
) -> list[Verb]:
    if isinstance(action, End):
        verbs: list[Verb] = []
        incomplete = not rules.survey_complete(survey.definition, survey.answers)
        if action.reason is EndReason.AGENT_REQUESTED or incomplete:
            # rule SV-5: what the IVR could not settle, an agent follows up.
            verbs.append(Say(_phrase(phrases, "ivr_to_agent", lang)))
        verbs += [Say(text) for text in survey.rendered.closing]
        verbs.append(Hangup())
        return verbs
    question = action.question
    prompt = next(p for p in survey.rendered.prompts if p.question_id == question.id)
    texts: list[str] = []
    if action.hint is StepResult.NO_INPUT:
        texts.append(_phrase(phrases, "ivr_no_input", lang))
    elif action.hint is StepResult.INVALID:
        texts.append(_phrase(phrases, "ivr_invalid_key", lang))
    texts.append(prompt.text)
    keyed = question.kind is not QuestionKind.COUNT
    if keyed and action.hint in (StepResult.NO_INPUT, StepResult.INVALID):
        texts.append(_phrase(phrases, "ivr_agent_key", lang))
    url = gather_url(telephony.public_base_url, ref, question.id, action.try_number)
    return [
        Gather(
            texts=tuple(texts),
            action=url,
            num_digits=1 if keyed else None,
            finish_on_key=None if keyed else "#",
            timeout_seconds=telephony.gather_timeout_seconds,
        ),
        Redirect(url),  # no input: the same URL without keys
    ]


def _noted(call: _Row, hook: Webhook, now: datetime, status: CallStatus) -> dict[str, Any]:
    """The parameters of `_UPDATE_CALL`: the call's new status, and what the webhook tells
    of it (the provider's id of the call, once; who answered)."""
    return {
        "b_id": call.id,
        "b_status": status,
        "b_provider_sid": call.provider_sid if call.provider_sid is not None else hook.call_sid,
        "b_answered_by": hook.answered_by[:32] if hook.answered_by else call.answered_by,
        "b_updated_at": now,
    }


def _answered(status: CallStatus) -> CallStatus:
    """The status of a call whose TwiML is asked for: it is answered (in progress)."""
    return CallStatus.IN_PROGRESS if rules.advances(status, CallStatus.IN_PROGRESS) else status


def handle_voice(
    uow: UnitOfWork,
    *,
    ref: str,
    hook: Webhook,
    now: datetime,
    telephony: TelephonySettings,
    phrases: PhraseBook | None,
) -> list[Verb]:
    """The call was answered: the opening and the first question (an answering machine is
    hung up on)."""
    lang = script_lang(telephony)
    with uow:
        session = uow.session
        db = session.connection()  # Core statements only, past the ORM's session
        call = db.execute(_LOCK_CALL_WITH_SURVEY, {"ref": ref}).first()
        if call is None or call.status in FINAL:
            return [Hangup()]
        noted = _noted(call, hook, now, _answered(call.status))
        db.execute(_UPDATE_CALL, noted)
        if rules.is_machine(noted["b_answered_by"]):
            uow.commit()
            return [Hangup()]  # no message is left on a machine; it counts as not reached
        survey = _survey(session, call, now, lang)
        action = rules.next_action(survey.definition, survey.answers, survey.steps)
        verbs: list[Verb] = [Say(text) for text in survey.rendered.opening]
        verbs += _verbs_for(action, survey, ref, telephony=telephony, phrases=phrases, lang=lang)
        uow.commit()
        return verbs


def _stored(value: object) -> object:
    if isinstance(value, ChoiceAnswer):
        return {"choice": value.choice, "text": value.text}
    return value


def handle_gather(
    uow: UnitOfWork,
    *,
    ref: str,
    question_id: str,
    try_number: int,
    hook: Webhook,
    now: datetime,
    telephony: TelephonySettings,
    phrases: PhraseBook | None,
) -> list[Verb]:
    """Keys pressed at a question (or none, via the redirect). Recorded once: the same
    request again — or one for a question already past — records nothing and answers with
    what comes next now."""
    lang = script_lang(telephony)
    with uow:
        session = uow.session
        db = session.connection()  # Core statements only, past the ORM's session
        call = db.execute(_LOCK_CALL_WITH_SURVEY, {"ref": ref}).first()
        if call is None or call.status in FINAL:
            return [Hangup()]
        db.execute(_UPDATE_CALL, _noted(call, hook, now, _answered(call.status)))
        survey = _survey(session, call, now, lang)
        action = rules.next_action(survey.definition, survey.answers, survey.steps)
        if (
            isinstance(action, Ask)
            and action.question.id == question_id
            and action.try_number == try_number
        ):
            reading = rules.read_keys(action.question, hook.digits)
            db.execute(
                _INSERT_STEP,
                {
                    "ivr_call_id": call.id,
                    "question_id": question_id,
                    "try_number": try_number,
                    "digits": (hook.digits or None) and hook.digits[:16],
                    "result": reading.result,
                    "at": now,
                },
            )
            survey.steps.append(rules.Step(question_id, try_number, reading.result))
            if reading.result is StepResult.ANSWERED:
                db.execute(
                    _INSERT_ANSWER,
                    {
                        "callback_id": call.callback_id,
                        "script_version_id": call.script_version_id,
                        "claim_id": call.claim_id,
                        "question_id": question_id,
                        "value": _stored(reading.value),
                        "channel": Channel.IVR,
                        "recorded_by_id": None,
                        "recorded_at": now,
                    },
                )
                survey.answers[question_id] = reading.value
            action = rules.next_action(survey.definition, survey.answers, survey.steps)
        verbs = _verbs_for(action, survey, ref, telephony=telephony, phrases=phrases, lang=lang)
        uow.commit()
        return verbs


def handle_status(
    uow: UnitOfWork,
    *,
    ref: str,
    hook: Webhook,
    now: datetime,
    config: RulesConfig,
    telephony: TelephonySettings,
) -> CallStatus | None:
    """A status callback. A final status settles the call once; the same status again (the
    provider retries) or a late, older one changes nothing. The call's status after it."""
    reported = rules.provider_status(hook.call_status or "")
    with uow:
        session = uow.session
        if reported is not None and reported not in FINAL:
            # The call goes on: one statement, on PostgreSQL outside any transaction.
            options = (
                {"isolation_level": "AUTOCOMMIT"}
                if session.get_bind().dialect.name == "postgresql"
                else {}
            )
            db = session.connection(execution_options=options)
            moved = db.execute(
                _ADVANCE_CALL,
                {
                    "b_ref": ref,
                    "b_from": sorted(s for s in rules.ACTIVE if rules.advances(s, reported)),
                    "b_status": reported,
                    "b_provider_sid": hook.call_sid,
                    "b_answered_by": hook.answered_by[:32] if hook.answered_by else None,
                    "b_updated_at": now,
                },
            )
            if moved.rowcount:
                uow.commit()
                return reported
            # Sent again, late, or for no call of ours: nothing changes.
            current: CallStatus | None = db.execute(_CALL_STATUS, {"ref": ref}).scalar()
            return current
        row = session.connection().execute(_LOCK_CALL_WITH_SURVEY, {"ref": ref}).first()
        if row is None:
            return None
        if reported is None or not rules.advances(row.status, reported):
            status: CallStatus = row.status
            return status
        # The end of the call, once: an attempt, and what it does to the callback.
        _finalize(
            session,
            row,
            reported,
            now=now,
            config=config,
            telephony=telephony,
            answered_by=hook.answered_by,
            provider_sid=hook.call_sid,
            duration=hook.duration_seconds,
        )
        uow.commit()
        return reported


def _finalize(
    session: Session,
    call: _Row,
    status: CallStatus,
    *,
    now: datetime,
    config: RulesConfig,
    telephony: TelephonySettings,
    answered_by: str | None = None,
    provider_sid: str | None = None,
    duration: int | None = None,
    note: str | None = None,
) -> None:
    """Settle a call (a row of `_WITH_SURVEY`, locked): one attempt with the agents'
    outcomes, and what it does to the callback (rule SV-4: the attempt is inserted, never
    updated). `answered_by` replaces the call's when given; `provider_sid` is kept when the
    call has none yet."""
    db = session.connection()
    answered_by = answered_by[:32] if answered_by else call.answered_by
    callback = db.execute(_LOCK_CALLBACK, {"callback_id": call.callback_id}).one()
    end: Ask | End | None = None
    answered = 0
    complete = False
    survey: _Survey | None = None
    if status is CallStatus.COMPLETED and call.script_version_id is not None:
        survey = _survey(session, call, now, script_lang(telephony))
        end = rules.next_action(survey.definition, survey.answers, survey.steps)
        answered = sum(step.result is StepResult.ANSWERED for step in survey.steps)
        asked_agent = isinstance(end, End) and end.reason is EndReason.AGENT_REQUESTED
        complete = not asked_agent and rules.survey_complete(survey.definition, survey.answers)
    result = rules.call_result(status, answered_by, end=end, answered=answered)
    still_ours = callback.status is CallbackStatus.PENDING or (
        callback.status is CallbackStatus.CLAIMED and callback.claim_id == call.claim_id
    )
    attempt_id = db.execute(
        _INSERT_ATTEMPT,
        {
            "callback_id": callback.id,
            "number": callback.attempt_count + 1,
            "claim_id": call.claim_id,
            "agent_id": None,
            "channel": Channel.IVR,
            "outcome": result.outcome,
            "note": (note or result.note)[:2000],
            "recorded_at": now,
            "late_by_seconds": int(late_by(now, callback.due_at).total_seconds()),
        },
    ).scalar_one()
    changes: dict[str, Any] = {
        **attempt_counts(callback.attempt_count, callback.unreached_count, result.outcome),
        "updated_at": now,
    }
    disposition = Disposition.UNCHANGED
    if still_ours:
        settlement = rules.settle(
            result.outcome,
            complete=complete,
            now=now,
            unreached_so_far=callback.unreached_count,
            hard_due_at=callback.hard_due_at,
            zone=ZoneInfo(callback.timezone),
            rules=config,
            ivr_max_attempts=telephony.max_attempts,
        )
        disposition = settlement.disposition
        changes |= {
            "status": settlement.status,
            "channel": settlement.channel,
            **LEASE_ENDED,
            "assigned_agent_id": None,
        }
        if settlement.status is CallbackStatus.PENDING:
            assert settlement.available_at is not None
            changes["available_at"] = settlement.available_at
        else:
            changes |= {"closed_at": now, "close_reason": settlement.reason}
    db.execute(sa.update(_CALLBACKS).where(_CALLBACKS.c.id == callback.id).values(changes))
    # rule SV-4: the IVR's outcome, with the answers the customer keyed in on this call, is
    # audited as the machine's (no person, no address).
    audit.record(
        session,
        actor=IVR,
        action=AuditAction.ATTEMPT_RECORDED,
        subject_type=SubjectType.CALLBACK,
        subject_id=callback.id,
        now=now,
        detail={
            "outcome": result.outcome,
            "channel": Channel.IVR,
            "attempts": [attempt_id],
            "ivr_call": call.id,
            "questions": sorted(survey.answers) if survey is not None else [],
            "disposition": disposition,
        },
    )
    db.execute(
        _END_CALL,
        {
            "b_id": call.id,
            "b_status": status,
            "b_answered_by": answered_by,
            "b_provider_sid": call.provider_sid if call.provider_sid is not None else provider_sid,
            "b_ended_at": now,
            "b_updated_at": now,
            "b_duration_seconds": duration,
            "b_outcome": result.outcome,
            "b_disposition": disposition,
            "b_attempt_id": attempt_id,
            "b_note": (note or result.note)[:500],
        },
    )


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def list_ivr_calls(
    uow: UnitOfWork,
    *,
    since: datetime | None = None,
    limit: int = 100,
    status: Sequence[CallStatus] = (),
    callback_id: int | None = None,
) -> list[IvrCallRead]:
    """IVR calls, the newest first, with the keys pressed on each (for supervisors)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if since is not None:
        conditions.append(col(IvrCall.created_at) >= since)
    if status:
        conditions.append(col(IvrCall.status).in_(list(status)))
    if callback_id is not None:
        conditions.append(col(IvrCall.callback_id) == callback_id)
    with uow:
        session = uow.session
        stmt = (
            sa.select(IvrCall, col(Callback.type), col(Customer.external_id), col(Customer.phone))
            .join(Callback, col(Callback.id) == col(IvrCall.callback_id))
            .join(Customer, col(Customer.id) == col(IvrCall.customer_id))
            .where(*conditions)
            .order_by(col(IvrCall.created_at).desc(), col(IvrCall.id).desc())
            .limit(limit)
        )
        rows = session.execute(stmt).all()
        ids = [row[0].id for row in rows]
        steps: dict[int, list[IvrStepRead]] = {}
        if ids:
            for step in session.execute(
                sa.select(IvrCallStep)
                .where(col(IvrCallStep.ivr_call_id).in_(ids))
                .order_by(col(IvrCallStep.id))
            ).scalars():
                steps.setdefault(step.ivr_call_id, []).append(
                    IvrStepRead(
                        question_id=step.question_id,
                        try_number=step.try_number,
                        digits=step.digits,
                        result=step.result,
                        at=step.at,
                    )
                )
        return [
            IvrCallRead(
                id=call.id,
                ref=call.ref,
                callback_id=call.callback_id,
                callback_type=kind,
                customer_id=external_id,
                phone_masked=mask_phone(phone),
                number=call.number,
                provider=call.provider,
                status=call.status,
                answered_by=call.answered_by,
                dial_at=call.dial_at,
                placed_at=call.placed_at,
                ended_at=call.ended_at,
                duration_seconds=call.duration_seconds,
                outcome=call.outcome,
                disposition=call.disposition,
                note=call.note,
                steps=steps.get(call.id, []),
                created_at=call.created_at,
            )
            for call, kind, external_id, phone in rows
        ]


__all__ = [
    "NotCallableByIvr",
    "PlannedCall",
    "Webhook",
    "handle_gather",
    "handle_status",
    "handle_voice",
    "list_ivr_calls",
    "place_planned",
    "plan_dials",
    "settle_unconfirmed",
    "start_call",
]
