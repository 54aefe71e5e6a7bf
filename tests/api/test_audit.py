"""The audit trail through the API (rule SV-4): each audited action writes exactly one row
with who, from which address and about what, in the action's transaction (an action refused
writes none); managers search it; nobody else reads it and nothing edits it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from callcenter.audit.models import AuditEvent
from callcenter.clock import FixedClock
from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.api.test_answers import COMPLETE, answer, claimed_install
from tests.api.test_retention import CHURN_ANSWERS, SUPERVISOR, cancel, case_of
from tests.conftest import IN_WINDOW, Users
from tests.factories import event, hours

# What Starlette's test client reports as the client's address.
ADDRESS = "testclient"
MANAGER = ("manager1", UserRole.MANAGER)


def mark(database: Database) -> int:
    """The newest audit row's id now: the rows an action adds come after it."""
    with database.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.max(AuditEvent.id))).scalar() or 0)


def added(database: Database, since: int) -> list[dict[str, Any]]:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    with database.engine.connect() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.id > since).order_by(table.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def only(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


def test_a_claim_records_that_the_agent_saw_the_full_phone(
    client: TestClient, users: Users, database: Database
) -> None:
    created = client.post(
        "/api/v1/events",
        json=event(occurred_at=IN_WINDOW - hours(1), customer_id="C-AUDIT-1"),
        headers=users.system,
    )
    assert created.status_code == 201, created.text
    before = mark(database)
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers("agent1"))
    assert claim.status_code == 200, claim.text
    assert claim.json()["customer"]["phone"].startswith("+86")  # what the row is about
    row = only(added(database, before))
    agent = users.user("agent1")
    assert (row["action"], row["subject_type"], row["subject_id"]) == (
        "phone_viewed",
        "customer",
        "C-AUDIT-1",
    )
    assert (row["actor_user_id"], row["actor_username"], row["actor_role"]) == (
        agent.id,
        "agent1",
        "agent",
    )
    assert row["address"] == ADDRESS and row["at"] == IN_WINDOW
    assert row["detail"]["via"] == "claim"
    assert row["detail"]["callbacks"] == [claim.json()["callback"]["id"]]
    assert "+86" not in str(row["detail"])  # the number itself is never in the trail
    # Nothing to claim: nothing seen, nothing recorded.
    again = client.post("/api/v1/callbacks/claim", headers=users.headers("agent2"))
    assert again.status_code == 204
    assert len(added(database, before)) == 1


def test_an_attempt_and_answers_record_one_row_each(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = claimed_install(client, users)
    before = mark(database)
    answered = answer(client, users, callback_id, COMPLETE)
    assert answered.status_code == 201, answered.text
    row = only(added(database, before))
    assert (row["action"], row["subject_type"], row["subject_id"]) == (
        "answers_recorded",
        "callback",
        str(callback_id),
    )
    assert row["actor_username"] == "agent1" and row["address"] == ADDRESS
    assert sorted(row["detail"]["questions"]) == sorted(COMPLETE)
    assert sorted(row["detail"]["answers"]) == sorted(a["id"] for a in answered.json())

    before = mark(database)
    attempt = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "answered"},
        headers=users.headers("agent1"),
    )
    assert attempt.status_code == 201, attempt.text
    row = only(added(database, before))
    assert (row["action"], row["subject_id"], row["actor_username"], row["address"]) == (
        "attempt_recorded",
        str(callback_id),
        "agent1",
        ADDRESS,
    )
    assert row["detail"]["outcome"] == "answered" and row["detail"]["channel"] == "agent"
    assert row["detail"]["attempts"] == [attempt.json()["attempts"][0]["id"]]


def test_a_refused_action_writes_no_audit_row(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = claimed_install(client, users)
    before = mark(database)
    invalid = answer(client, users, callback_id, {"overall": 9})
    assert invalid.status_code == 422
    # An answered attempt without the whole questionnaire is refused, with the answers sent.
    half = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "answered"},
        headers=users.headers("agent1"),
    )
    assert half.status_code == 422
    not_held = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "busy"},
        headers=users.headers("agent2"),
    )
    assert not_held.status_code == 409
    unknown_agent = client.post(
        f"/api/v1/callbacks/{callback_id}/reassign",
        json={"agent": "nobody"},
        headers=users.headers(*SUPERVISOR),
    )
    assert unknown_agent.status_code == 422
    assert added(database, before) == []
    # The same requests, valid, are audited: the check above can fail.
    assert answer(client, users, callback_id, {"overall": 5}).status_code == 201
    assert [r["action"] for r in added(database, before)] == ["answers_recorded"]


def test_a_correction_is_audited_with_its_reason(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = claimed_install(client, users)
    recorded = answer(client, users, callback_id, COMPLETE).json()
    overall = next(a for a in recorded if a["question_id"] == "overall")
    before = mark(database)
    corrected = client.post(
        f"/api/v1/answers/{overall['id']}/corrections",
        json={"value": 4, "reason": "客户改口"},
        headers=users.headers("agent1"),
    )
    assert corrected.status_code == 201, corrected.text
    row = only(added(database, before))
    assert (row["action"], row["subject_type"], row["subject_id"]) == (
        "answer_corrected",
        "answer",
        str(overall["id"]),
    )
    assert row["detail"] == {
        "callback": callback_id,
        "question": "overall",
        "correction": corrected.json()["id"],
        "reason": "客户改口",
    }


def test_releasing_a_lease_and_reassigning_are_audited_as_the_supervisors(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = claimed_install(client, users)
    supervisor = users.headers(*SUPERVISOR)
    before = mark(database)
    released = client.post(f"/api/v1/callbacks/{callback_id}/release", headers=supervisor)
    assert released.status_code == 200, released.text
    row = only(added(database, before))
    assert (row["action"], row["subject_id"], row["actor_username"], row["actor_role"]) == (
        "lease_released",
        str(callback_id),
        "supervisor1",
        "supervisor",
    )
    assert row["detail"] == {"held_by": "agent1", "callbacks": [callback_id]}

    before = mark(database)
    agent2 = users.user("agent2")
    moved = client.post(
        f"/api/v1/callbacks/{callback_id}/reassign", json={"agent": "agent2"}, headers=supervisor
    )
    assert moved.status_code == 200, moved.text
    row = only(added(database, before))
    assert (row["action"], row["subject_id"], row["address"]) == (
        "callback_reassigned",
        str(callback_id),
        ADDRESS,
    )
    assert row["detail"]["to"] == "agent2" and row["detail"]["to_user_id"] == agent2.id


def test_a_work_order_raised_and_handed_over_is_audited(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = claimed_install(client, users)
    before = mark(database)
    raised = client.post(
        f"/api/v1/callbacks/{callback_id}/workorders",
        json={"subject": "宽带晚上经常掉线", "team": "维护部"},
        headers=users.headers("agent1"),
    )
    assert raised.status_code == 201, raised.text
    order_id = raised.json()["id"]
    row = only(added(database, before))
    assert (row["action"], row["subject_type"], row["subject_id"]) == (
        "workorder_created",
        "work_order",
        str(order_id),
    )
    before = mark(database)
    handed = client.post(
        f"/api/v1/workorders/{order_id}/hand-over",
        json={"team": "网络维护"},
        headers=users.headers(*SUPERVISOR),
    )
    assert handed.status_code == 200, handed.text
    row = only(added(database, before))
    assert (row["action"], row["subject_id"], row["actor_username"]) == (
        "workorder_handed_over",
        str(order_id),
        "supervisor1",
    )
    assert row["detail"]["team"] == "网络维护" and row["detail"]["callback"] == callback_id
    again = client.post(
        f"/api/v1/workorders/{order_id}/hand-over", headers=users.headers(*SUPERVISOR)
    )
    assert again.status_code == 409
    assert len(added(database, before)) == 1


def test_retention_steps_are_audited_with_their_offers(
    client: TestClient, users: Users, database: Database, clock: FixedClock
) -> None:
    callback = cancel(client, users)
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers("agent1"))
    assert claim.status_code == 200, claim.text
    answered = client.post(
        f"/api/v1/callbacks/{callback['id']}/answers",
        json={"answers": CHURN_ANSWERS},
        headers=users.headers("agent1"),
    )
    assert answered.status_code == 201, answered.text
    case_id = case_of(client, users, callback["id"])["id"]
    before = mark(database)
    # Level 1 records the answered attempt with it: two actions, a row each.
    level_1 = client.post(
        f"/api/v1/retention/cases/{case_id}/steps",
        json={"level": 1, "outcome": "escalated", "reason_code": "price"},
        headers=users.headers("agent1"),
    )
    assert level_1.status_code == 201, level_1.text
    rows = added(database, before)
    assert [r["action"] for r in rows] == ["attempt_recorded", "retention_step_recorded"]
    assert {(r["actor_username"], r["address"]) for r in rows} == {("agent1", ADDRESS)}
    step_row = rows[1]
    assert (step_row["subject_type"], step_row["subject_id"]) == ("retention_case", str(case_id))
    assert step_row["detail"]["level"] == 1 and step_row["detail"]["escalated_to"] == 2
    assert step_row["detail"]["attempt"] == rows[0]["detail"]["attempts"][0]

    clock.advance(hours(1))
    before = mark(database)
    level_2 = client.post(
        f"/api/v1/retention/cases/{case_id}/steps",
        json={
            "level": 2,
            "outcome": "retained",
            "reason_code": "price",
            "offer_code": "free_month_1",
            "offer_accepted": True,
        },
        headers=users.headers(*SUPERVISOR),
    )
    assert level_2.status_code == 201, level_2.text
    row = only(added(database, before))
    assert (row["action"], row["actor_username"]) == ("retention_step_recorded", "supervisor1")
    assert row["detail"]["offer_code"] == "free_month_1"
    assert row["detail"]["offer_accepted"] is True and row["detail"]["offer_cost_yuan"] == 100
    assert row["at"] == clock.now()


# -- searching --------------------------------------------------------------------------------


def trail(client: TestClient, users: Users, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/audit", params=params, headers=users.headers(*MANAGER))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_managers_search_the_trail_newest_first_with_filters_and_pages(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    first = claimed_install(client, users, agent="agent1", customer_id="C-S-1")
    clock.advance(timedelta(minutes=10))
    second = claimed_install(client, users, agent="agent2", customer_id="C-S-2")
    clock.advance(timedelta(minutes=10))
    assert answer(client, users, second, COMPLETE, agent="agent2").status_code == 201

    everything = trail(client, users)
    actions = [item["action"] for item in everything["items"]]
    # The start-up's configuration row comes first in time, so last here.
    assert actions == ["answers_recorded", "phone_viewed", "phone_viewed", "config_changed"]
    assert everything["total"] == 4

    by_agent = trail(client, users, actor="agent1")
    assert [(i["action"], i["subject_id"]) for i in by_agent["items"]] == [
        ("phone_viewed", "C-S-1")
    ]
    assert by_agent["items"][0]["address"] == ADDRESS and by_agent["items"][0]["role"] == "agent"
    views = trail(client, users, action="phone_viewed")
    assert [i["subject_id"] for i in views["items"]] == ["C-S-2", "C-S-1"]
    two_kinds = trail(client, users, action=["phone_viewed", "answers_recorded"])
    assert two_kinds["total"] == 3
    about = trail(client, users, subject_type="callback", subject_id=str(second))
    assert [i["action"] for i in about["items"]] == ["answers_recorded"]
    assert trail(client, users, subject_type="callback", subject_id=str(first))["total"] == 0
    window = trail(
        client,
        users,
        **{
            "from": (IN_WINDOW + timedelta(minutes=10)).isoformat(),
            "to": (IN_WINDOW + timedelta(minutes=20)).isoformat(),
        },
    )
    assert [(i["action"], i["actor"]) for i in window["items"]] == [("phone_viewed", "agent2")]
    assert trail(client, users, address=ADDRESS)["total"] == 3  # the start-up has no address
    assert trail(client, users, address="10.0.0.9")["total"] == 0

    page_1 = trail(client, users, limit=2)
    page_2 = trail(client, users, limit=2, offset=2)
    assert (page_1["total"], page_1["limit"], page_1["offset"]) == (4, 2, 0)
    assert [i["id"] for i in page_1["items"] + page_2["items"]] == [
        i["id"] for i in everything["items"]
    ]


def test_only_managers_and_admins_read_the_trail_and_nobody_edits_it(
    client: TestClient, users: Users
) -> None:
    for name, role in (
        ("agent1", UserRole.AGENT),
        ("sup1", UserRole.SUPERVISOR),
        ("lead1", UserRole.RETENTION_LEAD),
        ("ordersys", UserRole.SYSTEM),
    ):
        refused = client.get("/api/v1/audit", headers=users.headers(name, role))
        assert refused.status_code == 403, name
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/api/v1/audit", headers=users.headers("admin1", UserRole.ADMIN)).is_success
    (row,) = trail(client, users, action="config_changed")["items"]
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.request(
            method, f"/api/v1/audit/{row['id']}", headers=users.headers(*MANAGER)
        )
        assert response.status_code in (404, 405), method
    assert trail(client, users, action="config_changed")["items"] == [row]


def test_a_bad_filter_is_a_422(client: TestClient, users: Users) -> None:
    response = client.get(
        "/api/v1/audit", params={"action": "deleted"}, headers=users.headers(*MANAGER)
    )
    assert response.status_code == 422
    naive = client.get(
        "/api/v1/audit", params={"from": "2026-11-25T10:00:00"}, headers=users.headers(*MANAGER)
    )
    assert naive.status_code == 422
