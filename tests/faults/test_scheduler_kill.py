"""A `callcenter scheduler` process is killed (SIGKILL) in the middle of an IVR dialling
batch; another one takes over: every due IVR callback is dialled by exactly one call, the
calls the killed process wrote but never placed are settled as lost (an attempt, a retry
later) rather than placed again, and every overdue callback gets one urging order (WO-4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Attempt, Callback, CallbackEvent, CallbackEventKind
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.callbacks.service import ingest_events
from callcenter.config import RulesConfig
from callcenter.db import Database
from callcenter.ivr.models import IvrCall
from callcenter.ivr.rules import CallStatus
from callcenter.models import metadata
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.questionnaires.service import sync_scripts
from callcenter.workorders.models import WorkOrder, WorkOrderKind
from tests.conftest import PG_URL
from tests.factories import event
from tests.ivr_support import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio, fake_twilio

pytestmark = [
    pytest.mark.xdist_group("faults"),
    pytest.mark.slow,
    pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set"),
]

IVR_CALLBACKS, OVERDUE = 200, 600
CALLS_PER_SECOND = 100
# Calling windows around the clock: the processes run on the real clock, whatever the hour.
ALL_DAY = [{"start": "00:00", "end": "23:59:59"}]
RULES = RulesConfig.model_validate({"windows": ALL_DAY, "types": {"install": {"channel": "ivr"}}})


@pytest.fixture
def database_url() -> Iterator[str]:
    """A schema of its own in the test database, named in the URL so that the scheduler
    processes use it too (dropping a schema is quick; dropping a database waits for a
    checkpoint)."""
    assert PG_URL is not None
    schema = f"faults_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def seed(database: Database, now: datetime) -> None:
    metadata.create_all(database.engine)
    sync_scripts(database.uow(), scripts=shipped_scripts(), now=now)  # the IVR asks them
    installs = [
        event("install_completed", occurred_at=now - timedelta(hours=1), event_id=f"ivr-{i}")
        for i in range(IVR_CALLBACKS)
    ]
    repairs = [  # replied 30 h ago: 6 h past the target, for the SLA watch
        event("repair_replied", occurred_at=now - timedelta(hours=30), event_id=f"late-{i}")
        for i in range(OVERDUE)
    ]
    result = ingest_events(database.uow(), events=installs + repairs, now=now, config=RULES)
    assert result.created == IVR_CALLBACKS + OVERDUE


def start_scheduler(url: str, twilio: FakeTwilio, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": url,
        "CALLCENTER_RULES__WINDOWS": json.dumps(ALL_DAY),
        "CALLCENTER_RULES__TYPES__INSTALL__CHANNEL": "ivr",
        "CALLCENTER_TELEPHONY__ACCOUNT_SID": ACCOUNT_SID,
        "CALLCENTER_TELEPHONY__AUTH_TOKEN": AUTH_TOKEN,
        "CALLCENTER_TELEPHONY__FROM_NUMBER": FROM_NUMBER,
        "CALLCENTER_TELEPHONY__API_BASE_URL": twilio.url,
        "CALLCENTER_TELEPHONY__CALLS_PER_SECOND": str(CALLS_PER_SECOND),
        "CALLCENTER_TELEPHONY__MAX_CONCURRENT": "1000",
        # A call written but never confirmed is settled as lost after this (not 5 minutes).
        "CALLCENTER_TELEPHONY__CONFIRM_WITHIN": "PT2S",
    }
    env.pop("CALLCENTER_CLOCK_FILE", None)
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "callcenter", "scheduler"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def calls_by_state(database: Database) -> dict[str, list[int]]:
    """Callback ids by the state of their IVR calls: placed (Twilio confirmed), written but
    not placed, lost."""
    with database.uow() as uow:
        rows = uow.session.execute(
            sa.select(col(IvrCall.callback_id), col(IvrCall.status), col(IvrCall.provider_sid))
        ).all()
    states: dict[str, list[int]] = {"placed": [], "unplaced": [], "lost": [], "other": []}
    for callback_id, status, sid in rows:
        if status is CallStatus.LOST:
            states["lost"].append(callback_id)
        elif status is CallStatus.QUEUED and sid is None:
            states["unplaced"].append(callback_id)
        elif sid is not None:
            states["placed"].append(callback_id)
        else:
            states["other"].append(callback_id)
    return states


def wait_for(
    condition: Any, seconds: float, what: str, logs: Path, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {what}\n{logs.read_text()[-3000:]}")
        time.sleep(0.05)


def test_a_scheduler_killed_mid_batch_is_finished_by_the_next_without_calling_twice(
    database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    seed(database, datetime.now(UTC))
    log = tmp_path / "schedulers.log"
    processes: list[subprocess.Popen[bytes]] = []
    with fake_twilio() as twilio:
        try:
            first = start_scheduler(database_url, twilio, log)
            processes.append(first)
            wait_for(lambda: len(twilio.calls) >= 40, 60, "first calls", log, first)
            # Kill it while it holds written calls it has not placed yet: mid-batch.
            wait_for(
                lambda: len(calls_by_state(database)["unplaced"]) >= 3,
                30,
                "batch in progress",
                log,
                first,
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            at_kill = calls_by_state(database)
            orphans = set(at_kill["unplaced"])
            placed_before = len(twilio.calls)
            assert orphans, "the kill did not land in the middle of a batch"

            second = start_scheduler(database_url, twilio, log)
            processes.append(second)

            def finished() -> bool:
                states = calls_by_state(database)
                handled = len(states["placed"]) + len(states["lost"])
                return handled == IVR_CALLBACKS and urged(database) == OVERDUE

            wait_for(finished, 60, "end of the work", log, second)
            time.sleep(2)  # a few more ticks over the same rows: still nothing twice
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                process.wait(timeout=20)
        taken = [form["Url"][0] for form in twilio.requests]
        calls = len(twilio.calls)

    output = log.read_text()
    states = calls_by_state(database)
    print(f"killed with {len(orphans)} calls unplaced, {placed_before} placed; then {calls} in all")
    # Each callback was written into one call, and Twilio was asked for it at most once.
    written = Counter(states["placed"] + states["lost"] + states["unplaced"] + states["other"])
    assert len(written) == IVR_CALLBACKS and set(written.values()) == {1}, output[-3000:]
    assert len(taken) == len(set(taken)) == calls
    assert calls > placed_before, "the second scheduler placed nothing"
    # What the killed one wrote and never confirmed is settled as lost, not placed again: an
    # attempt is recorded and the callback waits for its retry slot.
    lost = set(states["lost"])
    assert orphans <= lost and not states["unplaced"] and not states["other"]
    # Twilio has every confirmed call, and perhaps one the killed process sent as it died.
    assert len(states["placed"]) <= calls <= len(states["placed"]) + len(orphans)
    with database.uow() as uow:
        session = uow.session
        retried = session.execute(
            sa.select(col(Callback.id), col(Callback.status), col(Callback.available_at)).where(
                col(Callback.id).in_(lost)
            )
        ).all()
        attempts = dict(
            session.execute(
                sa.select(col(Attempt.callback_id), col(Attempt.outcome)).where(
                    col(Attempt.callback_id).in_(lost)
                )
            ).all()
        )
        urging = session.execute(
            sa.select(col(WorkOrder.urges_callback_id), sa.func.count())
            .where(col(WorkOrder.kind) == WorkOrderKind.URGING)
            .group_by(col(WorkOrder.urges_callback_id))
        ).all()
        urged_events = session.execute(
            sa.select(
                sa.func.count(), sa.func.count(sa.distinct(col(CallbackEvent.callback_id)))
            ).where(col(CallbackEvent.kind) == CallbackEventKind.URGED)
        ).one()
    now = datetime.now(UTC)
    assert all(s is CallbackStatus.PENDING and at > now for _, s, at in retried)
    assert attempts == dict.fromkeys(lost, AttemptOutcome.NO_ANSWER)
    assert len(urging) == OVERDUE and {n for _, n in urging} == {1}
    assert tuple(urged_events) == (OVERDUE, OVERDUE)
    database.dispose()


def urged(database: Database) -> int:
    with database.uow() as uow:
        return int(
            uow.session.execute(
                sa.select(sa.func.count()).where(col(WorkOrder.kind) == WorkOrderKind.URGING)
            ).scalar_one()
        )
