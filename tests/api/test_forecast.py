"""The roster (supervisors set it) and the capacity forecast over HTTP, on SQLite and
PostgreSQL (calling windows, rule CB-5; queue order, rules CB-1..CB-4)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers import forecast as forecast_router
from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.clock import FixedClock
from callcenter.config import CallbackType, Channel, Settings
from callcenter.customers.models import Customer
from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.conftest import IN_WINDOW, Users

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 11, 25)  # IN_WINDOW is 10:00 of this day in Shanghai


def cst(hour: int, minute: int = 0, day: date = TODAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
def forecast_client(settings: Settings, database: Database, clock: FixedClock) -> Iterator[Any]:
    app: FastAPI = create_app(settings, database=database, clock=clock, start_scheduler=False)
    if not any(getattr(route, "path", None) == "/api/v1/forecast" for route in app.routes):
        app.include_router(forecast_router.router)
    with TestClient(app) as client:
        yield client


def put_roster(client: TestClient, users: Users, who: str = "sup1", **body: Any) -> Any:
    return client.put("/api/v1/roster", json=body, headers=users.headers(who, UserRole.SUPERVISOR))


def add_callbacks(database: Database, rows: list[dict[str, Any]]) -> list[int]:
    """Callbacks with the given deadlines, each for a customer of its own."""
    ids = []
    with database.uow() as uow:
        session = uow.session
        for n, row in enumerate(rows):
            customer = Customer(
                external_id=f"FC-{uuid.uuid4().hex}",
                name="王芳",
                phone=f"+8613800{n:06d}",
                timezone=row.pop("timezone", "Asia/Shanghai"),
                info_as_of=IN_WINDOW,
                created_at=IN_WINDOW,
            )
            session.add(customer)
            session.flush()
            assert customer.id is not None
            callback = Callback(
                type=CallbackType.INSTALL,
                status=row.pop("status", CallbackStatus.PENDING),
                channel=row.pop("channel", Channel.AGENT),
                customer_id=customer.id,
                order_id=f"O-{n}",
                event_id=f"E-{n}",
                anchor_at=IN_WINDOW - timedelta(hours=1),
                available_at=row.pop("available_at", IN_WINDOW - timedelta(hours=1)),
                created_at=IN_WINDOW,
                updated_at=IN_WINDOW,
                **row,
            )
            session.add(callback)
            session.flush()
            assert callback.id is not None
            ids.append(callback.id)
        uow.commit()
    return ids


def test_supervisors_set_the_roster_one_window_and_team_at_a_time(
    forecast_client: TestClient, users: Users, clock: FixedClock
) -> None:
    first = put_roster(forecast_client, users, day="2026-11-25", window_start="08:30", agents=3)
    assert first.status_code == 200, first.text
    assert first.json()["agents"] == 3 and first.json()["team"] is None
    assert first.json()["updated_by"] == "sup1"

    clock.advance(timedelta(minutes=5))
    again = put_roster(
        forecast_client, users, "admin1", day="2026-11-25", window_start="08:30:00", agents=5
    )
    assert again.status_code == 200, again.text
    # The same window without a team: the row is replaced, not doubled.
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["agents"] == 5 and again.json()["updated_by"] == "admin1"
    assert again.json()["updated_at"] == iso(clock.now())

    team = put_roster(
        forecast_client, users, day="2026-11-25", window_start="08:30", agents=2, team="north"
    )
    afternoon = put_roster(
        forecast_client, users, day="2026-11-26", window_start="14:30", agents=4, team=" "
    )
    assert team.status_code == afternoon.status_code == 200
    assert team.json()["id"] != first.json()["id"]
    assert afternoon.json()["team"] is None  # blank is no team

    listed = forecast_client.get(
        "/api/v1/roster",
        params={"start": "2026-11-25", "end": "2026-11-26"},
        headers=users.headers("lead1", UserRole.RETENTION_LEAD),
    )
    assert listed.status_code == 200, listed.text
    assert [(r["day"], r["window_start"], r["team"], r["agents"]) for r in listed.json()] == [
        ("2026-11-25", "08:30:00", None, 5),
        ("2026-11-25", "08:30:00", "north", 2),
        ("2026-11-26", "14:30:00", None, 4),
    ]
    only_first = forecast_client.get(
        "/api/v1/roster",
        params={"start": "2026-11-26", "end": "2026-11-26"},
        headers=users.headers("sup1", UserRole.SUPERVISOR),
    )
    assert [r["day"] for r in only_first.json()] == ["2026-11-26"]


def test_the_roster_takes_only_window_starts_and_sensible_numbers(
    forecast_client: TestClient, users: Users
) -> None:
    not_a_window = put_roster(
        forecast_client, users, day="2026-11-25", window_start="09:00", agents=1
    )
    assert not_a_window.status_code == 422
    detail = not_a_window.json()["detail"][0]
    assert detail["field"] == "window_start" and "08:30, 14:30" in detail["msg"]
    for agents in (-1, 10_001):
        wrong = put_roster(
            forecast_client, users, day="2026-11-25", window_start="08:30", agents=agents
        )
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["detail"][0]["field"] == "agents"
    most = put_roster(forecast_client, users, day="2026-11-25", window_start="08:30", agents=10_000)
    assert most.status_code == 200
    backwards = forecast_client.get(
        "/api/v1/roster",
        params={"start": "2026-11-26", "end": "2026-11-25"},
        headers=users.headers("sup1", UserRole.SUPERVISOR),
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"][0]["field"] == "end"


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (UserRole.AGENT, 403, 403),
        (UserRole.SYSTEM, 403, 403),
        (UserRole.MANAGER, 200, 403),
        (UserRole.RETENTION_LEAD, 200, 403),
        (UserRole.SUPERVISOR, 200, 200),
        (UserRole.ADMIN, 200, 200),
    ],
)
def test_who_may_read_the_forecast_and_edit_the_roster(
    forecast_client: TestClient, users: Users, role: UserRole, read: int, write: int
) -> None:
    headers = users.headers(f"user-{role}", role)
    assert forecast_client.get("/api/v1/forecast", headers=headers).status_code == read
    roster = forecast_client.get(
        "/api/v1/roster", params={"start": "2026-11-25", "end": "2026-11-25"}, headers=headers
    )
    assert roster.status_code == read
    body = {"day": "2026-11-25", "window_start": "08:30", "agents": 1}
    assert forecast_client.put("/api/v1/roster", json=body, headers=headers).status_code == write
    assert forecast_client.get("/api/v1/forecast").status_code == 401


def test_the_forecast_lists_who_misses_what_and_the_hours_it_would_take(
    forecast_client: TestClient, users: Users, database: Database
) -> None:
    # 10:00 in Shanghai, one agent until 12:00, no history: 6 minutes a call, 20 calls.
    # The claimed callback is on the phone now: called at 10:00, in time for 10:10.
    # Then 24 callbacks due at 11:00, hard limit 12:00, one call every 6 minutes from 10:06:
    # ten by 11:00 (10:06 ... 11:00), nine late for their target (11:06 ... 11:54), and five
    # miss their hard limit. Hard limits: 5 more calls (0.5 agent-hours); targets: 14 (1.4).
    claimed = {
        "status": CallbackStatus.CLAIMED,
        "available_at": cst(10, 15),  # the lease's end
        "due_at": cst(10, 10),
        "hard_due_at": cst(11, 30),
    }
    pending = [{"due_at": cst(11), "hard_due_at": cst(12)} for _ in range(24)]
    ignored = [
        {"status": CallbackStatus.COMPLETED, "due_at": cst(10, 30), "hard_due_at": cst(11)},
        {"channel": Channel.IVR, "due_at": cst(10, 30), "hard_due_at": cst(11)},
    ]
    ids = add_callbacks(database, [claimed, *pending, *ignored])
    queue = ids[1:25]
    assert (
        put_roster(
            forecast_client, users, day="2026-11-25", window_start="08:30", agents=1
        ).status_code
        == 200
    )

    response = forecast_client.get(
        "/api/v1/forecast", headers=users.headers("boss", UserRole.MANAGER)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timezone"] == "Asia/Shanghai"
    assert body["horizon_end"] == iso(cst(0, day=date(2026, 11, 27)))
    assert (body["aht_seconds"], body["aht_measured"], body["aht_samples"]) == (360.0, False, 0)
    assert body["open_callbacks"] == 25
    assert (body["missing_hard_limit"], body["missing_target_only"]) == (5, 9)
    assert body["extra_agent_hours_for_hard_limits"] == 0.5
    assert body["extra_agent_hours_for_targets"] == 1.4
    morning = body["windows"][0]
    assert {k: morning[k] for k in ("day", "window_start", "starts_at", "ends_at")} == {
        "day": "2026-11-25",
        "window_start": "08:30:00",
        "starts_at": iso(cst(10)),
        "ends_at": iso(cst(12)),
    }
    assert [morning[k] for k in ("agents", "capacity", "demand", "assigned", "shortfall")] == [
        1,
        20,
        25,
        20,
        5,
    ]
    assert [w["window_start"] for w in body["windows"]] == ["08:30:00", "14:30:00"] * 2
    assert [w["capacity"] for w in body["windows"][1:]] == [0, 0, 0]

    misses = [(m["callback_id"], m["deadline"], m["predicted_at"]) for m in body["misses"]]
    assert misses[:9] == [
        (queue[k - 1], "target", iso(cst(10) + timedelta(minutes=6 * k))) for k in range(11, 20)
    ]
    assert misses[9:] == [(callback_id, "hard_limit", None) for callback_id in queue[19:]]
    assert all(m["avoidable"] for m in body["misses"])
    assert body["misses_truncated"] is False
    assert body["misses"][0]["due_at"] == iso(cst(11))

    few = forecast_client.get(
        "/api/v1/forecast", params={"limit": 2}, headers=users.headers("sup1", UserRole.SUPERVISOR)
    ).json()
    assert len(few["misses"]) == 2 and few["misses_truncated"] is True
    assert few["missing_target_only"] == 9


def test_the_handling_time_is_measured_from_each_agents_claims(
    forecast_client: TestClient, users: Users, database: Database
) -> None:
    # One agent ends a claim every 5 minutes from 14:30 yesterday: eleven claims after the
    # first, 300 s each. A two-hour break is not a claim; a claim that recorded two callbacks
    # counts once; another agent's claims are measured against that agent's own.
    (callback_id,) = add_callbacks(database, [{"due_at": cst(20), "hard_due_at": cst(21)}])
    agent = users.user("agent1", UserRole.AGENT)
    other = users.user("agent2", UserRole.AGENT)
    yesterday = TODAY - timedelta(days=1)
    ends = [cst(14, 30, day=yesterday) + timedelta(minutes=5 * i) for i in range(12)]
    attempts: list[tuple[int | None, str | None, datetime]] = [
        (agent.id, f"claim-{i}", at) for i, at in enumerate(ends)
    ]
    attempts.append((agent.id, "claim-3", ends[3]))  # a second callback of the same call
    attempts.append((agent.id, "after-break", ends[-1] + timedelta(hours=2)))
    attempts += [(other.id, "o-1", cst(8, 31)), (other.id, "o-2", cst(8, 41))]  # 600 s
    attempts.append((None, None, cst(9)))  # the IVR machine: no claim
    with database.uow() as uow:
        for number, (agent_id, claim_id, recorded_at) in enumerate(attempts, start=1):
            uow.session.add(
                Attempt(
                    callback_id=callback_id,
                    number=number,
                    claim_id=claim_id,
                    agent_id=agent_id,
                    channel=Channel.AGENT if agent_id else Channel.IVR,
                    outcome=AttemptOutcome.NO_ANSWER,
                    recorded_at=recorded_at,
                )
            )
        uow.commit()

    body = forecast_client.get(
        "/api/v1/forecast", headers=users.headers("sup1", UserRole.SUPERVISOR)
    ).json()
    # (11 x 300 + 600) / 12 = 325 seconds.
    assert (body["aht_seconds"], body["aht_measured"], body["aht_samples"]) == (325.0, True, 12)
