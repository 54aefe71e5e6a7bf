"""Fixtures: a database per test on SQLite and (when CALLCENTER_TEST_PG_URL is set) on
PostgreSQL, a clock that stands still, an app on both, and users of every role."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.models import metadata
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_token, create_user

PG_URL = os.environ.get("CALLCENTER_TEST_PG_URL")
REQUIRE_PG = os.environ.get("CALLCENTER_TEST_REQUIRE_PG") == "1"

# Wednesday 2026-11-25 10:00 in Shanghai: inside the morning window.
IN_WINDOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError("CALLCENTER_TEST_REQUIRE_PG=1 needs CALLCENTER_TEST_PG_URL")
    if PG_URL:
        engine = sa.create_engine(PG_URL)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            if REQUIRE_PG:
                raise pytest.UsageError(f"PostgreSQL is not reachable at {PG_URL}: {exc}") from exc
        finally:
            engine.dispose()


def backends() -> list[Any]:
    params: list[Any] = ["sqlite"]
    params.append(
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set"),
        )
    )
    return params


def make_database(backend: str, tmp_path: Any, **engine_kwargs: Any) -> tuple[Database, Any]:
    """A fresh, empty, migrated-by-metadata database; and a function that drops it."""
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'test.db'}", **engine_kwargs)
        metadata.create_all(database.engine)
        return database, database.dispose
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    database = Database(
        PG_URL, connect_args={"options": f"-csearch_path={schema}"}, **engine_kwargs
    )
    metadata.create_all(database.engine)

    def drop() -> None:
        database.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return database, drop


@pytest.fixture(params=backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(backend: str, tmp_path: Any) -> Iterator[Database]:
    database, drop = make_database(backend, tmp_path)
    try:
        yield database
    finally:
        drop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(IN_WINDOW)


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(database_url=database.url, scheduler_enabled=False)


@pytest.fixture
def app(settings: Settings, database: Database, clock: FixedClock) -> Any:
    return create_app(settings, database=database, clock=clock, start_scheduler=False)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


class Users:
    """Users of every role with their API tokens, made on demand."""

    def __init__(self, database: Database, clock: FixedClock) -> None:
        self.database = database
        self.clock = clock
        self._made: dict[str, tuple[User, str]] = {}

    def make(self, username: str, role: UserRole) -> tuple[User, str]:
        if username not in self._made:
            user = create_user(
                self.database.uow(),
                username=username,
                role=role,
                now=self.clock.now(),
                password="correct horse battery",
                employee_number=f"E{len(self._made) + 1:04d}",
            )
            token = create_token(self.database.uow(), username=username, now=self.clock.now())
            self._made[username] = (user, token)
        return self._made[username]

    def user(self, username: str, role: UserRole = UserRole.AGENT) -> User:
        return self.make(username, role)[0]

    def headers(self, username: str, role: UserRole = UserRole.AGENT) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.make(username, role)[1]}"}

    @property
    def system(self) -> dict[str, str]:
        return self.headers("ordersys", UserRole.SYSTEM)


@pytest.fixture
def users(database: Database, clock: FixedClock) -> Users:
    return Users(database, clock)
