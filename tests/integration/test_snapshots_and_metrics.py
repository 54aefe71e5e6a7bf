"""The nightly KPI snapshot (rules KPI-1, KPI-2) and the Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from callcenter.callbacks.rules import AttemptOutcome
from callcenter.callbacks.schemas import AttemptCreate
from callcenter.callbacks.service import claim_next, ingest_events, record_attempt
from callcenter.clock import FixedClock
from callcenter.config import CallbackType, RulesConfig, Settings
from callcenter.db import Database
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.questionnaires.service import record_answers, sync_scripts
from callcenter.reports.models import KpiSnapshot
from callcenter.reports.service import SNAPSHOT_LOCK, snapshot_day
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_user
from scheduler import jobs
from tests.conftest import IN_WINDOW, Users
from tests.factories import INSTALL_ANSWERS, event

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONFIG = RulesConfig()
DAY = date(2026, 11, 25)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 25, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def answered(database: Database, agent: User, now: datetime, answers: dict[str, Any]) -> None:
    claim = claim_next(database.uow(), agent=agent, now=now, config=CONFIG)
    assert claim is not None
    record_answers(
        database.uow(), callback_id=claim.callback.id, user=agent, answers=answers, now=now
    )
    record_attempt(
        database.uow(),
        callback_id=claim.callback.id,
        agent=agent,
        attempt=AttemptCreate(outcome=AttemptOutcome.ANSWERED),
        now=now,
        config=CONFIG,
    )


def test_the_snapshot_counts_a_day_by_team_and_type(database: Database) -> None:
    sync_scripts(database.uow(), scripts=shipped_scripts(), now=at(8))
    li = create_user(database.uow(), username="li", role=UserRole.AGENT, now=at(8))
    with database.uow() as uow:
        uow.session.execute(sa.update(User).where(User.id == li.id).values(team="一组"))  # type: ignore[arg-type]
        uow.commit()
    li.team = "一组"
    events = [
        event(occurred_at=at(9) - timedelta(hours=2)),  # due 07:00 tomorrow: in time
        event(occurred_at=at(9) - timedelta(hours=30)),  # due 03:00 today: late
    ]
    ingest_events(database.uow(), events=events, now=at(9), config=CONFIG)
    # The late one has the earlier hard limit: taken first; the customer is dissatisfied.
    answered(database, li, at(9, 10), {**INSTALL_ANSWERS, "overall": 1})
    answered(database, li, at(9, 20), INSTALL_ANSWERS)
    cancellation = event("cancellation", occurred_at=at(9, 30))  # limit 12:00: will expire
    ingest_events(database.uow(), events=[cancellation], now=at(9, 30), config=CONFIG)
    jobs.sla_watch(database, FixedClock(at(13)), Settings(database_url=database.url))
    written = snapshot_day(database.uow(), day=DAY, zone=SHANGHAI, now=at(23))
    assert written == 2
    with database.uow() as uow:
        rows = {
            (r.team, r.callback_type): r
            for r in uow.session.execute(sa.select(KpiSnapshot)).scalars()
        }
    install = rows[("一组", CallbackType.INSTALL)]
    assert (install.closed, install.completed, install.within_target) == (2, 2, 1)
    assert (install.within_hard_limit, install.attempts) == (2, 2)
    assert (install.surveys, install.dissatisfied) == (2, 1)  # rule KPI-2, by the script
    churn = rows[("分公司", CallbackType.CHURN)]  # rule CB-4: the branch owns it
    assert (churn.closed, churn.expired, churn.completed) == (1, 1, 0)
    # Recomputing the day replaces its rows.
    assert snapshot_day(database.uow(), day=DAY, zone=SHANGHAI, now=at(23, 30)) == 2
    with database.uow() as uow:
        assert uow.session.execute(sa.select(sa.func.count(KpiSnapshot.id))).scalar_one() == 2  # type: ignore[arg-type]


def test_two_snapshots_never_overlap_on_postgresql(database: Database) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    with database.engine.connect() as holder:
        lock = "(:key, hashtext(current_schema()))"
        holder.execute(sa.text(f"SELECT pg_advisory_lock{lock}"), {"key": SNAPSHOT_LOCK})
        assert snapshot_day(database.uow(), day=DAY, zone=SHANGHAI, now=at(23)) is None
        holder.execute(sa.text(f"SELECT pg_advisory_unlock{lock}"), {"key": SNAPSHOT_LOCK})
        holder.commit()
    assert snapshot_day(database.uow(), day=DAY, zone=SHANGHAI, now=at(23)) == 0


def test_metrics_show_the_queue_and_the_jobs(
    client: TestClient, users: Users, database: Database, clock: FixedClock
) -> None:
    for kind in ("install_completed", "install_completed", "repair_replied"):
        client.post(
            "/api/v1/events",
            json=event(kind, occurred_at=IN_WINDOW - timedelta(hours=30)),
            headers=users.system,
        )
    client.post("/api/v1/callbacks/claim", headers=users.headers("agent1"))
    jobs.sla_watch(database, clock, Settings(database_url=database.url))
    text = client.get("/metrics").text
    assert 'callcenter_queue_depth{status="pending",type="install"}' in text
    assert 'callcenter_queue_depth{status="claimed",type="repair"} 1.0' in text
    assert "callcenter_callbacks_overdue 3.0" in text
    assert 'callcenter_job_duration_seconds_count{job="sla_watch"}' in text
    assert 'callcenter_job_rows_total{job="sla_watch"}' in text
