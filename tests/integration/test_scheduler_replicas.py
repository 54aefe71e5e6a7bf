"""Two real `callcenter scheduler` processes against one PostgreSQL, with a clock they read
from a file: every expiry, overdue flag and urging order happens exactly once (rule WO-4)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from callcenter.callbacks.models import CallbackEvent, CallbackEventKind
from callcenter.callbacks.service import ingest_events
from callcenter.config import RulesConfig
from callcenter.db import Database
from callcenter.models import metadata
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus
from tests.conftest import PG_URL
from tests.factories import event

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture
def replica_db() -> tuple[str, Database]:
    assert PG_URL is not None
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    metadata.create_all(database.engine)
    yield url, database
    database.dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(database: Database) -> None:
    config = RulesConfig()
    past_limit = [  # churn from yesterday morning: its limit passed
        event("cancellation", occurred_at=NOW - timedelta(days=1), event_id=f"exp-{i}")
        for i in range(150)
    ]
    overdue = [  # repairs replied 30 h ago: due 6 h ago, limit in 18 h
        event("repair_replied", occurred_at=NOW - timedelta(hours=30), event_id=f"late-{i}")
        for i in range(150)
    ]
    result = ingest_events(database.uow(), events=past_limit + overdue, now=NOW, config=config)
    assert result.created == 300
    with database.uow() as uow:
        uow.session.execute(
            sa.insert(WorkOrder),
            [
                {
                    "kind": WorkOrderKind.FOLLOW_UP,
                    "status": WorkOrderStatus.OPEN,
                    "subject": f"跟进 {i}",
                    "created_at": NOW - timedelta(hours=1),
                    "due_at": NOW - timedelta(minutes=45),
                }
                for i in range(40)
            ],
        )
        uow.commit()


def counts(database: Database) -> dict[str, int]:
    with database.uow() as uow:
        session = uow.session
        per_kind = dict(
            session.execute(
                sa.select(CallbackEvent.kind, sa.func.count()).group_by(CallbackEvent.kind)
            ).all()
        )
        urging = session.execute(
            sa.select(sa.func.count()).where(WorkOrder.kind == WorkOrderKind.URGING)  # type: ignore[arg-type]
        ).scalar_one()
        duplicates = session.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(CallbackEvent.callback_id, CallbackEvent.kind)
                .group_by(CallbackEvent.callback_id, CallbackEvent.kind)
                .having(sa.func.count() > 1)
                .subquery()
            )
        ).scalar_one()
    return {
        "expired": per_kind.get(CallbackEventKind.EXPIRED, 0),
        "overdue": per_kind.get(CallbackEventKind.OVERDUE, 0),
        "urged": per_kind.get(CallbackEventKind.URGED, 0),
        "urging_orders": int(urging),
        "duplicates": int(duplicates),
    }


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set")
def test_two_scheduler_processes_do_each_thing_once(
    replica_db: tuple[str, Database], tmp_path: Path
) -> None:
    url, database = replica_db
    seed(database)
    clock = tmp_path / "now.txt"
    clock.write_text(NOW.isoformat())
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": url,
        "CALLCENTER_CLOCK_FILE": str(clock),
        "CALLCENTER_SLA_WATCH_SECONDS": "1",
        "CALLCENTER_LEASE_SWEEP_SECONDS": "1",
    }
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "callcenter", "scheduler"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    expected = {"expired": 150, "overdue": 150, "urged": 150, "urging_orders": 190}
    try:
        deadline = time.monotonic() + 90
        seen = counts(database)
        while time.monotonic() < deadline:
            seen = counts(database)
            if all(seen[key] >= value for key, value in expected.items()):
                break
            assert all(p.poll() is None for p in processes), "a scheduler process died"
            time.sleep(0.5)
        # Let both replicas tick a few more times over the same rows: still nothing twice.
        clock.write_text((NOW + timedelta(minutes=5)).isoformat())
        time.sleep(4)
        final = counts(database)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
    output = "\n".join(log.read_text() for log in logs)
    assert {key: final[key] for key in expected} == expected, output[-3000:]
    assert final["duplicates"] == 0
    assert output.count("job=sla_watch rows=") >= 4  # both processes ran the watch
