"""What the agent's desk and the supervisor's board show, and what a supervisor does to a
callback: reassign it to an agent, release a lease."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.audit import service as audit
from callcenter.audit.rules import Actor, AuditAction, SubjectType, actor_for
from callcenter.callbacks.models import Attempt, Callback, CallbackEvent, CallbackEventKind
from callcenter.callbacks.rules import LEASE_ENDED, CallbackStatus
from callcenter.callbacks.schemas import (
    AttemptRead,
    CallbackRead,
    ClaimRead,
    CustomerContact,
)
from callcenter.callbacks.service import (
    attempt_read,
    callback_views,
    is_open_status,
    record_phone_view,
)
from callcenter.config import CallbackType, RulesConfig
from callcenter.customers.models import Customer
from callcenter.db import UnitOfWork
from callcenter.errors import Conflict, InvalidField, NotFound
from callcenter.questionnaires.definitions import Lang
from callcenter.questionnaires.schemas import ScriptRead
from callcenter.questionnaires.service import script_read
from callcenter.sla.rules import at_risk_margin
from callcenter.users.models import User, UserRole
from callcenter.windows.rules import call_slots, next_open
from callcenter.workorders.models import WorkOrderStatus
from callcenter.workorders.schemas import WorkOrderRead
from callcenter.workorders.service import list_work_orders

OPEN = (CallbackStatus.PENDING, CallbackStatus.CLAIMED)


class Urgency:
    """How a deadline is shown: in time, at risk (amber) or overdue (red)."""

    OK = "ok"
    AT_RISK = "at_risk"
    OVERDUE = "overdue"


def urgency(callback: CallbackRead, *, now: datetime, config: RulesConfig) -> str:
    """Overdue once past the target; at risk within the SLA margin before it (rule CB-1..4)."""
    if callback.status not in OPEN:
        return Urgency.OK
    if now > callback.due_at:
        return Urgency.OVERDUE
    if callback.at_risk_since is not None or now >= callback.due_at - at_risk_margin(
        callback.type, config
    ):
        return Urgency.AT_RISK
    return Urgency.OK


@dataclass
class DeskView:
    """The agent's desk: the call in hand (if any) and the callbacks waiting for this agent."""

    claim: ClaimRead | None
    current: CallbackRead | None  # the held callback to talk about now
    attempts: dict[int, list[AttemptRead]] = field(default_factory=dict)
    # The customer's open callbacks this claim did not take (waiting for a retry, say).
    other_open: list[CallbackRead] = field(default_factory=list)
    call_back_slots: list[datetime] = field(default_factory=list)
    personal: list[CallbackRead] = field(default_factory=list)
    zone: str | None = None
    script: ScriptRead | None = None  # the script of `current`, for this agent


def _attempts(session: Session, ids: list[int]) -> dict[int, list[AttemptRead]]:
    found: dict[int, list[AttemptRead]] = {i: [] for i in ids}
    if not ids:
        return found
    stmt = (
        sa.select(Attempt, col(User.username))
        .outerjoin(User, col(User.id) == col(Attempt.agent_id))
        .where(col(Attempt.callback_id).in_(ids))
        .order_by(col(Attempt.callback_id), col(Attempt.number), col(Attempt.id))
    )
    for attempt, name in session.execute(stmt):
        found[attempt.callback_id].append(attempt_read(attempt, name))
    return found


def desk(
    uow: UnitOfWork,
    *,
    agent: User,
    now: datetime,
    config: RulesConfig,
    step: timedelta,
    lang: Lang,
    forbidden: Sequence[str],
    draft: Mapping[str, str] | None = None,
    actor: Actor | None = None,
) -> DeskView:
    """The call the agent holds now (a live lease), its history and the customer's other open
    callbacks, the times the customer may be called back at, and the agent's own callbacks.
    The desk shows the held customer's full phone number: that view is audited (rule SV-4;
    `actor` says from where, default `agent`)."""
    assert agent.id is not None
    with uow:
        session = uow.session
        held = (
            session.execute(
                sa.select(Callback)
                .where(
                    col(Callback.claimed_by_id) == agent.id,
                    col(Callback.status) == CallbackStatus.CLAIMED,
                    col(Callback.lease_expires_at) > now,
                )
                .order_by(col(Callback.hard_due_at), col(Callback.due_at), col(Callback.id))
            )
            .scalars()
            .all()
        )
        personal = _personal(session, agent.id, now)
        if not held:
            return DeskView(claim=None, current=None, personal=personal)
        first = held[0]
        customer = session.get_one(Customer, first.customer_id)
        other_ids = (
            session.execute(
                sa.select(col(Callback.id)).where(
                    col(Callback.customer_id) == first.customer_id,
                    col(Callback.status).in_(OPEN),
                    col(Callback.id).not_in([c.id for c in held]),
                )
            )
            .scalars()
            .all()
        )
        ids = [c.id for c in held if c.id is not None]
        views = callback_views(session, [*ids, *other_ids], now=now)
        held_views = [views[i] for i in ids]
        contact = CustomerContact(**held_views[0].customer.model_dump(), phone=customer.phone)
        assert first.claim_id is not None and first.lease_expires_at is not None
        claim = ClaimRead(
            claim_id=first.claim_id,
            lease_expires_at=first.lease_expires_at,
            callback=held_views[0],
            callbacks=held_views,
            customer=contact,
        )
        zone = ZoneInfo(customer.timezone)
        slots = call_slots(now, first.hard_due_at, zone, config.windows, step=step)
        record_phone_view(
            session,
            actor=actor_for(agent, actor),
            customer_id=customer.external_id,
            via="desk",
            claim_id=first.claim_id,
            callback_ids=ids,
            now=now,
        )
        view = DeskView(
            claim=claim,
            current=held_views[0],
            attempts=_attempts(session, [*ids, *other_ids]),
            other_open=sorted((views[i] for i in other_ids), key=lambda v: v.hard_due_at),
            call_back_slots=slots,
            personal=personal,
            zone=customer.timezone,
            script=None
            if first.script_version_id is None
            else script_read(
                session, first, user=agent, lang=lang, now=now, forbidden=forbidden, draft=draft
            ),
        )
        uow.commit()  # the view's audit row
        return view


def _personal(session: Session, agent_id: int, now: datetime) -> list[CallbackRead]:
    ids = (
        session.execute(
            sa.select(col(Callback.id))
            .where(
                col(Callback.assigned_agent_id) == agent_id,
                col(Callback.status) == CallbackStatus.PENDING,
            )
            .order_by(col(Callback.available_at))
            .limit(50)
        )
        .scalars()
        .all()
    )
    views = callback_views(session, ids, now=now)
    return sorted(views.values(), key=lambda v: (v.available_at, v.id))


def my_callbacks(uow: UnitOfWork, *, agent: User, now: datetime) -> list[CallbackRead]:
    """The callbacks customers asked this agent for, waiting, the soonest first."""
    assert agent.id is not None
    with uow:
        return _personal(uow.session, agent.id, now)


def next_window_opening(now: datetime, config: RulesConfig) -> datetime:
    """When the calling windows next open in the default zone (for "nothing to call now")."""
    return next_open(now, ZoneInfo(config.default_timezone), config.windows)


# ---------------------------------------------------------------------------------------
# The supervisor's board
# ---------------------------------------------------------------------------------------


@dataclass
class BoardView:
    counts: dict[tuple[CallbackType, CallbackStatus], int]
    urgent: list[CallbackRead]  # overdue first, then at risk, by deadline
    failed: list[CallbackRead]
    leases: list[CallbackRead]
    moved: list[tuple[CallbackEvent, CallbackRead]]  # personal callbacks moved to the shared queue
    agents: list[User]
    work_orders: list[WorkOrderRead]  # open, the ones due first


_LIST_LIMIT = 50
# Counting every open callback reads the whole open queue (30 ms at 100,000): boards that
# refresh together share one count for a few seconds.
_COUNTS_FOR = timedelta(seconds=10)
_counts: weakref.WeakKeyDictionary[
    sa.Engine, tuple[datetime, dict[tuple[CallbackType, CallbackStatus], int]]
] = weakref.WeakKeyDictionary()


def _open_counts(session: Session, now: datetime) -> dict[tuple[CallbackType, CallbackStatus], int]:
    engine = session.get_bind()
    assert isinstance(engine, sa.Engine)
    cached = _counts.get(engine)
    if cached is not None and timedelta(0) <= now - cached[0] < _COUNTS_FOR:
        return cached[1]
    counts: dict[tuple[CallbackType, CallbackStatus], int] = {}
    rows = session.execute(
        sa.select(col(Callback.type), col(Callback.status), sa.func.count())
        .where(is_open_status())  # literal SQL: it matches the partial index
        .group_by(col(Callback.type), col(Callback.status))
    )
    for kind, status, number in rows:
        counts[(kind, status)] = number
    _counts[engine] = (now, counts)
    return counts


def board(uow: UnitOfWork, *, now: datetime, config: RulesConfig) -> BoardView:
    """The queue by type and state, the callbacks needing attention first, failed callbacks,
    the leases held, and the personal callbacks that moved to the shared queue today."""
    with uow:
        session = uow.session
        counts = _open_counts(session, now)
        # Within the largest at-risk margin of any type: the SLA flags, and those about to be.
        # Ordered by target, the overdue come first; one index range per open status.
        margin = max(at_risk_margin(kind, config) for kind in CallbackType)
        per_status = [
            sa.select(col(Callback.id), col(Callback.due_at))
            .where(col(Callback.status) == status, col(Callback.due_at) <= now + margin)
            .order_by(col(Callback.due_at), col(Callback.id))
            .limit(_LIST_LIMIT)
            .subquery()
            for status in OPEN
        ]
        soonest = sa.union_all(*(sa.select(q.c.id, q.c.due_at) for q in per_status)).subquery()
        urgent_ids = (
            session.execute(
                sa.select(soonest.c.id).order_by(soonest.c.due_at, soonest.c.id).limit(_LIST_LIMIT)
            )
            .scalars()
            .all()
        )
        failed_ids = (
            session.execute(
                sa.select(col(Callback.id))
                .where(col(Callback.status) == CallbackStatus.FAILED)
                .order_by(col(Callback.updated_at).desc(), col(Callback.id).desc())
                .limit(_LIST_LIMIT)
            )
            .scalars()
            .all()
        )
        lease_ids = (
            session.execute(
                sa.select(col(Callback.id))
                .where(
                    col(Callback.status) == CallbackStatus.CLAIMED,
                    col(Callback.lease_expires_at) > now,
                )
                .order_by(col(Callback.lease_expires_at), col(Callback.id))
                .limit(_LIST_LIMIT)
            )
            .scalars()
            .all()
        )
        moved_events = (
            session.execute(
                sa.select(CallbackEvent)
                .where(
                    col(CallbackEvent.kind) == CallbackEventKind.MOVED_TO_SHARED,
                    col(CallbackEvent.at) >= now - timedelta(hours=24),
                )
                .order_by(col(CallbackEvent.at).desc())
                .limit(_LIST_LIMIT)
            )
            .scalars()
            .all()
        )
        views = callback_views(
            session,
            [*urgent_ids, *failed_ids, *lease_ids, *(e.callback_id for e in moved_events)],
            now=now,
        )
        agents = list(
            session.execute(
                sa.select(User)
                .where(
                    col(User.is_active).is_(True),
                    col(User.role).in_(
                        [UserRole.AGENT, UserRole.SUPERVISOR, UserRole.RETENTION_LEAD]
                    ),
                )
                .order_by(col(User.username))
            ).scalars()
        )
    urgent = [
        views[i] for i in urgent_ids if urgency(views[i], now=now, config=config) != Urgency.OK
    ]
    orders = list_work_orders(uow, now=now, status=[WorkOrderStatus.OPEN], limit=_LIST_LIMIT).items
    return BoardView(
        work_orders=orders,
        counts=counts,
        urgent=urgent,
        failed=[views[i] for i in failed_ids],
        leases=[views[i] for i in lease_ids],
        moved=[(e, views[e.callback_id]) for e in moved_events],
        agents=agents,
    )


class NotReassignable(Conflict):
    pass


def reassign(
    uow: UnitOfWork,
    *,
    callback_id: int,
    agent_username: str,
    by: User,
    now: datetime,
    actor: Actor | None = None,
) -> CallbackRead:
    """Give an open callback to an agent: it waits in that agent's list, and a lease someone
    else holds on it ends. The agent's grace period (then the shared queue) applies as for a
    callback a customer asked that agent for. Audited (rule SV-4; `actor` default `by`)."""
    with uow:
        session = uow.session
        callback = session.get(Callback, callback_id, with_for_update=True)
        if callback is None:
            raise NotFound(f"callback {callback_id} does not exist")
        if callback.status not in OPEN:
            raise NotReassignable(
                f"callback {callback_id} is {callback.status}: "
                "only an open callback can be reassigned"
            )
        agent = session.execute(
            sa.select(User).where(col(User.username) == agent_username)
        ).scalar_one_or_none()
        if agent is None or not agent.is_active:
            raise InvalidField("agent", f"no active user {agent_username!r}")
        if agent.role not in (UserRole.AGENT, UserRole.SUPERVISOR, UserRole.RETENTION_LEAD):
            raise InvalidField("agent", f"{agent_username} ({agent.role}) does not make calls")
        previous = callback.assigned_agent_id
        held_by = callback.claimed_by_id if callback.status is CallbackStatus.CLAIMED else None
        _end_claim(session, callback, now)
        callback.assigned_agent_id = agent.id
        callback.updated_at = now
        audit.record(
            session,
            actor=actor_for(by, actor),
            action=AuditAction.CALLBACK_REASSIGNED,
            subject_type=SubjectType.CALLBACK,
            subject_id=callback_id,
            now=now,
            detail={
                "to": agent.username,
                "to_user_id": agent.id,
                "from_user_id": previous,
                "lease_ended_for_user_id": held_by,
            },
        )
        session.add(
            CallbackEvent(
                callback_id=callback_id,
                kind=CallbackEventKind.REASSIGNED,
                at=now,
                detail=f"to {agent.username}",
                actor_id=by.id,
            )
        )
        session.flush()
        view = callback_views(session, [callback_id], now=now)[callback_id]
        uow.commit()
        return view


def release_lease(
    uow: UnitOfWork, *, callback_id: int, by: User, now: datetime, actor: Actor | None = None
) -> CallbackRead:
    """End the lease on a claimed callback (and on the others of the same claim): they go back
    to the queue at once, and the agent who held them can no longer record on them. Audited
    once for the claim (rule SV-4; `actor` default `by`)."""
    with uow:
        session = uow.session
        callback = session.get(Callback, callback_id, with_for_update=True)
        if callback is None:
            raise NotFound(f"callback {callback_id} does not exist")
        if callback.status is not CallbackStatus.CLAIMED or callback.claim_id is None:
            raise NotReassignable(f"callback {callback_id} is not held by anyone")
        siblings = (
            session.execute(
                sa.select(Callback)
                .where(
                    col(Callback.claim_id) == callback.claim_id,
                    col(Callback.status) == CallbackStatus.CLAIMED,
                )
                .with_for_update()
            )
            .scalars()
            .all()
        )
        holder = session.get(User, callback.claimed_by_id) if callback.claimed_by_id else None
        for held in siblings:
            _end_claim(session, held, now)
            held.updated_at = now
            session.add(
                CallbackEvent(
                    callback_id=held.id,
                    kind=CallbackEventKind.LEASE_RELEASED,
                    at=now,
                    detail=f"held by {holder.username}" if holder else None,
                    actor_id=by.id,
                )
            )
        audit.record(
            session,
            actor=actor_for(by, actor),
            action=AuditAction.LEASE_RELEASED,
            subject_type=SubjectType.CALLBACK,
            subject_id=callback_id,
            now=now,
            detail={
                "held_by": holder.username if holder else None,
                "callbacks": sorted(held.id for held in siblings if held.id is not None),
            },
        )
        session.flush()
        view = callback_views(session, [callback_id], now=now)[callback_id]
        uow.commit()
        return view


def _end_claim(session: Session, callback: Callback, now: datetime) -> None:
    if callback.status is CallbackStatus.CLAIMED:
        callback.status = CallbackStatus.PENDING
        for name, value in LEASE_ENDED.items():
            setattr(callback, name, value)
        callback.available_at = min(callback.available_at, now)


__all__ = [
    "BoardView",
    "DeskView",
    "NotReassignable",
    "Urgency",
    "board",
    "desk",
    "my_callbacks",
    "next_window_opening",
    "reassign",
    "release_lease",
    "urgency",
]
