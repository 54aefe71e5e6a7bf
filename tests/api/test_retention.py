"""The three-level retention flow through the API (rules CB-4, CB-6, RT-1..RT-4, SV-4, WO-4):
a case per cancellation, each level's queue and role, offers bounded by level, the state
machine's moves, win-back callbacks, and the SLA watch's retention steps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.clock import FixedClock
from callcenter.config import RetentionRule, RulesConfig, Settings
from callcenter.db import Database
from callcenter.retention.models import RetentionStep
from callcenter.sla.service import watch
from callcenter.users.models import UserRole
from tests.conftest import IN_WINDOW, Users
from tests.factories import event, hours

SHANGHAI = ZoneInfo("Asia/Shanghai")
SUPERVISOR = ("supervisor1", UserRole.SUPERVISOR)
LEAD = ("lead1", UserRole.RETENTION_LEAD)
MANAGER = ("manager1", UserRole.MANAGER)
ADMIN = ("admin1", UserRole.ADMIN)
# rule Q-CHURN: the churn script answered for a customer who still leaves
CHURN_ANSWERS: dict[str, Any] = {"reason": "price", "retained": False, "reinstall": "not_now"}


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def cancel(client: TestClient, users: Users, **kwargs: Any) -> dict[str, Any]:
    payload = event("cancellation", occurred_at=IN_WINDOW - timedelta(minutes=30), **kwargs)
    response = client.post("/api/v1/events", json=payload, headers=users.system)
    assert response.status_code == 201, response.text
    return dict(response.json())


def case_of(client: TestClient, users: Users, callback_id: int) -> dict[str, Any]:
    response = client.get(
        "/api/v1/retention/cases", params={"callback_id": callback_id}, headers=users.headers(*LEAD)
    )
    assert response.status_code == 200, response.text
    (case,) = response.json()["items"]
    return dict(case)


def detail(client: TestClient, users: Users, case_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/retention/cases/{case_id}", headers=users.headers(*LEAD))
    assert response.status_code == 200, response.text
    return dict(response.json())


def on_the_churn_call(client: TestClient, users: Users, agent: str = "agent1") -> tuple[int, int]:
    """A cancellation, its churn callback claimed by `agent` with its script answered:
    (callback id, case id)."""
    callback = cancel(client, users)
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers(agent))
    assert claim.status_code == 200, claim.text
    assert claim.json()["callback"]["id"] == callback["id"]
    answered = client.post(
        f"/api/v1/callbacks/{callback['id']}/answers",
        json={"answers": CHURN_ANSWERS},
        headers=users.headers(agent),
    )
    assert answered.status_code == 201, answered.text
    return callback["id"], case_of(client, users, callback["id"])["id"]


def step(
    client: TestClient, users: Users, case_id: int, who: tuple[str, UserRole], **body: Any
) -> Any:
    body.setdefault("reason_code", "price")
    return client.post(
        f"/api/v1/retention/cases/{case_id}/steps", json=body, headers=users.headers(*who)
    )


AGENT = ("agent1", UserRole.AGENT)


def escalated_to(level: int, client: TestClient, users: Users, clock: FixedClock) -> int:
    """A case walked up to `level`, one level at a time: its id."""
    _, case_id = on_the_churn_call(client, users)
    who = [AGENT, SUPERVISOR]
    for current in range(1, level):
        response = step(
            client, users, case_id, who[current - 1], level=current, outcome="escalated"
        )
        assert response.status_code == 201, response.text
        clock.advance(hours(1))
    return case_id


def fields(response: Any) -> set[str]:
    assert response.status_code == 422, response.text
    return {item["field"] for item in response.json()["detail"]}


# -- a case per cancellation ------------------------------------------------------------------


def test_a_cancellation_opens_a_case_at_level_1_due_with_its_churn_callback(
    client: TestClient, users: Users
) -> None:
    # rules CB-4, CB-6: created in the same intake, due at once (the first window)
    callback = cancel(client, users)
    install = event(occurred_at=IN_WINDOW - hours(1))
    assert client.post("/api/v1/events", json=install, headers=users.system).status_code == 201
    queue = client.get("/api/v1/retention/queues/1", headers=users.headers(*AGENT))
    assert queue.status_code == 200, queue.text
    (case,) = queue.json()["items"]  # the install opened none
    assert case["callback_id"] == callback["id"]
    assert (case["state"], case["level"]) == ("open", 1)
    assert instant(case["due_at"]) == instant(callback["due_at"]) == local(2026, 11, 25, 9, 30)
    assert case["customer"]["phone_masked"] == callback["customer"]["phone_masked"]
    assert case["overdue"] is True  # due at once: it is 10:00 now
    shown = detail(client, users, case["id"])
    assert shown["steps"] == [] and shown["churn_callback"]["type"] == "churn"
    assert shown["allowed_outcomes"] == ["retained", "escalated"]
    assert shown["escalation_targets"] == [2]


def test_a_repeated_cancellation_event_opens_no_second_case(
    client: TestClient, users: Users
) -> None:
    payload = event("cancellation", occurred_at=IN_WINDOW - hours(1))
    assert client.post("/api/v1/events", json=payload, headers=users.system).status_code == 201
    assert client.post("/api/v1/events", json=payload, headers=users.system).status_code == 200
    cases = client.get("/api/v1/retention/cases", headers=users.headers(*LEAD)).json()
    assert cases["total"] == 1


# -- level 1: the churn call ------------------------------------------------------------------


def test_retained_at_level_1_with_the_answered_attempt(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # rule RT-1: the agent on the churn call records reason, offer, answer, outcome
    callback_id, case_id = on_the_churn_call(client, users)
    clock.advance(timedelta(minutes=5))
    response = step(
        client,
        users,
        case_id,
        AGENT,
        level=1,
        outcome="retained",
        offer_code="discount_10_6m",
        offer_accepted=True,
        customer_answer="九折可以接受，先不拆了。",
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["state"], case["level"]) == ("retained", 1)
    assert instant(case["closed_at"]) == clock.now()
    (record,) = case["steps"]
    assert record["recorded_by"] == "agent1" and record["reason"]["code"] == "price"
    assert record["offer"]["code"] == "discount_10_6m" and record["offer_cost_yuan"] == 60
    assert record["customer_answer"] == "九折可以接受，先不拆了。"
    # the answered attempt went with it and closed the churn callback
    assert case["churn_callback"]["status"] == "completed"
    callback = client.get(f"/api/v1/callbacks/{callback_id}", headers=users.headers(*AGENT))
    (attempt,) = callback.json()["attempts"]
    assert attempt["outcome"] == "answered" and attempt["id"] == record["attempt_id"]
    assert case["allowed_outcomes"] == [] and case["escalation_targets"] == []


def test_level_1_is_recorded_only_by_the_agent_holding_the_churn_claim(
    client: TestClient, users: Users
) -> None:
    callback_id, case_id = on_the_churn_call(client, users, agent="agent1")
    for who in (("agent2", UserRole.AGENT), SUPERVISOR):
        response = step(client, users, case_id, who, level=1, outcome="retained")
        assert response.status_code == 409, response.text
        assert "not claimed by you" in response.json()["detail"]
    assert detail(client, users, case_id)["steps"] == []


def test_an_answered_churn_call_needs_its_level_1_step(client: TestClient, users: Users) -> None:
    callback_id, case_id = on_the_churn_call(client, users)
    response = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "answered"},
        headers=users.headers(*AGENT),
    )
    assert response.status_code == 409, response.text
    assert f"/api/v1/retention/cases/{case_id}/steps" in response.json()["detail"]
    shown = detail(client, users, case_id)
    assert shown["churn_callback"]["status"] == "claimed" and shown["level"] == 1
    # the customer asks to be called back at 11:00: the case waits at level 1 meanwhile
    later = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "call_back_later", "call_back_at": local(2026, 11, 25, 11).isoformat()},
        headers=users.headers(*AGENT),
    )
    assert later.status_code == 201, later.text
    shown = detail(client, users, case_id)
    assert (shown["state"], shown["level"], shown["steps"]) == ("open", 1, [])


def test_a_churn_call_ended_without_an_answer_escalates_at_once(
    client: TestClient, users: Users
) -> None:
    # rule RT-2: nobody could learn the reason at level 1; the supervisors try
    callback_id, case_id = on_the_churn_call(client, users)
    response = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "wrong_number"},
        headers=users.headers(*AGENT),
    )
    assert response.status_code == 201, response.text
    shown = detail(client, users, case_id)
    assert (shown["state"], shown["level"]) == ("open", 2)
    (record,) = shown["steps"]
    assert record["recorded_by"] is None and record["reason"] is None
    assert record["outcome"] == "escalated" and "failed" in record["note"]


def test_a_whole_call_outcome_on_another_callback_escalates_the_churn_case_too(
    client: TestClient, users: Users
) -> None:
    # The customer is called once for all their callbacks: a wrong number recorded on the
    # install callback ends the churn callback of the same claim as well (rule RT-2 follows).
    install = event(occurred_at=IN_WINDOW - hours(2), customer_id="C-both")
    assert client.post("/api/v1/events", json=install, headers=users.system).status_code == 201
    churn = cancel(client, users, customer_id="C-both")
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers(*AGENT)).json()
    assert {c["id"] for c in claim["callbacks"]} >= {churn["id"]}
    other = next(c["id"] for c in claim["callbacks"] if c["id"] != churn["id"])
    response = client.post(
        f"/api/v1/callbacks/{other}/attempts",
        json={"outcome": "wrong_number"},
        headers=users.headers(*AGENT),
    )
    assert response.status_code == 201, response.text
    case = case_of(client, users, churn["id"])
    assert (case["state"], case["level"]) == ("open", 2)


# -- levels 2 and 3 ----------------------------------------------------------------------------


def test_retained_at_level_2(client: TestClient, users: Users, clock: FixedClock) -> None:
    case_id = escalated_to(2, client, users, clock)
    shown = detail(client, users, case_id)
    # rule RT-2: due 24 hours after level 1's outcome (an hour ago)
    assert instant(shown["due_at"]) == clock.now() - hours(1) + hours(24)
    assert instant(shown["level_since"]) == clock.now() - hours(1)
    queue = client.get("/api/v1/retention/queues/2", headers=users.headers(*SUPERVISOR))
    assert [c["id"] for c in queue.json()["items"]] == [case_id]
    response = step(
        client,
        users,
        case_id,
        SUPERVISOR,
        level=2,
        outcome="retained",
        reason_code="network_quality",
        offer_code="speed_up_12m",
        offer_accepted=True,
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["state"], case["level"], case["reason_code"]) == (
        "retained",
        2,
        "network_quality",
    )
    assert [(s["level"], s["outcome"], s["recorded_by"]) for s in case["steps"]] == [
        (1, "escalated", "agent1"),
        (2, "retained", "supervisor1"),
    ]
    assert (
        client.get("/api/v1/retention/queues/2", headers=users.headers(*SUPERVISOR)).json()["items"]
        == []
    )


def test_retained_at_level_3(client: TestClient, users: Users, clock: FixedClock) -> None:
    case_id = escalated_to(3, client, users, clock)
    shown = detail(client, users, case_id)
    assert shown["level"] == 3
    # rule RT-3: due 48 hours after level 2's outcome
    assert instant(shown["due_at"]) == clock.now() - hours(1) + hours(48)
    assert shown["allowed_outcomes"] == ["retained", "lost"]
    response = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="retained",
        offer_code="free_months_3",
        offer_accepted=True,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["state"], response.json()["level"]) == ("retained", 3)
    assert [s["level"] for s in response.json()["steps"]] == [1, 2, 3]


def test_lost_at_level_3_with_a_win_back_callback(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    case_id = escalated_to(3, client, users, clock)
    response = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="lost",
        reason_code="moving_house",
        offer_code="discount_30_12m",
        offer_accepted=False,
        customer_answer="明年春天搬回来再装。",
        win_back=True,
        win_back_on="2027-03-01",
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["state"], case["level"]) == ("lost", 3)
    # rule RT-4: a callback on the day the customer named, from its first window (CB-5)
    win_back = case["win_back_callback"]
    assert (
        win_back["id"] == case["win_back_callback_id"] == case["steps"][-1]["win_back_callback_id"]
    )
    assert (win_back["type"], win_back["status"], win_back["channel"]) == (
        "win_back",
        "pending",
        "agent",
    )
    opens = local(2027, 3, 1, 8, 30)
    assert instant(win_back["available_at"]) == instant(win_back["anchor_at"]) == opens
    assert instant(win_back["due_at"]) == opens + hours(24)
    assert instant(win_back["hard_due_at"]) == opens + timedelta(days=7)
    listed = client.get(
        "/api/v1/callbacks", params={"type": "win_back"}, headers=users.headers(*AGENT)
    ).json()
    assert [c["id"] for c in listed["items"]] == [win_back["id"]]
    # it is offered on that day, with its own script
    clock.set(opens)
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers("agent2"))
    assert claim.status_code == 200 and claim.json()["callback"]["id"] == win_back["id"]
    script = client.get(
        f"/api/v1/callbacks/{win_back['id']}/script", headers=users.headers("agent2")
    )
    assert script.status_code == 200 and script.json()["script_id"] == "win_back"


def test_lost_at_level_3_without_win_back(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    case_id = escalated_to(3, client, users, clock)
    response = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="lost",
        reason_code="no_longer_needed",
        win_back=False,
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["state"], case["win_back_callback_id"], case["win_back_callback"]) == (
        "lost",
        None,
        None,
    )
    assert case["steps"][-1]["win_back"] is False
    listed = client.get(
        "/api/v1/callbacks", params={"type": "win_back"}, headers=users.headers(*AGENT)
    ).json()
    assert listed["total"] == 0


# -- offers bounded by level -------------------------------------------------------------------


def test_an_offer_above_the_callers_level_is_refused(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    callback_id, case_id = on_the_churn_call(client, users)
    response = step(
        client,
        users,
        case_id,
        AGENT,
        level=1,
        outcome="retained",
        offer_code="free_month_1",
        offer_accepted=True,
    )
    # rules RT-1, RT-2: a level-2 offer; the message names the offer and the level needed
    assert response.status_code == 403, response.text
    message = response.json()["detail"]
    assert "free_month_1" in message and "level 2" in message and "level 1" in message
    shown = detail(client, users, case_id)
    assert shown["steps"] == [] and shown["churn_callback"]["status"] == "claimed"
    assert step(client, users, case_id, AGENT, level=1, outcome="escalated").status_code == 201
    # a supervisor may make level-2 offers, not level-3 ones
    refused = step(
        client,
        users,
        case_id,
        SUPERVISOR,
        level=2,
        outcome="escalated",
        offer_code="free_months_3",
        offer_accepted=False,
    )
    assert refused.status_code == 403 and "level 3" in refused.json()["detail"]
    made = step(
        client,
        users,
        case_id,
        SUPERVISOR,
        level=2,
        outcome="escalated",
        offer_code="free_month_1",
        offer_accepted=False,
    )
    assert made.status_code == 201, made.text


def test_the_catalogue_marks_the_offers_each_level_may_make(
    client: TestClient, users: Users
) -> None:
    def allowed(who: tuple[str, UserRole]) -> set[str]:
        body = client.get("/api/v1/retention/catalogue", headers=users.headers(*who)).json()
        return {offer["code"] for offer in body["offers"] if offer["allowed"]}

    level_1 = {"discount_10_6m", "speed_up_6m"}
    level_2 = level_1 | {"free_month_1", "discount_20_12m", "speed_up_12m"}
    assert allowed(AGENT) == level_1
    assert allowed(SUPERVISOR) == level_2
    assert allowed(LEAD) == level_2 | {"free_months_3", "discount_30_12m"}
    assert allowed(MANAGER) == set()  # managers read; they make no offers
    body = client.get("/api/v1/retention/catalogue", headers=users.headers(*AGENT)).json()
    assert [r["code"] for r in body["reasons"]] == [
        "price",
        "network_quality",
        "service_attitude",
        "moving_house",
        "competitor_offer",
        "no_longer_needed",
        "other",
    ]
    assert (body["acting_level"], body["reading_level"]) == (1, 1)


# -- the state machine -------------------------------------------------------------------------


def test_moves_the_flow_does_not_allow_are_409(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    _, case_id = on_the_churn_call(client, users)
    # rule CB-6: level by level; lost only once every level tried
    skip = step(client, users, case_id, AGENT, level=1, outcome="escalated", escalate_to=3)
    assert skip.status_code == 409 and "skips no level" in skip.json()["detail"]
    lost = step(client, users, case_id, AGENT, level=1, outcome="lost", win_back=False)
    assert lost.status_code == 409 and "escalate it to level 2" in lost.json()["detail"]
    assert step(client, users, case_id, AGENT, level=1, outcome="escalated").status_code == 201
    # the case moved on: a step for level 1 again is refused
    again = step(client, users, case_id, SUPERVISOR, level=1, outcome="retained")
    assert again.status_code == 409 and "at level 2" in again.json()["detail"]
    assert step(client, users, case_id, SUPERVISOR, level=2, outcome="escalated").status_code == 201
    last = step(client, users, case_id, LEAD, level=3, outcome="escalated")
    assert last.status_code == 409 and "last level" in last.json()["detail"]
    assert step(client, users, case_id, LEAD, level=3, outcome="retained").status_code == 201
    closed = step(client, users, case_id, LEAD, level=3, outcome="lost", win_back=False)
    assert closed.status_code == 409 and "closed" in closed.json()["detail"]
    # records are inserted, never updated (rule SV-4): one row per level
    assert [s["outcome"] for s in detail(client, users, case_id)["steps"]] == [
        "escalated",
        "escalated",
        "retained",
    ]


def test_a_level_is_recorded_by_its_role_and_above(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    case_id = escalated_to(2, client, users, clock)
    refused = step(client, users, case_id, ("agent2", UserRole.AGENT), level=2, outcome="retained")
    assert refused.status_code == 403 and "supervisor" in refused.json()["detail"]
    manager = step(client, users, case_id, MANAGER, level=2, outcome="retained")
    assert manager.status_code == 403  # managers read only
    assert step(client, users, case_id, LEAD, level=2, outcome="escalated").status_code == 201


@pytest.fixture
def skipping_client(database: Database, clock: FixedClock) -> Iterator[TestClient]:
    rules = RulesConfig(retention=RetentionRule(allow_skip_levels=True))
    settings = Settings(database_url=database.url, scheduler_enabled=False, rules=rules)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as test_client:
        yield test_client


def test_levels_are_skipped_only_when_the_operator_allows_it(
    skipping_client: TestClient, users: Users
) -> None:
    client = skipping_client
    _, case_id = on_the_churn_call(client, users)
    assert detail(client, users, case_id)["escalation_targets"] == [2, 3]
    response = step(client, users, case_id, AGENT, level=1, outcome="escalated", escalate_to=3)
    assert response.status_code == 201, response.text
    assert response.json()["level"] == 3
    assert response.json()["steps"][0]["escalated_to"] == 3
    # and a case may then close as lost below the last level
    _, other = on_the_churn_call(client, users, agent="agent2")
    lost = step(
        client,
        users,
        other,
        ("agent2", UserRole.AGENT),
        level=1,
        outcome="lost",
        win_back=False,
    )
    assert lost.status_code == 201, lost.text
    assert (lost.json()["state"], lost.json()["level"]) == ("lost", 1)


# -- 422: every problem names its field --------------------------------------------------------


def test_every_problem_of_a_step_names_its_field(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    case_id = escalated_to(3, client, users, clock)
    # rule RT-4: a lost customer is asked whether they might come back
    assert fields(step(client, users, case_id, LEAD, level=3, outcome="lost")) == {"win_back"}
    assert fields(step(client, users, case_id, LEAD, level=3, outcome="lost", win_back=True)) == {
        "win_back_on"
    }
    past = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="lost",
        win_back=True,
        win_back_on="2026-11-25",
    )
    assert fields(past) == {"win_back_on"} and "after today" in past.text
    several = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="retained",
        reason_code="other",
        offer_code="discount_30_12m",
        win_back=True,
    )
    assert fields(several) == {"reason_text", "offer_accepted", "win_back"}
    unknown = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="retained",
        reason_code="weather",
        offer_code="gold_bar",
        offer_accepted=True,
    )
    assert fields(unknown) == {"reason_code", "offer_code"}
    assert "price" in unknown.text  # the known reasons are listed
    missing = client.post(
        f"/api/v1/retention/cases/{case_id}/steps",
        json={"level": 3, "outcome": "kept"},
        headers=users.headers(*LEAD),
    )
    assert fields(missing) == {"outcome", "reason_code"}
    assert detail(client, users, case_id)["state"] == "open"


# -- who reads which queue ---------------------------------------------------------------------


def test_each_queue_is_visible_to_its_role_and_above(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    escalated_to(2, client, users, clock)
    expected = {
        AGENT: {1},
        SUPERVISOR: {1, 2},
        LEAD: {1, 2, 3},
        MANAGER: {1, 2, 3},
        ADMIN: {1, 2, 3},
    }
    for who, levels in expected.items():
        for level in (1, 2, 3):
            response = client.get(f"/api/v1/retention/queues/{level}", headers=users.headers(*who))
            wanted = 200 if level in levels else 403
            assert response.status_code == wanted, (who, level, response.text)
    refused = client.get("/api/v1/retention/queues/2", headers=users.headers(*AGENT))
    assert "supervisor and above" in refused.json()["detail"]
    # the case list shows an agent only level-1 cases; asking for more is refused
    mine = client.get("/api/v1/retention/cases", headers=users.headers(*AGENT)).json()
    assert mine["total"] == 0
    theirs = client.get("/api/v1/retention/cases", headers=users.headers(*SUPERVISOR)).json()
    assert theirs["total"] == 1
    case_id = theirs["items"][0]["id"]
    assert (
        client.get(f"/api/v1/retention/cases/{case_id}", headers=users.headers(*AGENT)).status_code
        == 403
    )
    asked = client.get(
        "/api/v1/retention/cases", params={"level": 2}, headers=users.headers(*AGENT)
    )
    assert asked.status_code == 403
    system = client.get("/api/v1/retention/queues/1", headers=users.system)
    assert system.status_code == 403
    assert client.get("/api/v1/retention/queues/4", headers=users.headers(*LEAD)).status_code == 422


# -- the SLA watch (rule WO-4) ------------------------------------------------------------------


def urging_orders(client: TestClient, users: Users) -> list[dict[str, Any]]:
    response = client.get(
        "/api/v1/workorders", params={"kind": "urging"}, headers=users.headers(*SUPERVISOR)
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_a_level_2_case_past_its_due_time_gets_one_urging_order(
    client: TestClient, users: Users, clock: FixedClock, database: Database, settings: Settings
) -> None:
    callback_id, case_id = on_the_churn_call(client, users)
    assert step(client, users, case_id, AGENT, level=1, outcome="escalated").status_code == 201
    escalated_at = clock.now()
    clock.set(escalated_at + hours(24) - timedelta(minutes=1))
    watch(database.uow, now=clock.now(), config=settings.rules)
    assert urging_orders(client, users) == []
    clock.set(escalated_at + hours(24) + timedelta(minutes=1))
    report = watch(database.uow, now=clock.now(), config=settings.rules)
    assert report.urged_retention == 1 and report.failures == []
    (order,) = urging_orders(client, users)
    assert order["team"] == "分公司" and order["callback_id"] == callback_id
    assert f"#{case_id}" in order["subject"] and "第2级" in order["subject"]
    assert instant(order["due_at"]) == clock.now() + timedelta(minutes=30)
    # once per level, however often the watch runs
    clock.advance(timedelta(minutes=1))
    assert watch(database.uow, now=clock.now(), config=settings.rules).urged_retention == 0
    shown = detail(client, users, case_id)
    assert shown["overdue"] is True and shown["urging_order_ids"] == [order["id"]]
    # level 3 is urged on its own when it is late in turn
    assert step(client, users, case_id, SUPERVISOR, level=2, outcome="escalated").status_code == 201
    clock.advance(hours(48) + timedelta(minutes=1))
    assert watch(database.uow, now=clock.now(), config=settings.rules).urged_retention == 1
    assert len(detail(client, users, case_id)["urging_order_ids"]) == 2


def test_an_expired_churn_callback_moves_its_case_to_level_2(
    client: TestClient, users: Users, clock: FixedClock, database: Database, settings: Settings
) -> None:
    # rule CB-4: the churn callback's limit is the end of the first window (12:00)
    callback = cancel(client, users)
    case_id = case_of(client, users, callback["id"])["id"]
    clock.set(local(2026, 11, 25, 12, 1))
    report = watch(database.uow, now=clock.now(), config=settings.rules)
    assert report.expired == 1 and report.retention_escalated == 1
    shown = detail(client, users, case_id)
    assert shown["churn_callback"]["status"] == "expired"
    assert (shown["state"], shown["level"]) == ("open", 2)
    assert instant(shown["due_at"]) == clock.now() + hours(24)  # rule RT-2
    (record,) = shown["steps"]
    assert record["recorded_by"] is None and "expired" in record["note"]
    clock.advance(timedelta(minutes=1))
    assert watch(database.uow, now=clock.now(), config=settings.rules).retention_escalated == 0
    with database.uow() as uow:
        rows = uow.session.execute(sa.select(sa.func.count()).select_from(RetentionStep))
        assert rows.scalar_one() == 1


def test_a_win_back_day_is_the_customers_local_day(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # 00:30 on the 26th in Shanghai is still the 25th in UTC: "tomorrow" is the 27th there.
    case_id = escalated_to(3, client, users, clock)
    clock.set(local(2026, 11, 26, 0, 30))
    assert clock.now().date() == date(2026, 11, 25)
    today = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="lost",
        win_back=True,
        win_back_on="2026-11-26",
    )
    assert fields(today) == {"win_back_on"}
    tomorrow = "2026-11-27"
    response = step(
        client,
        users,
        case_id,
        LEAD,
        level=3,
        outcome="lost",
        win_back=True,
        win_back_on=tomorrow,
    )
    assert response.status_code == 201, response.text
    opens = instant(response.json()["win_back_callback"]["available_at"])
    assert opens.astimezone(SHANGHAI).date() == date.fromisoformat(tomorrow)
    assert opens.astimezone(SHANGHAI).time().isoformat() == "08:30:00"
