"""PostgreSQL restarts while agents claim and record attempts over HTTP, the order system posts
events and the scheduler's jobs run: the API answers 503 (never 500, never hangs) during the
outage and serves again afterwards without being restarted; no callback is lost, given to two
agents or answered twice, no event makes two callbacks and no callback is urged twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from api.app import create_app
from callcenter.callbacks.models import (
    Attempt,
    Callback,
    CallbackEvent,
    CallbackEventKind,
    IntakeEvent,
)
from callcenter.callbacks.rules import CallbackStatus
from callcenter.callbacks.service import ingest_events
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.models import metadata
from callcenter.users.models import UserRole
from callcenter.workorders.models import WorkOrder, WorkOrderKind
from scheduler import jobs
from tests.conftest import IN_WINDOW
from tests.factories import event
from tests.faults.cluster import PrivateCluster
from tests.faults.support import api_token, served

pytestmark = [pytest.mark.xdist_group("faults"), pytest.mark.slow]

AGENTS = 4
CALLBACKS = 300  # for the agents: Shanghai customers, whose window is open at IN_WINDOW
BATCHES, PER_BATCH = 12, 15  # overdue repairs for the SLA watch, posted during the run
# 21:00 in New York at IN_WINDOW: no agent may call them, only the SLA watch touches them.
CLOSED_ZONE = "America/New_York"
# An agent's time on the phone per callback: keeps claims going while PostgreSQL restarts.
TALK_SECONDS = 0.03
HANG = 10.0  # a request that takes this long counts as hanging


@dataclass
class Tally:
    """What the clients saw; guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    given: Counter[int] = field(default_factory=Counter)  # callback id → times claimed
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable_messages: set[str] = field(default_factory=set)
    slowest: float = 0.0
    errors: list[str] = field(default_factory=list)
    posted: list[str] = field(default_factory=list)
    idle: set[str] = field(default_factory=set)  # agents whose last claim found nothing

    def saw(self, response: httpx.Response, seconds: float) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            self.slowest = max(self.slowest, seconds)
            if response.status_code == 503:
                self.unavailable_messages.add(response.json()["detail"])
            elif response.status_code >= 500:
                self.errors.append(f"{response.status_code}: {response.text[:300]}")


def send(
    client: httpx.Client, tally: Tally, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        with tally.lock:
            tally.errors.append(f"{method} {url} hung for {HANG}s")
        return None
    tally.saw(response, time.monotonic() - started)
    return response


def agent_loop(base: str, name: str, token: str, tally: Tally, stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=HANG) as client:
        while not stop.is_set():
            response = send(client, tally, "POST", "/api/v1/callbacks/claim")
            if response is None or response.status_code == 503:
                time.sleep(0.05)
                continue
            if response.status_code == 204:
                with tally.lock:
                    tally.idle.add(name)
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            claim = response.json()
            with tally.lock:
                tally.idle.discard(name)
                tally.given.update(c["id"] for c in claim["callbacks"])
            time.sleep(TALK_SECONDS)
            for callback in claim["callbacks"]:
                record_answered(client, tally, callback["id"], stop)


def record_answered(client: httpx.Client, tally: Tally, callback_id: int, stop: Any) -> None:
    """Record the call as answered, sending again while the database is away. A 409 after a
    failed try means the first try was committed after all: then the callback says so."""
    retried = False
    while not stop.is_set():
        response = send(
            client,
            tally,
            "POST",
            f"/api/v1/callbacks/{callback_id}/attempts",
            json={"outcome": "answered"},
        )
        if response is not None and response.status_code == 201:
            return
        if response is not None and response.status_code == 409 and retried:
            detail = client.get(f"/api/v1/callbacks/{callback_id}").json()
            assert detail["status"] == "completed", detail
            return
        assert response is None or response.status_code in (503, 409), response.text
        retried = True
        time.sleep(0.05)


def intake_loop(base: str, token: str, tally: Tally, stop: threading.Event) -> None:
    anchor = IN_WINDOW - timedelta(hours=30)  # repairs: due 6 h ago, limit still ahead
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=HANG) as client:
        for batch in range(BATCHES):
            events = [
                event(
                    "repair_replied",
                    occurred_at=anchor,
                    event_id=f"late-{batch}-{i}",
                    timezone=CLOSED_ZONE,
                )
                for i in range(PER_BATCH)
            ]
            # The same batch again until it is taken: delivery is idempotent by event_id.
            while not stop.is_set():
                response = send(client, tally, "POST", "/api/v1/events/batch", json=events)
                if response is not None and response.status_code == 200:
                    results = response.json()["results"]
                    assert {r["status"] for r in results} <= {"created", "duplicate"}, results
                    break
                time.sleep(0.05)
            with tally.lock:
                tally.posted.extend(e["event_id"] for e in events)
            time.sleep(0.25)


@dataclass
class JobRuns:
    ok_after: list[float] = field(default_factory=list)  # monotonic times of clean runs
    failed: int = 0


def scheduler_loop(
    database: Database, clock: FixedClock, settings: Settings, runs: JobRuns, stop: Any
) -> None:
    """The scheduler's periodic jobs, back to back, as a separate replica would run them."""
    while not stop.is_set():
        try:
            jobs.release_lapsed(database, clock)
            clean = not jobs_failures(lambda: jobs.sla_watch(database, clock, settings))
        except Exception:  # logged by the job; the next tick tries again
            clean = False
        if clean:
            runs.ok_after.append(time.monotonic())
        else:
            runs.failed += 1
            time.sleep(0.05)
        time.sleep(0.05)


def jobs_failures(run: Any) -> int:
    """How many failures the job counted during `run` (it logs them and carries on)."""
    from scheduler.metrics import JOB_FAILURES

    counter = JOB_FAILURES.labels("sla_watch")
    before = counter._value.get()
    run()
    return int(counter._value.get() - before)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_a_postgresql_restart_loses_nothing_and_the_api_recovers_by_itself(
    cluster: PrivateCluster,
) -> None:
    clock = FixedClock(IN_WINDOW)
    database = Database(cluster.url)
    scheduler_db = Database(cluster.url)  # its own pool, like a scheduler process
    metadata.create_all(database.engine)
    settings = Settings(database_url=cluster.url, scheduler_enabled=False)
    anchor = IN_WINDOW - timedelta(hours=1)
    seeded = ingest_events(
        database.uow(),
        events=[
            event("install_completed", occurred_at=anchor, event_id=f"inst-{i}")
            for i in range(CALLBACKS)
        ],
        now=clock.now(),
        config=settings.rules,
    )
    assert seeded.created == CALLBACKS
    tokens = {
        f"agent{i}": api_token(database, f"agent{i}", UserRole.AGENT, clock.now())
        for i in range(AGENTS)
    }
    system = api_token(database, "ordersys", UserRole.SYSTEM, clock.now())
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)

    tally, runs = Tally(), JobRuns()
    stop = threading.Event()
    with served(app) as base:
        threads = [
            threading.Thread(
                target=guarded(agent_loop, tally), args=(base, name, token, tally, stop)
            )
            for name, token in tokens.items()
        ]
        threads.append(
            threading.Thread(target=guarded(intake_loop, tally), args=(base, system, tally, stop))
        )
        threads.append(
            threading.Thread(
                target=guarded(scheduler_loop, tally),
                args=(scheduler_db, clock, settings, runs, stop),
            )
        )
        for thread in threads:
            thread.start()
        try:
            # Restart while a good part of the queue is still ahead of the agents.
            wait_for(lambda: sum(tally.given.values()) >= CALLBACKS // 4, 30, "first claims", tally)
            cluster.stop()
            health_down = httpx.get(f"{base}/healthz", timeout=HANG)
            time.sleep(1.5)  # the outage: every request meanwhile must get its 503
            cluster.start()
            restarted_at = time.monotonic()
            wait_for(lambda: healthy(base), 30, "the health check to pass again", tally)
            wait_for(lambda: len(tally.posted) == BATCHES * PER_BATCH, 60, "intake", tally)
            wait_for(lambda: not open_shanghai(database) or all_idle(tally), 60, "agents", tally)
            stranded = open_shanghai(database)
            if stranded:
                # A claim committed just as its connection was cut never reached its agent:
                # the lease runs out and the queue gets it back (the scheduler's job).
                clock.advance(settings.rules.attempts.lease + timedelta(minutes=1))
                wait_for(lambda: not open_shanghai(database), 60, "stranded claims", tally)
            wait_for(lambda: urged(database) >= BATCHES * PER_BATCH, 30, "urging orders", tally)
            ran_since = len([t for t in runs.ok_after if t > restarted_at])
            wait_for(
                lambda: len([t for t in runs.ok_after if t > restarted_at]) > ran_since + 2,
                30,
                "scheduler ticks after the last work",
                tally,
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    print(f"restart: {dict(tally.statuses)}, stranded {stranded}, {runs.failed} failed ticks")
    summary = f"statuses={dict(tally.statuses)} stranded={stranded} errors={tally.errors[:3]}"
    assert not tally.errors, summary
    assert tally.statuses[503] > 0, f"the outage was never seen: {summary}"
    assert tally.unavailable_messages == {
        "the database is unavailable for the moment; please try again shortly"
    }
    assert tally.slowest < HANG
    assert health_down.status_code == 503 and health_down.json()["status"] == "unavailable"
    assert runs.failed > 0, "the scheduler's jobs never met the outage"
    assert any(t > restarted_at for t in runs.ok_after), "the scheduler never recovered"

    assert len(tally.given) == CALLBACKS and max(tally.given.values()) == 1, summary
    with database.uow() as uow:
        session = uow.session
        statuses = dict(
            session.execute(
                sa.select(col(Callback.status), sa.func.count())
                .where(col(Callback.event_id).like("inst-%"))
                .group_by(col(Callback.status))
            ).all()
        )
        attempts = session.execute(
            sa.select(col(Attempt.callback_id), sa.func.count()).group_by(col(Attempt.callback_id))
        ).all()
        events = session.execute(
            sa.select(
                sa.func.count(), sa.func.count(sa.distinct(col(IntakeEvent.callback_id)))
            ).where(col(IntakeEvent.event_id).like("late-%"))
        ).one()
        urging = session.execute(
            sa.select(col(WorkOrder.urges_callback_id), sa.func.count())
            .where(col(WorkOrder.kind) == WorkOrderKind.URGING)
            .group_by(col(WorkOrder.urges_callback_id))
        ).all()
        urged_events = session.execute(
            sa.select(col(CallbackEvent.callback_id), sa.func.count())
            .where(col(CallbackEvent.kind) == CallbackEventKind.URGED)
            .group_by(col(CallbackEvent.callback_id))
        ).all()
    assert statuses == {CallbackStatus.COMPLETED: CALLBACKS}
    assert len(attempts) == CALLBACKS and {n for _, n in attempts} == {1}
    assert tuple(events) == (BATCHES * PER_BATCH, BATCHES * PER_BATCH)
    assert len(urging) == BATCHES * PER_BATCH and {n for _, n in urging} == {1}
    assert len(urged_events) == BATCHES * PER_BATCH and {n for _, n in urged_events} == {1}
    database.dispose()
    scheduler_db.dispose()


def wait_for(condition: Any, seconds: float, what: str, tally: Tally) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        with tally.lock:  # a client that failed ends the wait at once
            assert not tally.errors, f"while waiting for {what}: {tally.errors[:3]}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def guarded(target: Any, tally: Tally) -> Any:
    """`target`, with its failure recorded for the test instead of lost in its thread."""

    def run(*args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:
            with tally.lock:
                tally.errors.append(f"{target.__name__}: {exc!r}")

    return run


def open_shanghai(database: Database) -> int:
    with database.uow() as uow:
        return int(
            uow.session.execute(
                sa.select(sa.func.count()).where(
                    col(Callback.event_id).like("inst-%"),
                    col(Callback.status).in_([CallbackStatus.PENDING, CallbackStatus.CLAIMED]),
                )
            ).scalar_one()
        )


def healthy(base: str) -> bool:
    return httpx.get(f"{base}/healthz", timeout=HANG).status_code == 200


def all_idle(tally: Tally) -> bool:
    with tally.lock:
        return len(tally.idle) == AGENTS


def urged(database: Database) -> int:
    with database.uow() as uow:
        return int(
            uow.session.execute(
                sa.select(sa.func.count()).where(col(WorkOrder.kind) == WorkOrderKind.URGING)
            ).scalar_one()
        )
