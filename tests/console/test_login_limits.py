"""The limit of refused sign-ins per client address (password spraying across accounts): a
429 page with Retry-After, no password checked while it lasts, counted in the database so
that it holds across API processes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.clock import FixedClock
from callcenter.config import ConsoleSettings, Settings
from callcenter.db import Database
from callcenter.users.models import LoginFailure, UserRole, WebSession
from callcenter.users.service import AddressThrottled, LoginRefused, sign_in
from tests.conftest import Users
from tests.console.helpers import PASSWORD, csrf_of

SPRAYER = ("203.0.113.7", 40000)
NEIGHBOUR = ("198.51.100.9", 40000)


def attempt(client: TestClient, username: str, password: str) -> tuple[int, str, str | None]:
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    return response.status_code, response.text, response.headers.get("retry-after")


def app_for(database: Database, clock: FixedClock, **console: object) -> FastAPI:
    settings = Settings(
        database_url=database.url,
        scheduler_enabled=False,
        console=ConsoleSettings.model_validate(console),
    )
    return create_app(settings, database=database, clock=clock, start_scheduler=False)


@pytest.fixture
def sprayer(database: Database, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(app_for(database, clock), client=SPRAYER) as client:
        yield client


def sessions(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(WebSession)).scalar_one()
        )


def test_twenty_refused_sign_ins_from_one_address_stop_it_for_a_while(
    sprayer: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    users.make("agent1", UserRole.AGENT)
    # A few passwords over many accounts: the lock-out per account never triggers.
    codes = [attempt(sprayer, f"user{n}", "Spring2026!")[0] for n in range(20)]
    assert codes == [401] * 20
    clock.advance(timedelta(minutes=5))
    status, page, retry_after = attempt(sprayer, "agent1", PASSWORD)
    # Refused even with the right password: it is not checked at all.
    assert status == 429
    assert "登录失败次数过多" in page
    assert retry_after == str(10 * 60)  # the first failure leaves the 15-minute window
    assert "10 分钟" in page
    assert sessions(database) == 0
    clock.advance(timedelta(minutes=10))
    assert attempt(sprayer, "agent1", PASSWORD)[0] == 303


def test_attempts_while_refused_neither_count_nor_extend_the_wait(
    database: Database, clock: FixedClock, users: Users
) -> None:
    users.make("agent1", UserRole.AGENT)
    app = app_for(database, clock, max_failed_logins_per_address=3)
    with TestClient(app, client=SPRAYER) as client:
        assert [attempt(client, "nobody", "x")[0] for _ in range(3)] == [401] * 3
        for _ in range(5):
            clock.advance(timedelta(minutes=2))
            assert attempt(client, "agent1", "wrong")[0] == 429
        with database.engine.connect() as connection:
            counted = sa.select(sa.func.count()).select_from(LoginFailure)
            assert connection.execute(counted).scalar_one() == 3
        clock.advance(timedelta(minutes=5, seconds=1))  # 15 minutes after the first
        assert attempt(client, "agent1", PASSWORD)[0] == 303


def test_the_limit_is_per_address(database: Database, clock: FixedClock, users: Users) -> None:
    users.make("agent1", UserRole.AGENT)
    app = app_for(database, clock, max_failed_logins_per_address=3)
    with TestClient(app, client=SPRAYER) as sprayer:
        for _ in range(3):
            attempt(sprayer, "nobody", "x")
        assert attempt(sprayer, "agent1", PASSWORD)[0] == 429
    with TestClient(app, client=NEIGHBOUR) as neighbour:
        assert attempt(neighbour, "agent1", PASSWORD)[0] == 303


def test_the_count_is_shared_by_every_api_process(
    database: Database, clock: FixedClock, users: Users
) -> None:
    # Two applications on one database, as two uvicorn workers or two containers would be.
    first = app_for(database, clock, max_failed_logins_per_address=4)
    second = app_for(database, clock, max_failed_logins_per_address=4)
    with (
        TestClient(first, client=SPRAYER) as one,
        TestClient(second, client=SPRAYER) as two,
    ):
        assert attempt(one, "a", "x")[0] == 401
        assert attempt(two, "b", "x")[0] == 401
        assert attempt(one, "c", "x")[0] == 401
        assert attempt(two, "d", "x")[0] == 401
        assert attempt(one, "e", "x")[0] == 429
        assert attempt(two, "f", "x")[0] == 429


def test_parallel_sign_ins_from_one_address_get_no_more_checks_than_the_limit(
    database: Database, clock: FixedClock, users: Users
) -> None:
    users.make("agent1", UserRole.AGENT)
    policy = ConsoleSettings(max_failed_logins_per_address=5, max_failed_logins=100)

    def one(n: int) -> str:
        try:
            sign_in(
                database.uow(),
                username="agent1" if n % 2 else f"user{n}",
                password="wrong",
                now=clock.now(),
                address=SPRAYER[0],
                policy=policy,
            )
        except AddressThrottled:
            return "throttled"
        except LoginRefused:
            return "refused"
        return "signed in"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(16)))
    assert sorted(outcomes) == ["refused"] * 5 + ["throttled"] * 11
