"""One seeded app per backend and test module: the fuzz tests send hundreds of requests, and
a fresh database for each would cost more than the requests themselves. Only refused requests
must leave the database as it was; accepted ones may change it, and later examples build on
that."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.clock import FixedClock
from callcenter.config import Settings
from tests.conftest import IN_WINDOW, PG_URL, make_database
from tests.fuzz.support import ApiUsers, FuzzTarget, seed


def _backends() -> list[Any]:
    # Each backend in one xdist group: its tests share the module's database, and the two
    # backends still run side by side on two workers.
    return [
        pytest.param("sqlite", marks=pytest.mark.xdist_group("fuzz-sqlite")),
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.xdist_group("fuzz-postgresql"),
                pytest.mark.skipif(not PG_URL, reason="CALLCENTER_TEST_PG_URL is not set"),
            ],
        ),
    ]


@pytest.fixture(scope="module", params=_backends())
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    backend = str(request.param)
    database, drop = make_database(backend, tmp_path_factory.mktemp(f"fuzz-{backend}"))
    clock = FixedClock(IN_WINDOW)
    settings = Settings(database_url=database.url, scheduler_enabled=False)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    users = ApiUsers(database, clock)
    try:
        with TestClient(app) as client:
            seeded = seed(client, users)
            yield FuzzTarget(backend, app, client, database, users, seeded)
    finally:
        drop()
