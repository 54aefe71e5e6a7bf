"""Capacity forecast and the roster it rests on (rule CB-5). Each call owns one transaction.

Average handling time (AHT): the agent time one claim takes, measured from the attempts of the
last 14 days, at most the 20,000 most recent (both configurable). A claim's start is not kept
once its attempt is recorded, so a claim is measured from the end of the same agent's previous
claim (the last attempt recorded under it) to its own end: the call, the wrap-up and the step
to the next claim. A gap longer than the lease cannot be one claim (an attempt after the lease
is refused): it holds a break and is left out. Too few measured claims: the configured default
(6 minutes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.config import Channel, ForecastRule, RulesConfig
from callcenter.customers.models import Customer
from callcenter.db import UnitOfWork, upsert_into
from callcenter.errors import InvalidField
from callcenter.forecast import rules
from callcenter.forecast.models import RosterEntry
from callcenter.forecast.rules import CallbackRow, HandlingTime
from callcenter.forecast.schemas import (
    MAX_AGENTS,
    ForecastRead,
    ForecastWindow,
    PredictedMiss,
    RosterRead,
)
from callcenter.users.models import User

DEFAULT_RULE = ForecastRule()
MAX_ROSTER_DAYS = 366
_UNIQUE = "uq_roster_day_window_team"
_UPDATED = ("agents", "updated_by_id", "updated_at")
# Literal SQL, as in the claim, so that PostgreSQL matches the partial queue index.
_OPEN_SQL = "callbacks.status IN ('pending', 'claimed')"
_UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _epoch(column: Any, dialect: str) -> sa.ColumnElement[float]:
    """An instant column as POSIX seconds, computed by the database (no datetime per row)."""
    if dialect == "sqlite":
        # Stored as UTC text; julianday() has millisecond precision, so round to it.
        seconds = (sa.func.julianday(column) - _UNIX_EPOCH_JULIAN_DAY) * 86400.0
        return sa.func.round(seconds, 3, type_=sa.Double())
    # date_part() is double precision already; EXTRACT() computes a numeric (slower).
    return sa.func.date_part("epoch", column, type_=sa.Double())


def _open_callbacks(session: Session, dialect: str, now: datetime) -> list[CallbackRow]:
    """Open agent callbacks (pending or claimed) with their customer's zone, in queue order.

    A claimed callback is being called now, so it is callable from now on."""
    release = sa.case(
        (
            col(Callback.status) == CallbackStatus.CLAIMED.value,
            sa.literal(now.timestamp(), sa.Double()),
        ),
        else_=_epoch(col(Callback.available_at), dialect),
    )
    stmt = (
        sa.select(
            col(Callback.id),
            col(Customer.timezone),
            release,
            _epoch(col(Callback.due_at), dialect),
            _epoch(col(Callback.hard_due_at), dialect),
        )
        .join(Customer, col(Customer.id) == col(Callback.customer_id))
        .where(
            sa.literal_column(_OPEN_SQL, sa.Boolean()).self_group(),
            col(Callback.channel) == Channel.AGENT.value,
        )
        .order_by(col(Callback.hard_due_at), col(Callback.due_at), col(Callback.id))
    )
    if dialect != "postgresql":
        return cast(list[CallbackRow], list(session.execute(stmt)))
    connection = session.connection()
    # 100,000 rows: psycopg's binary format hands over floats without parsing text, and its
    # plain tuples skip the ORM's row objects. Same connection, same transaction. Every
    # parameter is a plain str or float, so no bind processing is skipped.
    compiled = stmt.compile(dialect=connection.dialect)
    driver: Any = connection.connection.driver_connection
    with driver.cursor(binary=True) as cursor:
        cursor.execute(compiled.string, compiled.params)
        return cast(list[CallbackRow], cursor.fetchall())


def _measured_handling(
    session: Session, dialect: str, *, now: datetime, config: RulesConfig, rule: ForecastRule
) -> tuple[int, float | None]:
    """(claims measured, their mean agent time in seconds); see the module's docstring."""
    recent = (
        sa.select(
            col(Attempt.agent_id).label("agent_id"),
            col(Attempt.claim_id).label("claim_id"),
            _epoch(col(Attempt.recorded_at), dialect).label("at"),
        )
        .where(
            col(Attempt.claim_id).is_not(None),
            col(Attempt.agent_id).is_not(None),
            col(Attempt.channel) == Channel.AGENT,
            col(Attempt.recorded_at) > now - rule.handling_time_lookback,
            col(Attempt.recorded_at) <= now,
        )
        # Attempts are inserted when recorded and never updated (rule SV-4): the newest have
        # the highest ids, read from the end of the primary key instead of a scan.
        .order_by(col(Attempt.id).desc())
        .limit(rule.handling_time_sample)
        .subquery("recent")
    )
    claims = (
        sa.select(recent.c.agent_id, sa.func.max(recent.c.at).label("ended"))
        .group_by(recent.c.agent_id, recent.c.claim_id)
        .subquery("claims")
    )
    previous = sa.func.lag(claims.c.ended).over(
        partition_by=claims.c.agent_id, order_by=claims.c.ended
    )
    gaps = sa.select((claims.c.ended - previous).label("gap")).subquery("gaps")
    stmt = sa.select(sa.func.count(gaps.c.gap), sa.func.avg(gaps.c.gap)).where(
        gaps.c.gap > 0, gaps.c.gap <= config.attempts.lease.total_seconds()
    )
    count, mean = session.execute(stmt).one()
    return int(count), None if mean is None else float(mean)


def _rostered(session: Session, days: Iterable[date]) -> dict[tuple[date, time], int]:
    stmt = (
        sa.select(
            col(RosterEntry.day), col(RosterEntry.window_start), sa.func.sum(RosterEntry.agents)
        )
        .where(col(RosterEntry.day).in_(sorted(set(days))))
        .group_by(col(RosterEntry.day), col(RosterEntry.window_start))
    )
    return {(day, start): int(total) for day, start, total in session.execute(stmt)}


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _hours(value: float) -> float:
    return round(value, 2)


def _read(
    result: rules.Forecast,
    handling: HandlingTime,
    *,
    now: datetime,
    config: RulesConfig,
) -> ForecastRead:
    windows = [
        ForecastWindow(
            day=load.window.day,
            window_start=load.window.window_start,
            starts_at=load.window.starts_at,
            ends_at=load.window.ends_at,
            agents=load.agents,
            capacity=load.capacity,
            demand=load.demand,
            assigned=load.assigned,
            shortfall=load.shortfall,
            extra_agent_hours_for_hard_limits=_hours(load.extra_agent_hours_for_hard_limits),
            extra_agent_hours_for_targets=_hours(load.extra_agent_hours_for_targets),
        )
        for load in result.windows
    ]
    misses = [
        PredictedMiss(
            callback_id=miss.callback[0],
            deadline=miss.deadline,
            due_at=_at(miss.callback[3]),
            hard_due_at=_at(miss.callback[4]),
            predicted_at=None if miss.predicted_at is None else _at(miss.predicted_at),
            avoidable=miss.avoidable,
        )
        for miss in result.misses
    ]
    return ForecastRead(
        generated_at=now,
        timezone=config.default_timezone,
        horizon_end=result.horizon_end,
        aht_seconds=handling.duration.total_seconds(),
        aht_measured=handling.measured,
        aht_samples=handling.samples,
        open_callbacks=result.callbacks,
        called_within_horizon=result.called,
        carried_beyond_horizon=result.carried,
        missing_hard_limit=result.missing_hard_limit,
        missing_target_only=result.missing_target_only,
        extra_agent_hours_for_hard_limits=_hours(
            sum(load.extra_agent_hours_for_hard_limits for load in result.windows)
        ),
        extra_agent_hours_for_targets=_hours(
            sum(load.extra_agent_hours_for_targets for load in result.windows)
        ),
        windows=windows,
        misses=misses,
        misses_truncated=len(misses) < result.missing_hard_limit + result.missing_target_only,
    )


def forecast(
    uow: UnitOfWork,
    *,
    now: datetime,
    config: RulesConfig,
    rule: ForecastRule | None = None,
    miss_limit: int = 500,
) -> ForecastRead:
    """If nothing changes: which open agent callbacks miss their target or hard limit in the
    rest of today and tomorrow, and how many more agent-hours each window would need."""
    rule = rule or config.forecast
    if miss_limit < 0:
        raise InvalidField("limit", "must not be negative")
    windows, horizon_end = rules.horizon_windows(
        now, ZoneInfo(config.default_timezone), config.windows
    )
    with uow:
        session, dialect = uow.session, uow.dialect
        samples, mean = _measured_handling(session, dialect, now=now, config=config, rule=rule)
        agents = _rostered(session, (w.day for w in windows))
        callbacks = _open_callbacks(session, dialect, now)
    handling = rules.handling_time(samples=samples, mean_seconds=mean, rule=rule)
    result = rules.forecast(
        callbacks,
        windows=windows,
        horizon_end=horizon_end,
        agents=agents,
        handling=handling.duration,
        default_zone=config.default_timezone,
        calling_windows=config.windows,
        in_queue_order=True,
        miss_limit=miss_limit,
    )
    return _read(result, handling, now=now, config=config)


# ---------------------------------------------------------------------------------------
# The roster
# ---------------------------------------------------------------------------------------


def _roster_reads(session: Session, *conditions: sa.ColumnElement[bool]) -> list[RosterRead]:
    stmt = (
        sa.select(RosterEntry, col(User.username))
        .outerjoin(User, col(User.id) == col(RosterEntry.updated_by_id))
        .where(*conditions)
        .order_by(
            col(RosterEntry.day),
            col(RosterEntry.window_start),
            sa.func.coalesce(col(RosterEntry.team), ""),
        )
    )
    reads = []
    for entry, username in session.execute(stmt):
        assert entry.id is not None
        reads.append(
            RosterRead(
                id=entry.id,
                day=entry.day,
                window_start=entry.window_start,
                agents=entry.agents,
                team=entry.team,
                updated_by=username,
                updated_at=entry.updated_at,
            )
        )
    return reads


def _check_roster(
    *, window_start: time, agents: int, team: str | None, config: RulesConfig
) -> str | None:
    starts = sorted(window.start for window in config.windows)
    if window_start not in starts:
        names = ", ".join(start.strftime("%H:%M") for start in starts)
        raise InvalidField(
            "window_start",
            f"{window_start.isoformat()} is not the start of a calling window; "
            f"the windows start at {names} (rule CB-5)",
        )
    if not 0 <= agents <= MAX_AGENTS:
        raise InvalidField("agents", f"must be between 0 and {MAX_AGENTS}")
    team = (team or "").strip() or None
    if team is not None and len(team) > 64:
        raise InvalidField("team", "at most 64 characters")
    return team


def set_roster(
    uow: UnitOfWork,
    *,
    day: date,
    window_start: time,
    agents: int,
    team: str | None,
    user: User,
    now: datetime,
    config: RulesConfig,
) -> RosterRead:
    """Set the agents of one window of one day (for one team, or for none): insert or replace.
    Raises InvalidField."""
    team = _check_roster(window_start=window_start, agents=agents, team=team, config=config)
    values = {
        "day": day,
        "window_start": window_start,
        "agents": agents,
        "team": team,
        "updated_by_id": user.id,
        "updated_at": now,
    }
    table = RosterEntry.__table__  # type: ignore[attr-defined]
    with uow:
        session = uow.session
        if uow.dialect == "postgresql":
            insert = upsert_into(session, table).values(values)
            stmt = insert.on_conflict_do_update(
                constraint=_UNIQUE,
                set_={name: insert.excluded[name] for name in _UPDATED},
            ).returning(table.c.id)
            entry_id = session.execute(stmt).scalar_one()
        else:
            # SQLite began the transaction IMMEDIATE: we hold the write lock, read-then-write
            # is safe (and NULL teams are not unique to SQLite's constraint).
            same_team = table.c.team.is_(None) if team is None else table.c.team == team
            found = session.execute(
                sa.select(table.c.id).where(
                    table.c.day == day, table.c.window_start == window_start, same_team
                )
            ).scalar_one_or_none()
            if found is None:
                entry_id = session.execute(
                    sa.insert(table).values(values).returning(table.c.id)
                ).scalar_one()
            else:
                entry_id = found
                session.execute(sa.update(table).where(table.c.id == found).values(values))
        (result,) = _roster_reads(session, col(RosterEntry.id) == entry_id)
        uow.commit()
        return result


def list_roster(uow: UnitOfWork, *, start: date, end: date) -> list[RosterRead]:
    """The roster from `start` to `end`, both included, by day, window and team."""
    if end < start:
        raise InvalidField("end", "is before start")
    if end - start >= timedelta(days=MAX_ROSTER_DAYS):
        raise InvalidField("end", f"at most {MAX_ROSTER_DAYS} days at a time")
    with uow:
        return _roster_reads(uow.session, col(RosterEntry.day).between(start, end))
