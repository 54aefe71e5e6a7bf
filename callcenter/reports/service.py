"""The nightly KPI snapshot, and the live queue figures for monitoring (KPI rules)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.config import CallbackType, Channel
from callcenter.db import UnitOfWork
from callcenter.questionnaires.answers import is_dissatisfied
from callcenter.questionnaires.models import Answer
from callcenter.questionnaires.service import current_answers, definition_of
from callcenter.reports.models import KpiSnapshot
from callcenter.sla.rules import OWNER
from callcenter.users.models import User
from callcenter.workorders.models import WorkOrder, WorkOrderStatus

# Any 64-bit number: the PostgreSQL advisory lock that keeps two snapshots from overlapping.
SNAPSHOT_LOCK = 10050_0001

_CLOSED = (
    CallbackStatus.COMPLETED,
    CallbackStatus.FAILED,
    CallbackStatus.EXPIRED,
    CallbackStatus.CANCELLED,
)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where local `day` starts and the next day starts."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def _last_attempt(column: Any) -> sa.ScalarSelect[Any]:
    return (
        sa.select(column)
        .where(col(Attempt.callback_id) == col(Callback.id))
        .order_by(col(Attempt.number).desc())
        .limit(1)
        .scalar_subquery()
    )


def snapshot_day(uow: UnitOfWork, *, day: date, zone: ZoneInfo, now: datetime) -> int | None:
    """Recompute the KPI snapshot of one local day; the number of rows written, or None when
    another process holds the snapshot lock (it is doing the same work)."""
    start, end = day_bounds(day, zone)
    with uow:
        session = uow.session
        if uow.dialect == "postgresql":
            locked = session.execute(
                sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SNAPSHOT_LOCK}
            ).scalar_one()
            if not locked:
                return None
        agent = _last_attempt(col(Attempt.agent_id)).label("agent_id")
        channel = _last_attempt(col(Attempt.channel)).label("channel")
        closed = session.execute(
            sa.select(Callback, agent, channel).where(
                col(Callback.status).in_(_CLOSED),
                col(Callback.closed_at) >= start,
                col(Callback.closed_at) < end,
            )
        ).all()
        teams = dict(
            session.execute(
                sa.select(col(User.id), col(User.team)).where(col(User.team).is_not(None))
            ).all()
        )
        figures: dict[tuple[str, CallbackType], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        team_of: dict[int, str] = {}
        completed_ids: list[Callback] = []
        by_channel: dict[int, Any] = {}
        for callback, agent_id, last_channel in closed:
            team = teams.get(agent_id) or OWNER[callback.type]
            assert callback.id is not None
            team_of[callback.id] = team
            row = figures[(team, callback.type)]
            row["closed"] += 1
            if callback.status is CallbackStatus.COMPLETED:
                row["completed"] += 1
                assert callback.closed_at is not None
                row["within_target"] += callback.closed_at <= callback.due_at  # rule KPI-1
                row["within_hard_limit"] += callback.closed_at <= callback.hard_due_at
                row["by_ivr"] += last_channel == Channel.IVR
                completed_ids.append(callback)
                by_channel[callback.id] = last_channel
            elif callback.status is CallbackStatus.EXPIRED:
                row["expired"] += 1
            elif callback.status is CallbackStatus.FAILED:
                row["failed"] += 1
        _count_surveys(session, completed_ids, team_of, figures)
        attempts = session.execute(
            sa.select(col(Callback.type), col(Attempt.agent_id), sa.func.count())
            .join(Callback, col(Callback.id) == col(Attempt.callback_id))
            .where(col(Attempt.recorded_at) >= start, col(Attempt.recorded_at) < end)
            .group_by(col(Callback.type), col(Attempt.agent_id))
        ).all()
        for kind, agent_id, count in attempts:
            figures[(teams.get(agent_id) or OWNER[kind], kind)]["attempts"] += count
        session.execute(sa.delete(KpiSnapshot).where(col(KpiSnapshot.day) == day))
        rows = [
            {"day": day, "team": team, "callback_type": kind, "computed_at": now, **dict(values)}
            for (team, kind), values in sorted(figures.items())
        ]
        if rows:
            session.execute(sa.insert(KpiSnapshot), rows)
        uow.commit()
        return len(rows)


def _count_surveys(
    session: Any,
    completed: list[Callback],
    team_of: Mapping[int, str],
    figures: dict[tuple[str, CallbackType], dict[str, int]],
) -> None:
    """Completed callbacks with answers, and those where the customer said they were
    dissatisfied, by the script's own definition of it (rule KPI-2)."""
    ids = [c.id for c in completed if c.id is not None and c.script_version_id is not None]
    if not ids:
        return
    answers: dict[int, list[Answer]] = defaultdict(list)
    for start in range(0, len(ids), 900):
        stmt = sa.select(Answer).where(col(Answer.callback_id).in_(ids[start : start + 900]))
        for answer in session.execute(stmt).scalars():
            answers[answer.callback_id].append(answer)
    definitions: dict[int, Any] = {}
    for callback in completed:
        if callback.id not in answers or callback.script_version_id is None:
            continue
        version = callback.script_version_id
        if version not in definitions:
            definitions[version] = definition_of(session, version)[1]
        given = {q: a.value for q, a in current_answers(answers[callback.id]).items()}
        row = figures[(team_of[callback.id], callback.type)]
        row["surveys"] += 1
        row["dissatisfied"] += is_dissatisfied(definitions[version], given)


@dataclass(frozen=True)
class QueueFigures:
    depth: dict[tuple[str, str], int]  # (type, status) → open callbacks
    at_risk: int
    overdue: int
    open_work_orders: int
    overdue_work_orders: int


def queue_figures(uow: UnitOfWork, *, now: datetime) -> QueueFigures:
    """What monitoring shows: the queue by type and state, at-risk and overdue counts."""
    open_ = col(Callback.status).in_((CallbackStatus.PENDING, CallbackStatus.CLAIMED))
    with uow:
        session = uow.session
        depth = {
            (str(kind), str(status)): int(count)
            for kind, status, count in session.execute(
                sa.select(col(Callback.type), col(Callback.status), sa.func.count())
                .where(open_)
                .group_by(col(Callback.type), col(Callback.status))
            )
        }
        at_risk, overdue = session.execute(
            sa.select(
                sa.func.count().filter(col(Callback.at_risk_since).is_not(None)),
                sa.func.count().filter(col(Callback.due_at) < now),
            ).where(open_)
        ).one()
        orders, late_orders = session.execute(
            sa.select(sa.func.count(), sa.func.count().filter(col(WorkOrder.due_at) < now)).where(
                col(WorkOrder.status) == WorkOrderStatus.OPEN
            )
        ).one()
    return QueueFigures(depth, int(at_risk), int(overdue), int(orders), int(late_orders))
