"""POST /api/v1/events and /events/batch: idempotent intake (rules CB-1..CB-4, CB-7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from callcenter.callbacks.models import Callback, IntakeEvent
from callcenter.db import Database
from tests.conftest import IN_WINDOW, Users
from tests.factories import event, hours


def count(database: Database, table: type) -> int:
    with database.uow() as uow:
        return int(uow.session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_install_completed_makes_a_callback_due_in_24h_at_most_3_days(
    client: TestClient, users: Users
) -> None:
    # rule CB-1
    done = IN_WINDOW - hours(1)
    response = client.post("/api/v1/events", json=event(occurred_at=done), headers=users.system)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["type"] == "install"
    assert body["status"] == "pending"
    assert at(body["due_at"]) == done + hours(24)
    assert at(body["hard_due_at"]) == done + hours(72)
    assert body["customer"]["phone_masked"].startswith("+86 138")
    assert "phone" not in body["customer"]


def test_each_type_gets_its_deadlines(client: TestClient, users: Users) -> None:
    # rules CB-2, CB-3, CB-7
    anchor = IN_WINDOW - hours(2)
    expected = {
        "repair_replied": ("repair", hours(24), hours(48)),
        "complaint_replied": ("complaint", hours(48), hours(48)),
        "complaint_accepted": ("complaint_contact", timedelta(minutes=30), hours(24)),
        "fault_accepted": ("fault_delay", hours(4 + 1), hours(4 + 4)),
        "install_accepted": ("install_delay", timedelta(days=4, hours=8), timedelta(days=5)),
    }
    for kind, (callback_type, target, limit) in expected.items():
        response = client.post(
            "/api/v1/events", json=event(kind, occurred_at=anchor), headers=users.system
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["type"] == callback_type
        assert at(body["due_at"]) == anchor + target, kind
        assert at(body["hard_due_at"]) == anchor + limit, kind


def test_cancellation_is_due_at_once_within_the_first_window(
    client: TestClient, users: Users
) -> None:
    # rule CB-4: cancelled at 21:00 Shanghai → due at 08:30 next morning, limit 12:00.
    evening = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    response = client.post(
        "/api/v1/events", json=event("cancellation", occurred_at=evening), headers=users.system
    )
    body = response.json()
    assert body["type"] == "churn"
    assert at(body["due_at"]) == datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    assert at(body["hard_due_at"]) == datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def test_same_event_twice_makes_one_callback(
    client: TestClient, users: Users, database: Database
) -> None:
    payload = event(occurred_at=IN_WINDOW - hours(1))
    first = client.post("/api/v1/events", json=payload, headers=users.system)
    # The same instant written with another offset is the same event.
    again = dict(payload, occurred_at=(IN_WINDOW - hours(1)).astimezone().isoformat())
    second = client.post("/api/v1/events", json=again, headers=users.system)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert count(database, Callback) == 1


def test_same_event_id_with_another_body_is_a_conflict(
    client: TestClient, users: Users, database: Database
) -> None:
    payload = event(occurred_at=IN_WINDOW - hours(1))
    assert client.post("/api/v1/events", json=payload, headers=users.system).status_code == 201
    changed = dict(payload, order_id="ORD-OTHER")
    response = client.post("/api/v1/events", json=changed, headers=users.system)
    assert response.status_code == 409
    assert "different body" in response.json()["detail"]
    assert count(database, Callback) == 1


def test_naive_time_is_refused_naming_the_field(
    client: TestClient, users: Users, database: Database
) -> None:
    payload = event(occurred_at=IN_WINDOW)
    payload["occurred_at"] = "2026-11-25T10:00:00"
    response = client.post("/api/v1/events", json=payload, headers=users.system)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["field"] for d in detail] == ["occurred_at"]
    assert "timezone" in detail[0]["msg"].lower()
    assert count(database, Callback) == 0 and count(database, IntakeEvent) == 0


def test_invalid_phone_is_422_naming_customer_phone(
    client: TestClient, users: Users, database: Database
) -> None:
    payload = event(occurred_at=IN_WINDOW, phone="12345")
    response = client.post("/api/v1/events", json=payload, headers=users.system)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["field"] == "customer.phone"
    assert "not a valid phone number" in detail[0]["msg"]
    assert count(database, IntakeEvent) == 0


def test_phone_is_stored_in_e164(client: TestClient, users: Users) -> None:
    payload = event(occurred_at=IN_WINDOW, phone="0591-8765 4321")
    created = client.post("/api/v1/events", json=payload, headers=users.system).json()
    agent = users.headers("agent1")
    claim = client.post("/api/v1/callbacks/claim", headers=agent).json()
    assert claim["callback"]["id"] == created["id"]
    assert claim["customer"]["phone"] == "+8659187654321"


def test_unknown_zone_unknown_type_and_future_time_are_refused(
    client: TestClient, users: Users
) -> None:
    bad_zone = event(occurred_at=IN_WINDOW, timezone="Mars/Olympus")
    bad_type = dict(event(occurred_at=IN_WINDOW), type="install_done")
    future = event(occurred_at=IN_WINDOW + hours(2))
    fields = []
    for payload in (bad_zone, bad_type, future):
        response = client.post("/api/v1/events", json=payload, headers=users.system)
        assert response.status_code == 422, payload
        fields.append(response.json()["detail"][0]["field"])
    assert fields == ["customer.timezone", "type", "occurred_at"]


def test_the_order_system_must_authenticate(client: TestClient, users: Users) -> None:
    payload = event(occurred_at=IN_WINDOW)
    assert client.post("/api/v1/events", json=payload).status_code == 401
    wrong = {"Authorization": "Bearer cc_not-a-real-token"}
    assert client.post("/api/v1/events", json=payload, headers=wrong).status_code == 401
    agent = users.headers("agent1")
    response = client.post("/api/v1/events", json=payload, headers=agent)
    assert response.status_code == 403
    assert "role" in response.json()["detail"]


def test_batch_reports_each_event(client: TestClient, users: Users, database: Database) -> None:
    earlier = event(occurred_at=IN_WINDOW - hours(3))
    client.post("/api/v1/events", json=earlier, headers=users.system)
    fresh = event(occurred_at=IN_WINDOW - hours(1))
    conflicting = dict(earlier, order_id="ORD-CHANGED")
    invalid = event(occurred_at=IN_WINDOW, phone="not a phone")
    repeated_in_batch = dict(fresh)
    batch = [fresh, earlier, conflicting, invalid, repeated_in_batch, {"event_id": 7}]
    response = client.post("/api/v1/events/batch", json=batch, headers=users.system)
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["created", "duplicate", "conflict", "invalid", "duplicate", "invalid"]
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert (body["created"], body["duplicate"], body["conflict"], body["invalid"]) == (1, 2, 1, 2)
    results = body["results"]
    assert results[4]["callback"]["id"] == results[0]["callback"]["id"]
    assert results[3]["errors"][0]["field"] == "customer.phone"
    assert {e["field"] for e in results[5]["errors"]} >= {"event_id", "type", "customer"}
    assert count(database, Callback) == 2


def test_batch_size_is_bounded(client: TestClient, users: Users) -> None:
    too_many = [event(occurred_at=IN_WINDOW) for _ in range(1001)]
    response = client.post("/api/v1/events/batch", json=too_many, headers=users.system)
    assert response.status_code == 422
    assert client.post("/api/v1/events/batch", json=[], headers=users.system).status_code == 422


def test_install_completed_cancels_the_day_5_contact(client: TestClient, users: Users) -> None:
    # rule CB-7
    accepted = event("install_accepted", occurred_at=IN_WINDOW - timedelta(days=2))
    contact = client.post("/api/v1/events", json=accepted, headers=users.system).json()
    assert contact["status"] == "pending"
    completed = event(
        "install_completed",
        occurred_at=IN_WINDOW - hours(1),
        order_id=accepted["order_id"],
        customer_id=accepted["customer"]["id"],
    )
    client.post("/api/v1/events", json=completed, headers=users.system)
    detail = client.get(
        f"/api/v1/callbacks/{contact['id']}", headers=users.headers("sup", role_supervisor())
    ).json()
    assert detail["status"] == "cancelled"
    assert "install_completed" in detail["close_reason"]


def test_late_accept_after_completion_makes_no_contact(client: TestClient, users: Users) -> None:
    # rule CB-7: events out of order; the completion came first.
    completed = event("install_completed", occurred_at=IN_WINDOW - hours(1))
    client.post("/api/v1/events", json=completed, headers=users.system)
    accepted = event(
        "install_accepted",
        occurred_at=IN_WINDOW - timedelta(days=3),
        order_id=completed["order_id"],
    )
    body = client.post("/api/v1/events", json=accepted, headers=users.system).json()
    assert body["type"] == "install_delay"
    assert body["status"] == "cancelled"


def test_repair_reply_cancels_the_4_hour_fault_contact(client: TestClient, users: Users) -> None:
    fault = event("fault_accepted", occurred_at=IN_WINDOW - hours(1))
    contact = client.post("/api/v1/events", json=fault, headers=users.system).json()
    reply = event("repair_replied", occurred_at=IN_WINDOW, order_id=fault["order_id"])
    repair = client.post("/api/v1/events", json=reply, headers=users.system).json()
    assert repair["type"] == "repair" and repair["status"] == "pending"
    listed = client.get(
        "/api/v1/callbacks",
        params={"order_id": fault["order_id"], "type": "fault_delay"},
        headers=users.headers("sup", role_supervisor()),
    ).json()
    assert [(c["id"], c["status"]) for c in listed["items"]] == [(contact["id"], "cancelled")]


def role_supervisor():  # type: ignore[no-untyped-def]
    from callcenter.users.models import UserRole

    return UserRole.SUPERVISOR
