"""Many agents draining one queue get each callback exactly once (PostgreSQL row claims with
SKIP LOCKED; SQLite immediate transactions). No in-process lock is involved: every claimer has
its own connection."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.callbacks.schemas import AttemptCreate
from callcenter.callbacks.service import claim_next, ingest_events, record_attempt
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig
from callcenter.db import Database
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_user
from tests.conftest import IN_WINDOW, PG_URL, make_database
from tests.factories import event

CONFIG = RulesConfig()


def fill(database: Database, count: int, *, customers: int) -> None:
    anchor = IN_WINDOW - timedelta(hours=1)
    events = [
        event(
            "install_completed" if i % 2 else "repair_replied",
            occurred_at=anchor - timedelta(seconds=i),
            event_id=f"load-{i}",
            customer_id=f"LOAD-{i % customers}",
            phone=f"139{i % customers:08d}",
        )
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        result = ingest_events(
            database.uow(), events=events[start : start + 1000], now=IN_WINDOW, config=CONFIG
        )
        assert result.created == len(events[start : start + 1000])
    if database.engine.dialect.name == "postgresql":
        # As autovacuum would after such a load (it is off on some servers, CI's among them):
        # without statistics PostgreSQL sorts every open callback for each claim instead of
        # walking the queue's index, and 5,000 claims take minutes of its CPU.
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE callbacks, customers, do_not_call")


def drain(database: Database, agents: list[User], clock: FixedClock) -> Counter[int]:
    """Every agent claims and answers until the queue is empty; how often each id was given."""
    given: Counter[int] = Counter()
    lock = threading.Lock()  # guards only the test's own tally, not the queue
    errors: list[BaseException] = []
    start = threading.Barrier(len(agents))

    def work(agent: User) -> None:
        try:
            start.wait()
            while True:
                claim = claim_next(database.uow(), agent=agent, now=clock.now(), config=CONFIG)
                if claim is None:
                    return
                with lock:
                    given.update(c.id for c in claim.callbacks)
                for callback in claim.callbacks:
                    record_attempt(
                        database.uow(),
                        callback_id=callback.id,
                        agent=agent,
                        attempt=AttemptCreate(outcome=AttemptOutcome.ANSWERED),
                        now=clock.now(),
                        config=CONFIG,
                    )
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors[:3]
    assert not any(thread.is_alive() for thread in threads)
    return given


def make_agents(database: Database, count: int) -> list[User]:
    return [
        create_user(database.uow(), username=f"a{i}", role=UserRole.AGENT, now=IN_WINDOW)
        for i in range(count)
    ]


def check_drained(database: Database, given: Counter[int], total: int) -> None:
    assert len(given) == total, "some callbacks were never given out"
    assert max(given.values()) == 1, "a callback was given out twice"
    with database.uow() as uow:
        session = uow.session
        statuses = dict(
            session.execute(
                sa.select(Callback.status, sa.func.count()).group_by(Callback.status)
            ).all()
        )
        per_callback = session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(Attempt.callback_id)))
        ).one()
    assert statuses == {CallbackStatus.COMPLETED: total}
    assert tuple(per_callback) == (total, total)  # exactly one attempt each


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set")
def test_fifty_claimers_drain_five_thousand_callbacks_on_postgresql(tmp_path: Any) -> None:
    database, drop = make_database("postgresql", tmp_path, pool_size=55, max_overflow=5)
    try:
        fill(database, 5000, customers=4000)  # some customers have several callbacks
        given = drain(database, make_agents(database, 50), FixedClock(IN_WINDOW))
        check_drained(database, given, 5000)
    finally:
        drop()


@pytest.mark.slow
def test_threads_drain_the_queue_exactly_once_on_sqlite(tmp_path: Any) -> None:
    database, drop = make_database("sqlite", tmp_path)
    try:
        fill(database, 2000, customers=1600)
        given = drain(database, make_agents(database, 16), FixedClock(IN_WINDOW))
        check_drained(database, given, 2000)
    finally:
        drop()
