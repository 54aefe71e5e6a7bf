"""Claiming the next callback and recording attempts (rules CB-5, SV-4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi.testclient import TestClient

from callcenter.callbacks.models import Attempt
from callcenter.clock import FixedClock
from callcenter.customers.models import DoNotCall, DoNotCallSource
from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.conftest import IN_WINDOW, Users
from tests.factories import INSTALL_ANSWERS, event, hours

SHANGHAI = ZoneInfo("Asia/Shanghai")


def post(client: TestClient, users: Users, payload: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/events", json=payload, headers=users.system)
    assert response.status_code == 201, response.text
    return dict(response.json())


def claim(client: TestClient, users: Users, agent: str = "agent1") -> dict[str, Any] | None:
    response = client.post("/api/v1/callbacks/claim", headers=users.headers(agent))
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    return dict(response.json())


def attempt(
    client: TestClient, users: Users, callback_id: int, agent: str = "agent1", **body: Any
) -> Any:
    return client.post(
        f"/api/v1/callbacks/{callback_id}/attempts", json=body, headers=users.headers(agent)
    )


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def test_nothing_is_offered_outside_the_calling_window(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # rule CB-5: 21:00 in Shanghai is outside both windows.
    post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    clock.set(local(2026, 11, 25, 21))
    assert claim(client, users) is None
    clock.set(local(2026, 11, 26, 8, 29))
    assert claim(client, users) is None
    clock.set(local(2026, 11, 26, 8, 30))
    assert claim(client, users) is not None


def test_earliest_hard_limit_first_then_target(client: TestClient, users: Users) -> None:
    anchor = IN_WINDOW - hours(1)
    install = post(client, users, event("install_completed", occurred_at=anchor))  # 72 h limit
    repair = post(client, users, event("repair_replied", occurred_at=anchor))  # 48 h limit
    complaint = post(client, users, event("complaint_replied", occurred_at=anchor))  # 48h/48h
    order = [claim(client, users, f"agent{i}") for i in range(1, 5)]
    ids = [c["callback"]["id"] if c else None for c in order]
    # repair and complaint share the hard limit; repair's target (24 h) is earlier.
    assert ids == [repair["id"], complaint["id"], install["id"], None]


def test_a_claim_takes_all_of_a_customers_callable_callbacks(
    client: TestClient, users: Users
) -> None:
    anchor = IN_WINDOW - hours(1)
    first = post(client, users, event("install_completed", occurred_at=anchor, customer_id="C-9"))
    second = post(client, users, event("repair_replied", occurred_at=anchor, customer_id="C-9"))
    later = post(client, users, event("install_accepted", occurred_at=anchor, customer_id="C-9"))
    taken = claim(client, users)
    assert taken is not None
    assert {c["id"] for c in taken["callbacks"]} == {first["id"], second["id"]}
    assert taken["callback"]["id"] == second["id"]  # the earlier hard limit
    assert taken["customer"]["phone"].startswith("+86")
    assert later["id"] not in {c["id"] for c in taken["callbacks"]}  # not callable until day 5
    # The customer is on the phone with agent1: nobody else gets them.
    assert claim(client, users, "agent2") is None


def test_a_new_callback_of_a_customer_on_the_phone_waits(client: TestClient, users: Users) -> None:
    post(client, users, event(occurred_at=IN_WINDOW - hours(1), customer_id="C-7"))
    assert claim(client, users) is not None
    post(client, users, event("repair_replied", occurred_at=IN_WINDOW, customer_id="C-7"))
    assert claim(client, users, "agent2") is None


def test_the_customers_zone_decides_the_window(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # 10:00 in Shanghai is 21:00 the day before in New York: closed there.
    ny = post(client, users, event(occurred_at=IN_WINDOW - hours(1), timezone="America/New_York"))
    sh = post(client, users, event("repair_replied", occurred_at=IN_WINDOW - hours(1)))
    taken = claim(client, users)
    assert taken is not None and taken["callback"]["id"] == sh["id"]
    assert claim(client, users, "agent2") is None
    clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("America/New_York")))
    again = claim(client, users, "agent2")
    assert again is not None and again["callback"]["id"] == ny["id"]


def test_do_not_call_is_checked_at_claim_time(
    client: TestClient, users: Users, database: Database, clock: FixedClock
) -> None:
    post(client, users, event(occurred_at=IN_WINDOW - hours(1), phone="13900000001"))
    with database.uow() as uow:
        uow.session.add(
            DoNotCall(
                phone="+8613900000001",
                source=DoNotCallSource.OPERATOR_IMPORT,
                created_at=clock.now(),
            )
        )
        uow.commit()
    assert claim(client, users) is None


def test_customer_who_asks_not_to_be_called_is_never_offered_again(
    client: TestClient, users: Users
) -> None:
    same = {"customer_id": "C-5", "phone": "13900000005"}
    first = post(client, users, event(occurred_at=IN_WINDOW - hours(1), **same))
    taken = claim(client, users)
    assert taken is not None
    response = attempt(client, users, first["id"], outcome="do_not_call", note="不要再打了")
    assert response.status_code == 201, response.text
    post(client, users, event("repair_replied", occurred_at=IN_WINDOW, **same))
    assert claim(client, users) is None


def test_an_expired_lease_returns_the_callback_and_the_late_agent_cannot_record(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    created = post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    assert claim(client, users, "agent1") is not None
    clock.advance(timedelta(minutes=14))
    assert claim(client, users, "agent2") is None  # still leased
    clock.advance(timedelta(minutes=2))
    retaken = claim(client, users, "agent2")
    assert retaken is not None and retaken["callback"]["id"] == created["id"]
    late = attempt(client, users, created["id"], "agent1", outcome="answered")
    assert late.status_code == 409
    assert "not claimed by you" in late.json()["detail"]
    assert attempt(client, users, created["id"], "agent2", outcome="refused").status_code == 201


def test_a_lapsed_lease_cannot_be_recorded_on_even_if_nobody_took_it(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    created = post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    assert claim(client, users) is not None
    clock.advance(timedelta(minutes=15))
    response = attempt(client, users, created["id"], outcome="answered")
    assert response.status_code == 409
    assert "lapsed" in response.json()["detail"]


def test_no_answer_retries_in_a_later_window_then_fails(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    created = post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    # 1st try at 10:00: the retry is due no sooner than 12:00 and in a later window: 14:30.
    assert claim(client, users) is not None
    body = attempt(client, users, created["id"], outcome="no_answer").json()
    state = body["callbacks"][0]
    assert state["status"] == "pending"
    assert datetime.fromisoformat(state["available_at"]) == local(2026, 11, 25, 14, 30)
    clock.set(local(2026, 11, 25, 14, 29))
    assert claim(client, users) is None
    clock.set(local(2026, 11, 25, 19, 0))
    assert claim(client, users) is not None
    body = attempt(client, users, created["id"], outcome="busy").json()
    # 2nd try at 19:00: +2 h is 21:00, outside; next opening 08:30 tomorrow.
    assert datetime.fromisoformat(body["callbacks"][0]["available_at"]) == local(
        2026, 11, 26, 8, 30
    )
    clock.set(local(2026, 11, 26, 9, 0))
    assert claim(client, users) is not None
    body = attempt(client, users, created["id"], outcome="no_answer").json()
    final = body["callbacks"][0]
    assert final["status"] == "failed"
    assert "3 attempts" in final["close_reason"]
    detail = client.get(f"/api/v1/callbacks/{created['id']}", headers=users.headers("agent1"))
    outcomes = [a["outcome"] for a in detail.json()["attempts"]]
    assert outcomes == ["no_answer", "busy", "no_answer"]
    assert [a["number"] for a in detail.json()["attempts"]] == [1, 2, 3]


def test_a_retry_after_the_hard_limit_expires_the_callback(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # rule CB-4: a churn callback's limit is the first window (12:00 here).
    created = post(client, users, event("cancellation", occurred_at=local(2026, 11, 25, 9, 0)))
    assert claim(client, users) is not None
    body = attempt(client, users, created["id"], outcome="no_answer").json()
    assert body["callbacks"][0]["status"] == "expired"
    assert "hard limit" in body["callbacks"][0]["close_reason"]


def test_call_back_later_must_be_inside_a_window_and_before_the_limit(
    client: TestClient, users: Users, database: Database
) -> None:
    created = post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    assert claim(client, users) is not None
    refused = attempt(
        client,
        users,
        created["id"],
        outcome="call_back_later",
        call_back_at=local(2026, 11, 25, 13, 0).isoformat(),
    )
    assert refused.status_code == 422
    detail = refused.json()["detail"][0]
    assert detail["field"] == "call_back_at"
    assert "outside the calling windows" in detail["msg"]
    windows = detail["next_valid_windows"]
    assert windows[0]["opens_local"] == "2026-11-25T10:01:00+08:00"  # from a minute on
    assert windows[1]["opens_local"] == "2026-11-25T14:30:00+08:00"
    too_late = attempt(
        client,
        users,
        created["id"],
        outcome="call_back_later",
        call_back_at=local(2026, 11, 29, 9, 0).isoformat(),
    )
    assert too_late.status_code == 422
    assert "hard limit" in too_late.json()["detail"][0]["msg"]
    with database.uow() as uow:
        assert uow.session.execute(sa.select(sa.func.count(Attempt.id))).scalar_one() == 0
    wanted = local(2026, 11, 25, 15, 0)
    ok = attempt(
        client, users, created["id"], outcome="call_back_later", call_back_at=wanted.isoformat()
    )
    assert ok.status_code == 201, ok.text
    assert datetime.fromisoformat(ok.json()["callbacks"][0]["available_at"]) == wanted
    missing = attempt(client, users, created["id"], outcome="call_back_later")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["field"] == "body"


def test_whole_call_outcomes_apply_to_every_callback_of_the_claim(
    client: TestClient, users: Users
) -> None:
    anchor = IN_WINDOW - hours(1)
    a = post(client, users, event("install_completed", occurred_at=anchor, customer_id="C-3"))
    b = post(client, users, event("repair_replied", occurred_at=anchor, customer_id="C-3"))
    assert claim(client, users) is not None
    body = attempt(client, users, a["id"], outcome="busy").json()
    assert {c["id"] for c in body["callbacks"]} == {a["id"], b["id"]}
    assert {c["status"] for c in body["callbacks"]} == {"pending"}
    assert len(body["attempts"]) == 2


def test_answered_completes_and_nothing_more_can_be_recorded(
    client: TestClient, users: Users
) -> None:
    created = post(client, users, event(occurred_at=IN_WINDOW - hours(1)))
    assert claim(client, users) is not None
    answers = client.post(
        f"/api/v1/callbacks/{created['id']}/answers",
        json={"answers": INSTALL_ANSWERS},
        headers=users.headers("agent1"),
    )
    assert answers.status_code == 201, answers.text
    done = attempt(client, users, created["id"], outcome="answered", note="客户满意")
    assert done.status_code == 201
    assert done.json()["callbacks"][0]["status"] == "completed"
    again = attempt(client, users, created["id"], outcome="no_answer")
    assert again.status_code == 409


def test_unknown_callback_and_bad_outcome(client: TestClient, users: Users) -> None:
    assert attempt(client, users, 999_999, outcome="answered").status_code == 404
    response = attempt(client, users, 1, outcome="hung_up")
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "outcome"


def test_roles(client: TestClient, users: Users) -> None:
    manager = users.headers("boss", UserRole.MANAGER)
    system = users.system
    assert client.post("/api/v1/callbacks/claim", headers=manager).status_code == 403
    assert client.post("/api/v1/callbacks/claim", headers=system).status_code == 403
    assert client.get("/api/v1/callbacks", headers=system).status_code == 403
    assert client.get("/api/v1/callbacks", headers=manager).status_code == 200
    assert client.post("/api/v1/callbacks/claim").status_code == 401
    lead = users.headers("lead", UserRole.RETENTION_LEAD)
    assert client.post("/api/v1/callbacks/claim", headers=lead).status_code == 204


def test_list_filters_and_pages(client: TestClient, users: Users, clock: FixedClock) -> None:
    old = post(client, users, event(occurred_at=IN_WINDOW - hours(30)))  # past its 24 h target
    for _ in range(4):
        post(client, users, event("repair_replied", occurred_at=IN_WINDOW - hours(1)))
    headers = users.headers("sup", UserRole.SUPERVISOR)
    page = client.get("/api/v1/callbacks", params={"limit": 2}, headers=headers).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["limit"] == 2
    rest = client.get("/api/v1/callbacks", params={"limit": 2, "offset": 4}, headers=headers)
    assert len(rest.json()["items"]) == 1
    overdue = client.get("/api/v1/callbacks", params={"overdue": "true"}, headers=headers).json()
    assert [c["id"] for c in overdue["items"]] == [old["id"]]
    assert overdue["items"][0]["overdue"] is True
    repairs = client.get(
        "/api/v1/callbacks", params={"type": "repair", "status": "pending"}, headers=headers
    ).json()
    assert repairs["total"] == 4
    due = client.get(
        "/api/v1/callbacks",
        params={"due_before": (IN_WINDOW - hours(1)).isoformat()},
        headers=headers,
    ).json()
    assert [c["id"] for c in due["items"]] == [old["id"]]
    bad = client.get("/api/v1/callbacks", params={"status": "nope"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "status.0"
    naive = client.get(
        "/api/v1/callbacks", params={"due_before": "2026-11-25T10:00:00"}, headers=headers
    )
    assert naive.status_code == 422


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/api/v1/events",
        "/api/v1/events/batch",
        "/api/v1/callbacks",
        "/api/v1/callbacks/claim",
        "/api/v1/callbacks/{callback_id}",
        "/api/v1/callbacks/{callback_id}/attempts",
        "/healthz",
    } <= paths
    assert client.get("/docs").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
