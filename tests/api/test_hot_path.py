"""The agents' hot path on PostgreSQL (`callcenter.callbacks.hotpath`): the claim and the plain
attempt on the event loop, everything else handed to the services, and the same rows and
answers either way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.audit.models import AUDIT_TABLE
from callcenter.audit.rules import actor_for
from callcenter.callbacks.desk import release_lease
from callcenter.callbacks.hotpath import HotPath
from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome
from callcenter.callbacks.schemas import AttemptCreate
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig, Settings
from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.api.test_claims import attempt, claim, post
from tests.conftest import IN_WINDOW, PG_URL, Users, make_database
from tests.factories import event, hours

needs_pg = pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set")


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(database_url=database.url, scheduler_enabled=False, hot_path=True)


def counts(client: TestClient) -> dict[str, int]:
    hot: HotPath = client.app.state.hot_path  # type: ignore[attr-defined]
    return dict(hot.counts)


def test_sqlite_has_no_hot_path(client: TestClient, backend: str) -> None:
    has_one = getattr(client.app.state, "hot_path", None) is not None  # type: ignore[attr-defined]
    assert has_one is (backend == "postgresql")


@pytest.mark.parametrize("setting", [None, False], ids=["default", "turned off"])
def test_the_hot_path_is_on_by_default_on_postgresql(
    database: Database, clock: FixedClock, backend: str, setting: bool | None
) -> None:
    chosen = {} if setting is None else {"hot_path": setting}
    settings = Settings(database_url=database.url, scheduler_enabled=False, **chosen)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app):
        has_one = getattr(app.state, "hot_path", None) is not None
    assert has_one is (backend == "postgresql" and setting is None)


@needs_pg
@pytest.mark.parametrize("backend", ["postgresql"])
def test_claims_and_plain_attempts_take_the_hot_path(client: TestClient, users: Users) -> None:
    first = post(client, users, event(occurred_at=IN_WINDOW - hours(2)))
    second = post(client, users, event("repair_replied", occurred_at=IN_WINDOW - hours(1)))
    taken = claim(client, users)
    assert taken is not None and taken["callback"]["id"] == second["id"]  # earlier hard limit
    assert attempt(client, users, second["id"], outcome="no_answer").status_code == 201
    taken = claim(client, users, "agent2")
    assert taken is not None and taken["callback"]["id"] == first["id"]
    assert attempt(client, users, first["id"], "agent2", outcome="refused").status_code == 201
    assert claim(client, users) is None  # the repair waits out its retry interval
    assert counts(client) == {"claims": 2, "attempts": 2}


@needs_pg
@pytest.mark.parametrize("backend", ["postgresql"])
def test_what_is_not_plain_goes_to_the_service(client: TestClient, users: Users) -> None:
    post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    post(client, users, event("cancellation", occurred_at=IN_WINDOW - hours(1)))
    held: dict[str, dict[str, Any]] = {}
    for agent in ("agent1", "agent2"):
        taken = claim(client, users, agent)
        assert taken is not None
        held[taken["callback"]["type"]] = {"id": taken["callback"]["id"], "agent": agent}
    install, churn = held["install"], held["churn"]
    # Not the holder: the service answers 409, as it always did.
    assert attempt(client, users, install["id"], churn["agent"], outcome="busy").status_code == 409
    # An answered install call without its questionnaire: the service checks it (422).
    answered = attempt(client, users, install["id"], install["agent"], outcome="answered")
    assert answered.status_code == 422, answered.text
    # A churn call closed unreached escalates its retention case: the service does that.
    refused = attempt(client, users, churn["id"], churn["agent"], outcome="refused")
    assert refused.status_code == 201, refused.text
    assert counts(client) == {"claims": 2, "attempts_handed_over": 3}


# --- the same rows and answers either way ------------------------------------------------


def _scenario(client: TestClient, users: Users, clock: FixedClock) -> list[Any]:
    """Claims and attempts of every plain kind; the answers, in order."""
    answers: list[Any] = []
    anchor = IN_WINDOW - hours(3)
    kinds = ("install_completed", "repair_replied", "complaint_replied", "install_completed")
    # Four customers with a callback each, one with two (one claim takes both).
    for n, (kind, customer) in enumerate(
        [*((kind, f"K-{n}") for n, kind in enumerate(kinds)), ("repair_replied", "K-two")]
        + [("complaint_replied", "K-two")]
    ):
        post(
            client,
            users,
            event(
                kind,
                occurred_at=anchor,
                customer_id=customer,
                event_id=f"E-{n}",
                order_id=f"O-{n}",
                phone=f"1390000{sum(map(ord, customer)):04d}",
            ),
        )
    later = (IN_WINDOW + timedelta(hours=8)).isoformat()
    plan = [
        {"outcome": "no_answer"},
        {"outcome": "busy", "note": "占线"},
        {"outcome": "call_back_later", "call_back_at": later},
        {"outcome": "wrong_number"},
        {"outcome": "refused"},
    ]
    for n, body in enumerate(plan):
        agent = f"agent{n % 2 + 1}"
        taken = claim(client, users, agent)
        answers.append(taken)
        assert taken is not None
        response = attempt(client, users, taken["callback"]["id"], agent, **body)
        answers.append((response.status_code, response.json()))
        clock.advance(timedelta(minutes=1))
    # A no-answer with three attempts used: failed (the attempt policy).
    clock.set(IN_WINDOW + timedelta(days=1))
    answers.append(claim(client, users))
    return answers


_VOLATILE = {"id", "claim_id", "callback_id", "customer_id", "subject_id", "event_id"}


def _normal(value: Any) -> Any:
    """`value` without what differs between two databases (ids, claim ids, order of rows)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def _tables(database: Database) -> dict[str, list[Any]]:
    tables = {}
    with database.engine.connect() as connection:
        for name, table, order in (
            ("callbacks", Callback.__table__, "order_id"),  # type: ignore[attr-defined]
            ("attempts", Attempt.__table__, "recorded_at"),  # type: ignore[attr-defined]
            ("audit", AUDIT_TABLE, "at"),
        ):
            rows = connection.execute(sa.select(table).order_by(sa.text(order))).mappings()
            tables[name] = sorted(
                (_normal(dict(row)) for row in rows), key=lambda r: repr(sorted(r.items()))
            )
    for row in tables["audit"]:
        detail = row.get("detail") or {}
        # the ids differ between the two databases; how many there are does not
        row["detail"] = {
            k: len(v) if k in {"callbacks", "attempts"} else v for k, v in detail.items()
        }
    return tables


@needs_pg
def test_the_hot_path_writes_and_answers_as_the_services_do(tmp_path: Any) -> None:
    results = []
    for hot in (False, True):
        database, drop = make_database("postgresql", tmp_path)
        try:
            clock = FixedClock(IN_WINDOW)
            settings = Settings(database_url=database.url, scheduler_enabled=False, hot_path=True)
            app = create_app(settings, database=database, clock=clock, start_scheduler=False)
            with TestClient(app) as client:
                if not hot:
                    del app.state.hot_path  # the services alone
                users = Users(database, clock)
                answers = _scenario(client, users, clock)
                if hot:
                    taken = counts(client)
                    assert taken["claims"] == 6  # five, and one the next day
                    assert taken["attempts"] >= 4, taken  # the two-callback claim may go over
            results.append((_normal(answers), _tables(database)))
        finally:
            drop()
    (answers_services, tables_services), (answers_hot, tables_hot) = results
    assert answers_hot == answers_services
    for name in tables_services:
        assert tables_hot[name] == tables_services[name], name


# --- many claimers at once --------------------------------------------------------------


@needs_pg
@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_hot_claims_take_each_callback_once(
    database: Database, users: Users, client: TestClient
) -> None:
    for n in range(300):
        post(client, users, event(occurred_at=IN_WINDOW - hours(1) - timedelta(minutes=n)))
    agents = [users.user(f"agent{i}", UserRole.AGENT) for i in range(20)]

    async def drain() -> list[int]:
        hot = HotPath(database, connections=8)
        taken: list[int] = []

        async def claimer(agent: Any) -> None:
            while True:
                claimed = await hot.claim(
                    agent=agent, now=IN_WINDOW, config=RulesConfig(), actor=actor_for(agent, None)
                )
                if claimed is None:
                    return
                taken.extend(cb.id for cb in claimed.callbacks)

        try:
            await asyncio.gather(*(claimer(a) for a in agents))
        finally:
            await hot.close()
        return taken

    taken = asyncio.run(drain())
    assert len(taken) == 300
    assert len(set(taken)) == 300
    with database.engine.connect() as connection:
        left = connection.execute(
            sa.select(sa.func.count()).where(Callback.__table__.c.status == "pending")  # type: ignore[attr-defined]
        ).scalar()
    assert left == 0


# --- a callback changed between the attempt's read and its write -------------------------


class _Meddling(HotPath):
    """The hot path, with a supervisor releasing the lease after the attempt was read and
    before it is written."""

    def __init__(self, database: Database, meddle: Callable[[], object]) -> None:
        super().__init__(database, connections=1)
        self.meddle = meddle

    def _plain_attempt(self, *args: Any, **kwargs: Any) -> Any:
        recorded = super()._plain_attempt(*args, **kwargs)
        self.meddle()
        return recorded


@needs_pg
@pytest.mark.parametrize("backend", ["postgresql"])
def test_an_attempt_on_a_callback_changed_meanwhile_writes_nothing(
    database: Database, users: Users, client: TestClient
) -> None:
    created = post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    assert claim(client, users) is not None
    agent = users.user("agent1")
    supervisor = users.user("super1", UserRole.SUPERVISOR)

    def release() -> object:
        return release_lease(
            database.uow(), callback_id=created["id"], by=supervisor, now=IN_WINDOW
        )

    async def record() -> Any:
        hot = _Meddling(database, release)
        try:
            return await hot.record_attempt(
                callback_id=created["id"],
                agent=agent,
                attempt=AttemptCreate(outcome=AttemptOutcome.NO_ANSWER),
                now=IN_WINDOW,
                config=RulesConfig(),
                actor=actor_for(agent, None),
            ), dict(hot.counts)
        finally:
            await hot.close()

    recorded, taken = asyncio.run(record())
    assert recorded is None  # handed to the service, which now refuses it (409)
    assert taken == {"attempts_handed_over": 1}
    with database.engine.connect() as connection:
        attempts = connection.execute(
            sa.select(sa.func.count()).where(Attempt.__table__.c.callback_id == created["id"])  # type: ignore[attr-defined]
        ).scalar()
        status = connection.execute(
            sa.select(Callback.__table__.c.status).where(Callback.__table__.c.id == created["id"])  # type: ignore[attr-defined]
        ).scalar()
    assert attempts == 0
    assert status == "pending"  # as the release left it
    response = attempt(client, users, created["id"], outcome="no_answer")
    assert response.status_code == 409, response.text
