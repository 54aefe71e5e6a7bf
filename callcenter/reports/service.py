"""The nightly KPI snapshot, and the live queue figures for monitoring (KPI rules)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.config import CallbackType, Channel, KpiTargets, RulesConfig
from callcenter.customers.models import Customer
from callcenter.customers.rules import mask_phone
from callcenter.db import UnitOfWork
from callcenter.questionnaires.answers import is_dissatisfied
from callcenter.questionnaires.models import Answer
from callcenter.questionnaires.service import current_answers, definition_of
from callcenter.reports import rules
from callcenter.reports.models import ChurnDay, KpiSnapshot, OfferDay, ReportDay, ReportHour
from callcenter.reports.schemas import (
    ChurnCasePage,
    ChurnCaseRow,
    ChurnFilters,
    ChurnReport,
    FigureRead,
    HourRead,
    KpiFilters,
    KpiReport,
    LevelRateRead,
    OfferFiguresRead,
    ParetoBarRead,
    TypeRow,
)
from callcenter.retention.models import RetentionCase, RetentionStep
from callcenter.retention.rules import CaseState
from callcenter.sla.rules import OWNER
from callcenter.users.models import User, UserRole
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus

# The PostgreSQL advisory lock that keeps two snapshots from overlapping: this number with the
# hash of the schema, so that two schemas of one database (tenants, tests) never wait on each
# other.
SNAPSHOT_LOCK = 10050_0001
SNAPSHOT_LOCK_SQL = "pg_try_advisory_xact_lock(:key, hashtext(current_schema()))"

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
                sa.text(f"SELECT {SNAPSHOT_LOCK_SQL}"), {"key": SNAPSHOT_LOCK}
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
        unhappy = _count_surveys(session, completed_ids, team_of, figures)
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
        _write_report_days(
            session, day=day, zone=zone, now=now, closed=closed, teams=teams, unhappy=unhappy
        )
        _write_churn_days(session, day=day, zone=zone)
        uow.commit()
        return len(rows)


def _count_surveys(
    session: Any,
    completed: list[Callback],
    team_of: Mapping[int, str],
    figures: dict[tuple[str, CallbackType], dict[str, int]],
) -> set[int]:
    """Completed callbacks with answers, and those where the customer said they were
    dissatisfied, by the script's own definition of it (rule KPI-2); the ids of the latter."""
    unhappy: set[int] = set()
    ids = [c.id for c in completed if c.id is not None and c.script_version_id is not None]
    if not ids:
        return unhappy
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
        if is_dissatisfied(definitions[version], given):
            row["dissatisfied"] += 1
            unhappy.add(callback.id)
    return unhappy


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


# ---------------------------------------------------------------------------------------
# The manager's snapshots: by team, agent and type; by hour; churn and offers
# ---------------------------------------------------------------------------------------


def _write_report_days(
    session: Any,
    *,
    day: date,
    zone: ZoneInfo,
    now: datetime,
    closed: Sequence[Any],
    teams: Mapping[int, str],
    unhappy: set[int],
) -> None:
    """The day's `report_days` and `report_hours` rows (rules KPI-1..KPI-3), in the
    snapshot's transaction."""
    start, end = day_bounds(day, zone)
    tallies: dict[tuple[str, int | None, CallbackType], rules.Tally] = defaultdict(rules.Tally)
    for callback, agent_id, last_channel in closed:
        assert callback.closed_at is not None
        key = (teams.get(agent_id) or OWNER[callback.type], agent_id, callback.type)
        tallies[key].add(
            rules.ClosedCallback(
                status=callback.status,
                closed_at=callback.closed_at,
                due_at=callback.due_at,
                hard_due_at=callback.hard_due_at,
                attempts=callback.attempt_count,
                channel=last_channel,
                dissatisfied=callback.id in unhappy,
            )
        )
    hours: dict[tuple[int, str, int | None, CallbackType], list[int]] = defaultdict(lambda: [0, 0])
    attempts = session.execute(
        sa.select(
            col(Callback.type),
            col(Attempt.agent_id),
            col(Attempt.recorded_at),
            col(Attempt.outcome),
        )
        .join(Callback, col(Callback.id) == col(Attempt.callback_id))
        .where(col(Attempt.recorded_at) >= start, col(Attempt.recorded_at) < end)
    )
    for kind, agent_id, recorded_at, outcome in attempts:
        team = teams.get(agent_id) or OWNER[kind]
        tally = tallies[(team, agent_id, kind)]
        tally.attempts += 1
        answered = outcome == AttemptOutcome.ANSWERED
        tally.answered += answered
        counts = hours[(recorded_at.astimezone(zone).hour, team, agent_id, kind)]
        counts[0] += 1
        counts[1] += answered
    orders = session.execute(
        sa.select(
            col(Callback.type),
            col(WorkOrder.created_by_id),
            col(WorkOrder.due_at),
            col(WorkOrder.handed_over_at),
        )
        .join(Callback, col(Callback.id) == col(WorkOrder.callback_id))
        .where(
            col(WorkOrder.kind) == WorkOrderKind.FOLLOW_UP,
            col(WorkOrder.created_at) >= start,
            col(WorkOrder.created_at) < end,
        )
    )
    for kind, agent_id, due_at, handed_over_at in orders:
        team = teams.get(agent_id) or OWNER[kind]
        tallies[(team, agent_id, kind)].add_transfer(due_at=due_at, handed_over_at=handed_over_at)
    session.execute(sa.delete(ReportDay).where(col(ReportDay.day) == day))
    session.execute(sa.delete(ReportHour).where(col(ReportHour.day) == day))
    day_rows = [
        {
            "day": day,
            "team": team,
            "agent_id": agent_id,
            "callback_type": kind,
            "computed_at": now,
            **asdict(tally),
        }
        for (team, agent_id, kind), tally in tallies.items()
    ]
    if day_rows:
        session.execute(sa.insert(ReportDay), day_rows)
    hour_rows = [
        {
            "day": day,
            "hour": hour,
            "team": team,
            "agent_id": agent_id,
            "callback_type": kind,
            "attempts": tried,
            "answered": answered,
        }
        for (hour, team, agent_id, kind), (tried, answered) in hours.items()
    ]
    if hour_rows:
        session.execute(sa.insert(ReportHour), hour_rows)


def _write_churn_days(session: Any, *, day: date, zone: ZoneInfo) -> None:
    """The day's `churn_days` (cases decided) and `offer_days` (offers made) rows (rules
    CB-6, RT-1..RT-4)."""
    start, end = day_bounds(day, zone)
    region = sa.func.coalesce(col(Customer.region), "")
    decided = session.execute(
        sa.select(
            region,
            col(RetentionCase.level),
            sa.func.coalesce(col(RetentionCase.reason_code), ""),
            col(RetentionCase.state),
            sa.func.count(),
        )
        .join(Customer, col(Customer.id) == col(RetentionCase.customer_id))
        .where(
            col(RetentionCase.state).in_((CaseState.RETAINED, CaseState.LOST)),
            col(RetentionCase.closed_at) >= start,
            col(RetentionCase.closed_at) < end,
        )
        .group_by(region, col(RetentionCase.level), col(RetentionCase.reason_code))
        .group_by(col(RetentionCase.state))
    ).all()
    accepted = sa.func.coalesce(col(RetentionStep.offer_accepted), False)
    offers = session.execute(
        sa.select(
            region,
            col(RetentionStep.level),
            col(RetentionStep.offer_code),
            sa.func.count(),
            sa.func.count().filter(accepted),
            sa.func.coalesce(sa.func.sum(col(RetentionStep.offer_cost_yuan)).filter(accepted), 0),
        )
        .join(RetentionCase, col(RetentionCase.id) == col(RetentionStep.case_id))
        .join(Customer, col(Customer.id) == col(RetentionCase.customer_id))
        .where(
            col(RetentionStep.offer_code).is_not(None),
            col(RetentionStep.recorded_at) >= start,
            col(RetentionStep.recorded_at) < end,
        )
        .group_by(region, col(RetentionStep.level), col(RetentionStep.offer_code))
    ).all()
    session.execute(sa.delete(ChurnDay).where(col(ChurnDay.day) == day))
    session.execute(sa.delete(OfferDay).where(col(OfferDay.day) == day))
    if decided:
        session.execute(
            sa.insert(ChurnDay),
            [
                {
                    "day": day,
                    "region": reg,
                    "level": level,
                    "reason_code": reason,
                    "state": str(state),
                    "cases": count,
                }
                for reg, level, reason, state, count in decided
            ],
        )
    if offers:
        session.execute(
            sa.insert(OfferDay),
            [
                {
                    "day": day,
                    "region": reg,
                    "level": level,
                    "offer_code": code,
                    "made": made,
                    "accepted": taken,
                    "accepted_cost_yuan": int(cost),
                }
                for reg, level, code, made, taken, cost in offers
            ],
        )


# ---------------------------------------------------------------------------------------
# Reading: the KPI dashboard
# ---------------------------------------------------------------------------------------

_TALLY_FIELDS = tuple(rules.Tally.__dataclass_fields__)


def _share(
    kind: str, rule: str | None, ratio: rules.Ratio, target: float | None, near: float
) -> FigureRead:
    return FigureRead(
        key=kind,
        rule=rule,
        value=ratio.value,
        numerator=ratio.numerator,
        denominator=ratio.denominator,
        target=target,
        grade=rules.grade(ratio.value, target, near),
        unit="share",
    )


def figures_of(tally: rules.Tally, targets: KpiTargets) -> list[FigureRead]:
    """The dashboard's figures of a tally, each with its target and grade."""
    near = targets.near
    per_completed = rules.attempts_per_completed(tally)
    return [
        _share("timeliness", "KPI-1", rules.timeliness_rate(tally), targets.timeliness, near),
        _share("satisfaction", "KPI-2", rules.satisfaction_rate(tally), targets.satisfaction, near),
        _share(
            "transfer_timeliness",
            "KPI-3",
            rules.transfer_timeliness(tally),
            targets.transfer_timeliness,
            near,
        ),
        _share("within_target", "CB-1..CB-4", rules.within_target_rate(tally), None, near),
        _share("within_hard_limit", "CB-1..CB-4", rules.within_hard_limit_rate(tally), None, near),
        FigureRead(
            key="attempts_per_completed",
            value=per_completed,
            numerator=tally.completed_attempts,
            denominator=tally.completed,
            grade=rules.Grade.NONE,
            unit="ratio",
        ),
        _share("ivr_share", None, rules.ivr_share(tally), None, near),
        _share("answer_rate", None, rules.answer_rate(tally.attempts, tally.answered), None, near),
    ]


def _day_conditions(model: Any, filters: KpiFilters) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [
        col(model.day) >= filters.start,
        col(model.day) <= filters.end,
    ]
    if filters.team:
        conditions.append(col(model.team) == filters.team)
    if filters.agent_id is not None:
        conditions.append(col(model.agent_id) == filters.agent_id)
    if filters.callback_type is not None:
        conditions.append(col(model.callback_type) == filters.callback_type)
    return conditions


def kpis(uow: UnitOfWork, *, filters: KpiFilters, config: RulesConfig) -> KpiReport:
    """The KPI dashboard of a period, team, agent and callback type, from the nightly
    snapshots (`report_days`, `report_hours`): sums over at most one row per day, team,
    agent and type, never the callbacks themselves (rules KPI-1..KPI-3)."""
    sums = [sa.func.coalesce(sa.func.sum(getattr(ReportDay, name)), 0) for name in _TALLY_FIELDS]
    with uow:
        session = uow.session
        by_type_rows = session.execute(
            sa.select(col(ReportDay.callback_type), *sums)
            .where(*_day_conditions(ReportDay, filters))
            .group_by(col(ReportDay.callback_type))
        ).all()
        days, computed_at = session.execute(
            sa.select(
                sa.func.count(sa.distinct(col(ReportDay.day))),
                sa.func.max(col(ReportDay.computed_at)),
            ).where(*_day_conditions(ReportDay, filters))
        ).one()
        hour_rows = session.execute(
            sa.select(
                col(ReportHour.hour),
                sa.func.sum(col(ReportHour.attempts)),
                sa.func.sum(col(ReportHour.answered)),
            )
            .where(*_day_conditions(ReportHour, filters))
            .group_by(col(ReportHour.hour))
        ).all()
    total = rules.Tally()
    by_type: list[TypeRow] = []
    for kind, *values in sorted(by_type_rows, key=lambda row: list(CallbackType).index(row[0])):
        tally = rules.Tally(**{n: int(v) for n, v in zip(_TALLY_FIELDS, values, strict=True)})
        total.merge(tally)
        by_type.append(
            TypeRow(
                callback_type=kind,
                orders=tally.orders,
                timeliness=rules.timeliness_rate(tally).value,
                completed=tally.completed,
                within_target=tally.within_target,
                within_hard_limit=tally.within_hard_limit,
                satisfaction=rules.satisfaction_rate(tally).value,
                attempts_per_completed=rules.attempts_per_completed(tally),
                by_ivr=tally.by_ivr,
                by_agent=tally.completed - tally.by_ivr,
            )
        )
    per_hour = {int(h): (int(a), int(b)) for h, a, b in hour_rows}
    by_hour = [
        HourRead(
            hour=hour,
            attempts=per_hour[hour][0],
            answered=per_hour[hour][1],
            answer_rate=rules.answer_rate(*per_hour[hour]).value,
        )
        for hour in sorted(per_hour)
    ]
    return KpiReport(
        filters=filters,
        figures=figures_of(total, config.kpi),
        by_hour=by_hour,
        by_type=by_type,
        snapshot_days=int(days or 0),
        computed_at=computed_at,
    )


def teams_and_agents(uow: UnitOfWork) -> tuple[list[str], list[tuple[int, str, str]]]:
    """The teams the dashboard filters by, and the agents: `(id, username, display name)`."""
    callers = (UserRole.AGENT, UserRole.SUPERVISOR, UserRole.RETENTION_LEAD)
    with uow:
        session = uow.session
        teams = sorted(
            {*OWNER.values()}
            | set(
                session.execute(
                    sa.select(col(User.team)).where(col(User.team).is_not(None)).distinct()
                ).scalars()
            )
        )
        agents = [
            (int(i), str(u), str(d))
            for i, u, d in session.execute(
                sa.select(col(User.id), col(User.username), col(User.display_name))
                .where(col(User.role).in_(callers))
                .order_by(col(User.username))
            )
        ]
    return teams, agents


# ---------------------------------------------------------------------------------------
# Reading: churn
# ---------------------------------------------------------------------------------------


def _reason_labels(code: str, config: RulesConfig) -> tuple[str, str]:
    reason = config.retention.reason(code) if code else None
    if reason is None:
        return (code or "未记录", code or "Not recorded")
    return reason.zh, reason.en


def churn_reasons(uow: UnitOfWork, *, filters: ChurnFilters, config: RulesConfig) -> ChurnReport:
    """The churn of a period, from the nightly snapshots (`churn_days`, `offer_days`): the
    Pareto of reasons, the retention rate per level, what each offer kept and cost (rules
    CB-6, RT-1..RT-4). Region, level, outcome and reason narrow it."""
    conditions: list[sa.ColumnElement[bool]] = [
        col(ChurnDay.day) >= filters.start,
        col(ChurnDay.day) <= filters.end,
    ]
    offer_conditions: list[sa.ColumnElement[bool]] = [
        col(OfferDay.day) >= filters.start,
        col(OfferDay.day) <= filters.end,
    ]
    if filters.region is not None:
        conditions.append(col(ChurnDay.region) == filters.region)
        offer_conditions.append(col(OfferDay.region) == filters.region)
    if filters.level is not None:
        offer_conditions.append(col(OfferDay.level) == filters.level)
    if filters.reason is not None:
        conditions.append(col(ChurnDay.reason_code) == filters.reason)
    with uow:
        session = uow.session
        decided = session.execute(
            sa.select(
                col(ChurnDay.level),
                col(ChurnDay.state),
                col(ChurnDay.reason_code),
                sa.func.sum(col(ChurnDay.cases)),
            )
            .where(*conditions)
            .group_by(col(ChurnDay.level), col(ChurnDay.state), col(ChurnDay.reason_code))
        ).all()
        offers = session.execute(
            sa.select(
                col(OfferDay.offer_code),
                sa.func.sum(col(OfferDay.made)),
                sa.func.sum(col(OfferDay.accepted)),
                sa.func.sum(col(OfferDay.accepted_cost_yuan)),
            )
            .where(*offer_conditions)
            .group_by(col(OfferDay.offer_code))
        ).all()
        regions = sorted(
            r
            for r in session.execute(
                sa.select(col(ChurnDay.region))
                .where(col(ChurnDay.day) >= filters.start, col(ChurnDay.day) <= filters.end)
                .distinct()
            ).scalars()
            if r
        )
    reasons: dict[str, int] = defaultdict(int)
    by_level: dict[tuple[int, str], int] = defaultdict(int)
    for level, state, reason, count in decided:
        by_level[(int(level), str(state))] += int(count)
        if (filters.level is None or level == filters.level) and (
            filters.state is None or state == filters.state
        ):
            reasons[str(reason)] += int(count)
    retained = sum(n for (_, s), n in by_level.items() if s == CaseState.RETAINED)
    lost = sum(n for (_, s), n in by_level.items() if s == CaseState.LOST)
    offer_rows = []
    order = {offer.code: n for n, offer in enumerate(config.retention.offers)}
    for code, made, taken, cost in sorted(offers, key=lambda r: (order.get(r[0], 99), r[0])):
        figures = rules.OfferFigures(str(code), int(made), int(taken), int(cost))
        spec = config.retention.offer(str(code))
        offer_rows.append(
            OfferFiguresRead(
                offer_code=figures.offer_code,
                zh=spec.zh if spec else figures.offer_code,
                en=spec.en if spec else figures.offer_code,
                made=figures.made,
                accepted=figures.accepted,
                acceptance=figures.acceptance,
                accepted_cost_yuan=figures.accepted_cost_yuan,
                cost_per_retained_yuan=figures.cost_per_retained,
            )
        )
    bars = []
    for bar in rules.pareto(reasons):
        zh, en = _reason_labels(bar.code, config)
        bars.append(
            ParetoBarRead(
                code=bar.code,
                zh=zh,
                en=en,
                count=bar.count,
                share=bar.share,
                cumulative=bar.cumulative,
            )
        )
    levels = [
        LevelRateRead(
            level=r.level,
            reached=r.reached,
            retained=r.retained,
            lost=r.lost,
            retention_rate=r.rate,
        )
        for r in rules.retention_by_level((lv, st, n) for (lv, st), n in by_level.items())
    ]
    return ChurnReport(
        filters=filters,
        decided=retained + lost,
        retained=retained,
        lost=lost,
        retention_rate=rules.Ratio(retained, retained + lost).value,
        offers_cost_yuan=sum(o.accepted_cost_yuan for o in offer_rows),
        pareto=bars,
        levels=levels,
        offers=offer_rows,
        regions=regions,
    )


def churn_cases(
    uow: UnitOfWork,
    *,
    filters: ChurnFilters,
    zone: ZoneInfo,
    config: RulesConfig,
    limit: int = 50,
    offset: int = 0,
) -> ChurnCasePage:
    """The cases behind the churn figures: decided in the period, narrowed by region, level,
    outcome and reason, the latest first; phones masked. With `state=lost`: the lost
    customers and the day they said they might come back (rule RT-4)."""
    start, _ = day_bounds(filters.start, zone)
    _, end = day_bounds(filters.end, zone)
    states = [filters.state] if filters.state else [CaseState.RETAINED, CaseState.LOST]
    conditions: list[sa.ColumnElement[bool]] = [
        col(RetentionCase.state).in_(states),
        col(RetentionCase.closed_at) >= start,
        col(RetentionCase.closed_at) < end,
    ]
    if filters.level is not None:
        conditions.append(col(RetentionCase.level) == filters.level)
    if filters.reason is not None:
        conditions.append(
            col(RetentionCase.reason_code).is_(None)
            if filters.reason == ""
            else col(RetentionCase.reason_code) == filters.reason
        )
    if filters.region is not None:
        conditions.append(sa.func.coalesce(col(Customer.region), "") == filters.region)

    def decided_step(column: Any) -> sa.ScalarSelect[Any]:
        # The step of the level where the case was decided (one per level).
        return (
            sa.select(column)
            .where(
                col(RetentionStep.case_id) == col(RetentionCase.id),
                col(RetentionStep.level) == col(RetentionCase.level),
            )
            .limit(1)
            .scalar_subquery()
        )

    with uow:
        session = uow.session
        counted = sa.select(sa.func.count()).select_from(RetentionCase)
        if filters.region is not None:
            counted = counted.join(Customer, col(Customer.id) == col(RetentionCase.customer_id))
        total = session.execute(counted.where(*conditions)).scalar_one()
        rows = session.execute(
            sa.select(
                RetentionCase,
                col(Customer.external_id),
                col(Customer.name),
                col(Customer.phone),
                col(Customer.region),
                decided_step(col(RetentionStep.win_back)),
                decided_step(col(RetentionStep.win_back_on)),
            )
            .join(Customer, col(Customer.id) == col(RetentionCase.customer_id))
            .where(*conditions)
            .order_by(col(RetentionCase.closed_at).desc(), col(RetentionCase.id).desc())
            .limit(limit)
            .offset(offset)
        ).all()
    items = []
    for case, external_id, name, phone, region, win_back, win_back_on in rows:
        assert case.id is not None
        reason = config.retention.reason(case.reason_code) if case.reason_code else None
        items.append(
            ChurnCaseRow(
                case_id=case.id,
                customer_id=external_id,
                customer_name=name,
                phone_masked=mask_phone(phone),  # never the number itself in a report
                region=region,
                level=case.level,
                state=str(case.state),
                reason_code=case.reason_code,
                reason_zh=reason.zh if reason else None,
                reason_en=reason.en if reason else None,
                closed_at=case.closed_at,
                win_back=win_back,
                win_back_on=win_back_on,
            )
        )
    return ChurnCasePage(items=items, total=total, limit=limit, offset=offset)
