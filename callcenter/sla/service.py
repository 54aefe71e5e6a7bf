"""The SLA watch: flags at-risk and overdue callbacks, sends each overdue callback or work
order one urging order (rule WO-4), expires callbacks past their hard limit, and returns
personal callbacks an agent did not take to the shared queue. For retention cases it moves a
level 1 that ended unreached to level 2 and urges each overdue level 2 or 3 once.

Every step claims its rows in one statement (PostgreSQL: `FOR UPDATE SKIP LOCKED`), in
batches, each batch its own transaction: any number of scheduler replicas can run it, and
each row is flagged, urged or expired exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Callback, CallbackEvent, CallbackEventKind
from callcenter.callbacks.rules import LEASE_ENDED, CallbackStatus
from callcenter.config import CallbackType, RulesConfig
from callcenter.db import UnitOfWork, upsert_into
from callcenter.retention.service import escalate_unreached, urge_overdue_cases
from callcenter.sla.rules import OWNER, at_risk_margin
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus

log = logging.getLogger("callcenter.sla")

BATCH = 500
_OPEN = (CallbackStatus.PENDING, CallbackStatus.CLAIMED)


@dataclass
class WatchReport:
    """How many rows each step touched, and the batches that failed."""

    at_risk: int = 0
    overdue: int = 0
    urged_callbacks: int = 0
    urged_work_orders: int = 0
    expired: int = 0
    moved_to_shared: int = 0
    retention_escalated: int = 0  # rule RT-2: level 1 ended unreached, now at level 2
    urged_retention: int = 0  # rule WO-4: overdue levels 2 and 3 of retention cases
    failures: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return (
            self.at_risk
            + self.overdue
            + self.urged_callbacks
            + self.urged_work_orders
            + self.expired
            + self.moved_to_shared
            + self.retention_escalated
            + self.urged_retention
        )


def _claim_ids(uow: UnitOfWork, condition: sa.ColumnElement[bool]) -> list[int]:
    stmt = (
        sa.select(col(Callback.id))
        .where(condition)
        .order_by(col(Callback.id))
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    return [int(i) for i in uow.session.execute(stmt).scalars()]


def _events(
    uow: UnitOfWork, ids: list[int], kind: CallbackEventKind, now: datetime, detail: str | None
) -> None:
    if ids:
        uow.session.execute(
            sa.insert(CallbackEvent),
            [{"callback_id": i, "kind": kind, "at": now, "detail": detail} for i in ids],
        )


def _in_batches(
    uow_factory: Callable[[], UnitOfWork],
    step: Callable[[UnitOfWork], int],
    name: str,
    report: WatchReport,
) -> int:
    """Run `step` in fresh transactions until it finds nothing more; a failing batch is
    logged and the watch goes on with the next step."""
    total = 0
    while True:
        try:
            with uow_factory() as uow:
                count = step(uow)
                uow.commit()
        except Exception as exc:  # one bad batch must not stop the watch
            log.exception("sla step %s: a batch failed", name)
            report.failures.append(f"{name}: {exc}")
            return total
        total += count
        if count < BATCH:
            return total


def _flag_at_risk(uow: UnitOfWork, now: datetime, config: RulesConfig) -> int:
    per_type = [
        sa.and_(
            col(Callback.type) == kind,
            col(Callback.due_at) <= now + at_risk_margin(kind, config),
        )
        for kind in CallbackType
    ]
    ids = _claim_ids(
        uow,
        sa.and_(
            col(Callback.status).in_(_OPEN),
            col(Callback.at_risk_since).is_(None),
            sa.or_(*per_type),
        ),
    )
    if ids:
        uow.session.execute(
            sa.update(Callback)
            .where(col(Callback.id).in_(ids))
            .values(at_risk_since=now)
            .execution_options(synchronize_session=False)
        )
    _events(uow, ids, CallbackEventKind.AT_RISK, now, None)
    return len(ids)


def _flag_overdue(uow: UnitOfWork, now: datetime) -> int:
    ids = _claim_ids(
        uow,
        sa.and_(
            col(Callback.status).in_(_OPEN),
            col(Callback.overdue_since).is_(None),
            col(Callback.due_at) < now,
        ),
    )
    if ids:
        uow.session.execute(
            sa.update(Callback)
            .where(col(Callback.id).in_(ids))
            .values(overdue_since=now, at_risk_since=sa.func.coalesce(Callback.at_risk_since, now))
            .execution_options(synchronize_session=False)
        )
    _events(uow, ids, CallbackEventKind.OVERDUE, now, None)
    return len(ids)


def _urge_callbacks(uow: UnitOfWork, now: datetime, config: RulesConfig) -> int:
    # rule WO-4: an overdue callback without a reply gets one urging order to its owner.
    urged = sa.select(col(WorkOrder.id)).where(col(WorkOrder.urges_callback_id) == Callback.id)
    stmt = (
        sa.select(
            col(Callback.id), col(Callback.type), col(Callback.customer_id), col(Callback.due_at)
        )
        .where(
            col(Callback.status).in_(_OPEN),
            col(Callback.overdue_since).is_not(None),
            ~urged.exists(),
        )
        .order_by(col(Callback.id))
        .limit(BATCH)
        .with_for_update(of=Callback, skip_locked=True)
    )
    rows = uow.session.execute(stmt).all()
    if not rows:
        return 0
    orders = [
        {
            "kind": WorkOrderKind.URGING,
            "status": WorkOrderStatus.OPEN,
            "callback_id": row[0],
            "customer_id": row[2],
            "subject": f"催办：{row[1]} 回访 #{row[0]} 已超过回访时限",
            "details": f"目标时间 {row[3].isoformat()}，尚未完成回访。",
            "team": OWNER[CallbackType(row[1])],
            "created_at": now,
            "due_at": now + config.sla.urging_within,
            "urges_callback_id": row[0],
        }
        for row in rows
    ]
    created = _insert_urging(uow, orders)
    _events(uow, created, CallbackEventKind.URGED, now, "urging order sent (WO-4)")
    return len(created)


def _insert_urging(uow: UnitOfWork, orders: list[dict[str, Any]]) -> list[int]:
    """Insert urging orders; one that already exists (another replica was first) is skipped.
    Returns the ids of what they urge that were inserted here."""
    table = WorkOrder.__table__  # type: ignore[attr-defined]
    target = "urges_callback_id" if "urges_callback_id" in orders[0] else "urges_work_order_id"
    result = uow.session.execute(
        upsert_into(uow.session, table)
        .values(orders)
        .on_conflict_do_nothing(index_elements=[target], index_where=table.c[target].is_not(None))
        .returning(table.c[target])
    )
    return [int(i) for i in result.scalars()]


def _urge_work_orders(uow: UnitOfWork, now: datetime, config: RulesConfig) -> int:
    # rule WO-4: an overdue follow-up nobody took over gets one urging order to its team.
    urging = WorkOrder.__table__.alias("urging")  # type: ignore[attr-defined]
    stmt = (
        sa.select(WorkOrder)
        .where(
            col(WorkOrder.kind) == WorkOrderKind.FOLLOW_UP,
            col(WorkOrder.status) == WorkOrderStatus.OPEN,
            col(WorkOrder.due_at) < now,
            ~sa.select(sa.literal(1)).where(urging.c.urges_work_order_id == WorkOrder.id).exists(),
        )
        .order_by(col(WorkOrder.id))
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    overdue = list(uow.session.execute(stmt).scalars())
    if not overdue:
        return 0
    orders = [
        {
            "kind": WorkOrderKind.URGING,
            "status": WorkOrderStatus.OPEN,
            "callback_id": order.callback_id,
            "customer_id": order.customer_id,
            "subject": f"催办：跟进工单 #{order.id} 超时未处理",
            "details": order.subject,
            "team": order.team,
            "created_at": now,
            "due_at": now + config.sla.urging_within,
            "urges_work_order_id": order.id,
        }
        for order in overdue
    ]
    return len(_insert_urging(uow, orders))


def _expire(uow: UnitOfWork, now: datetime) -> int:
    ids = _claim_ids(
        uow,
        sa.and_(
            col(Callback.hard_due_at) <= now,
            sa.or_(
                col(Callback.status) == CallbackStatus.PENDING,
                # a claim that lapsed past the limit; a live one is left to finish its call
                sa.and_(
                    col(Callback.status) == CallbackStatus.CLAIMED,
                    col(Callback.lease_expires_at) <= now,
                ),
            ),
        ),
    )
    if ids:
        uow.session.execute(
            sa.update(Callback)
            .where(col(Callback.id).in_(ids))
            .values(
                status=CallbackStatus.EXPIRED,
                closed_at=now,
                close_reason="the hard limit passed before the customer was reached",
                **LEASE_ENDED,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    _events(uow, ids, CallbackEventKind.EXPIRED, now, "counted against KPI-1")
    return len(ids)


def _move_personal(uow: UnitOfWork, now: datetime, config: RulesConfig) -> int:
    ids = _claim_ids(
        uow,
        sa.and_(
            col(Callback.status) == CallbackStatus.PENDING,
            col(Callback.assigned_agent_id).is_not(None),
            col(Callback.available_at) <= now - config.sla.personal_grace,
        ),
    )
    if ids:
        uow.session.execute(
            sa.update(Callback)
            .where(col(Callback.id).in_(ids))
            .values(assigned_agent_id=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    _events(uow, ids, CallbackEventKind.MOVED_TO_SHARED, now, "not taken by its agent in time")
    return len(ids)


def watch(
    uow_factory: Callable[[], UnitOfWork], *, now: datetime, config: RulesConfig
) -> WatchReport:
    """One tick of the SLA watch. Expiry comes first, so that nothing past its hard limit is
    urged; then the flags, the urging orders and the personal callbacks."""
    report = WatchReport()
    report.expired = _in_batches(uow_factory, lambda u: _expire(u, now), "expire", report)
    report.at_risk = _in_batches(
        uow_factory, lambda u: _flag_at_risk(u, now, config), "at_risk", report
    )
    report.overdue = _in_batches(uow_factory, lambda u: _flag_overdue(u, now), "overdue", report)
    report.urged_callbacks = _in_batches(
        uow_factory, lambda u: _urge_callbacks(u, now, config), "urge_callbacks", report
    )
    report.urged_work_orders = _in_batches(
        uow_factory, lambda u: _urge_work_orders(u, now, config), "urge_work_orders", report
    )
    report.moved_to_shared = _in_batches(
        uow_factory, lambda u: _move_personal(u, now, config), "personal", report
    )
    # Retention (rules RT-2, WO-4): after expiry, so that a churn callback that expired in
    # this tick moves its case to level 2 now; then the overdue levels are urged.
    report.retention_escalated = _in_batches(
        uow_factory,
        lambda u: escalate_unreached(u, now=now, config=config, limit=BATCH),
        "retention_escalate",
        report,
    )
    report.urged_retention = _in_batches(
        uow_factory,
        lambda u: urge_overdue_cases(u, now=now, config=config, limit=BATCH),
        "retention_urge",
        report,
    )
    return report
