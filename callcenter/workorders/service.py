"""Follow-up work orders (rule SV-5) and reading the work-order list."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from callcenter.audit import service as audit
from callcenter.audit.rules import Actor, AuditAction, SubjectType, actor_for
from callcenter.callbacks.models import Callback
from callcenter.config import RulesConfig
from callcenter.customers.models import Customer
from callcenter.db import UnitOfWork
from callcenter.errors import Conflict, NotFound
from callcenter.users.models import User
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus
from callcenter.workorders.schemas import FollowUpCreate, WorkOrderPage, WorkOrderRead


def _read(
    order: WorkOrder, customer: str | None, creator: str | None, now: datetime
) -> WorkOrderRead:
    assert order.id is not None
    return WorkOrderRead(
        id=order.id,
        kind=order.kind,
        status=order.status,
        callback_id=order.callback_id,
        customer_id=customer,
        subject=order.subject,
        details=order.details,
        team=order.team,
        created_by=creator,
        created_at=order.created_at,
        due_at=order.due_at,
        overdue=order.status is WorkOrderStatus.OPEN and now > order.due_at,
        handed_over_at=order.handed_over_at,
        closed_at=order.closed_at,
    )


def create_follow_up(
    uow: UnitOfWork,
    *,
    callback_id: int,
    user: User,
    follow_up: FollowUpCreate,
    now: datetime,
    config: RulesConfig,
    actor: Actor | None = None,
) -> WorkOrderRead:
    """Raise a follow-up work order from the call the agent holds; due to be handed over
    within 15 minutes by default (rule SV-5, first-ask responsibility). Audited (rule SV-4;
    `actor` default `user`)."""
    from callcenter.callbacks.service import check_holder

    with uow:
        session = uow.session
        callback = session.get(Callback, callback_id)
        if callback is None:
            raise NotFound(f"callback {callback_id} does not exist")
        check_holder(callback, user, now)
        order = WorkOrder(
            kind=WorkOrderKind.FOLLOW_UP,
            status=WorkOrderStatus.OPEN,
            callback_id=callback_id,
            customer_id=callback.customer_id,
            subject=follow_up.subject,
            details=follow_up.details,
            team=follow_up.team,
            created_by_id=user.id,
            created_at=now,
            due_at=now + config.follow_up.hand_over_within,  # rule SV-5
        )
        session.add(order)
        session.flush()
        audit.record(
            session,
            actor=actor_for(user, actor),
            action=AuditAction.WORKORDER_CREATED,
            subject_type=SubjectType.WORK_ORDER,
            subject_id=order.id,
            now=now,
            detail={"callback": callback_id, "kind": order.kind, "team": order.team},
        )
        customer = session.get_one(Customer, callback.customer_id)
        result = _read(order, customer.external_id, user.username, now)
        uow.commit()
        return result


def list_work_orders(
    uow: UnitOfWork,
    *,
    now: datetime,
    status: list[WorkOrderStatus] | None = None,
    kind: list[WorkOrderKind] | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> WorkOrderPage:
    """Work orders, the ones due first."""
    conditions: list[sa.ColumnElement[bool]] = []
    if status:
        conditions.append(col(WorkOrder.status).in_(status))
    if kind:
        conditions.append(col(WorkOrder.kind).in_(kind))
    if overdue is not None:
        late = sa.and_(col(WorkOrder.status) == WorkOrderStatus.OPEN, col(WorkOrder.due_at) < now)
        conditions.append(late if overdue else sa.not_(late))
    with uow:
        session = uow.session
        total = session.execute(
            sa.select(sa.func.count()).select_from(WorkOrder).where(*conditions)
        ).scalar_one()
        stmt = (
            sa.select(WorkOrder, col(Customer.external_id), col(User.username))
            .outerjoin(Customer, col(Customer.id) == col(WorkOrder.customer_id))
            .outerjoin(User, col(User.id) == col(WorkOrder.created_by_id))
            .where(*conditions)
            .order_by(col(WorkOrder.due_at), col(WorkOrder.id))
            .limit(limit)
            .offset(offset)
        )
        items = [_read(order, cust, name, now) for order, cust, name in session.execute(stmt)]
    return WorkOrderPage(items=items, total=total, limit=limit, offset=offset)


def hand_over(
    uow: UnitOfWork,
    *,
    work_order_id: int,
    user: User,
    now: datetime,
    team: str | None = None,
    actor: Actor | None = None,
) -> WorkOrderRead:
    """Record that an open work order was handed to the team that takes it (rule SV-5; the
    hand-over time feeds KPI-3, transfer timeliness). Only once: a second hand-over, or one
    of a closed order, is a Conflict. Audited (rule SV-4; `actor` default `user`)."""
    with uow:
        session = uow.session
        order = session.get(WorkOrder, work_order_id, with_for_update=True)
        if order is None:
            raise NotFound(f"work order {work_order_id} does not exist")
        if order.status is not WorkOrderStatus.OPEN:
            raise Conflict(f"work order {work_order_id} is {order.status}: only an open one")
        order.status = WorkOrderStatus.HANDED_OVER
        order.handed_over_at = now
        if team:
            order.team = team
        session.flush()
        audit.record(
            session,
            actor=actor_for(user, actor),
            action=AuditAction.WORKORDER_HANDED_OVER,
            subject_type=SubjectType.WORK_ORDER,
            subject_id=work_order_id,
            now=now,
            detail={"kind": order.kind, "team": order.team, "callback": order.callback_id},
        )
        customer = session.get(Customer, order.customer_id) if order.customer_id else None
        creator = session.get(User, order.created_by_id) if order.created_by_id else None
        result = _read(
            order,
            customer.external_id if customer else None,
            creator.username if creator else None,
            now,
        )
        uow.commit()
        return result
