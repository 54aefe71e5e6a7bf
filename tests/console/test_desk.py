"""The agent's desk and the supervisor's board over HTTP (the console; rules CB-5, SV-2,
SV-4, SV-5)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi.testclient import TestClient

from callcenter.callbacks.models import Callback, CallbackEvent, CallbackEventKind
from callcenter.callbacks.rules import CallbackStatus
from callcenter.clock import FixedClock
from callcenter.db import Database
from callcenter.questionnaires.models import Answer
from callcenter.users.models import UserRole
from callcenter.workorders.models import WorkOrder
from tests.conftest import IN_WINDOW, Users
from tests.console.helpers import csrf_of, post_form, sign_in
from tests.factories import event

SHANGHAI = ZoneInfo("Asia/Shanghai")


def queue_install(client: TestClient, users: Users, **kwargs: object) -> int:
    payload = event(occurred_at=IN_WINDOW - timedelta(hours=3), name="王芳", **kwargs)  # type: ignore[arg-type]
    response = client.post("/api/v1/events", json=payload, headers=users.system)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def take(client: TestClient) -> str:
    response = post_form(client, "/console/desk", "/console/desk/claim")
    assert response.status_code == 303
    return client.get(response.headers["location"]).text


def row(database: Database, callback_id: int) -> Callback:
    with database.uow() as uow:
        return uow.session.get_one(Callback, callback_id)


def test_taking_the_next_callback_shows_the_customer_the_script_and_the_deadlines(
    client: TestClient, users: Users
) -> None:
    callback_id = queue_install(client, users, phone="13812345678")
    sign_in(client, users, "agent1", UserRole.AGENT)
    desk = client.get("/console/desk").text
    assert "13812345678" not in desk  # nothing held yet
    page = take(client)
    assert "+8613812345678" in page  # the number to dial, now that this agent holds it
    assert f"#{callback_id}" in page and "装机完工" in page
    number = users.user("agent1").employee_number
    assert f"客服代表agent1，工号{number}" in page  # the opening names the agent and number
    assert "王芳，您好" in page
    assert 'data-deadline="' in page and "最晚时限" in page
    assert "服务禁语" in page  # rule SV-2: the forbidden phrases are on the help panel
    assert 'data-depends-on="working"' in page  # a conditional question, hidden until needed


def test_a_missing_required_answer_is_shown_against_its_question_and_nothing_is_saved(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "answered",
            "q.working": "true",
            "q.appointment_kept": "true",
            "q.overall": "5",
        },
    )
    assert response.status_code == 422
    assert 'id="err-conduct_standard"' in response.text and "必答题" in response.text
    assert 'value="true" checked' in response.text  # what was typed stays on the form
    assert row(database, callback_id).status == CallbackStatus.CLAIMED
    with database.uow() as uow:
        assert uow.session.execute(sa.select(sa.func.count()).select_from(Answer)).scalar() == 0


def test_a_conditional_question_is_asked_only_when_it_applies_and_saving_completes(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "answered",
            "q.working": "false",
            "q.working_problem": "宽带时断时续",
            "q.appointment_kept": "true",
            "q.conduct_standard": "true",
            "q.overall": "4",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == (f"/console/desk?saved={callback_id}&outcome=answered")
    assert row(database, callback_id).status == CallbackStatus.COMPLETED
    with database.uow() as uow:
        answers = dict(
            uow.session.execute(sa.select(Answer.question_id, Answer.value)).all()  # type: ignore[call-overload]
        )
    assert answers["working"] is False and answers["working_problem"] == "宽带时断时续"
    after = client.get(response.headers["location"]).text
    assert "已保存" in after and "取下一个回访" in after  # the next one is one click away


def test_an_answer_to_a_question_that_does_not_apply_is_not_kept(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "answered",
            "q.working": "true",
            "q.working_problem": "typed before the answer changed",
            "q.appointment_kept": "true",
            "q.conduct_standard": "true",
            "q.overall": "5",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    with database.uow() as uow:
        asked = set(uow.session.execute(sa.select(Answer.question_id)).scalars())  # type: ignore[call-overload]
    assert "working_problem" not in asked


def test_no_answer_returns_the_callback_to_the_queue_for_a_later_window(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={"csrf_token": csrf_of(page), "outcome": "no_answer"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    stored = row(database, callback_id)
    assert stored.status == CallbackStatus.PENDING and stored.attempt_count == 1
    assert stored.available_at >= IN_WINDOW + timedelta(hours=2)


def test_the_call_back_picker_offers_only_times_in_a_window_before_the_hard_limit(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    offered = [
        datetime.fromisoformat(value)
        for value in re.findall(r'<option value="(\d{4}-[^"]+)"', page)
    ]
    hard = row(database, callback_id).hard_due_at
    assert offered, "no time offered"
    for at in offered:  # rule CB-5
        local = at.astimezone(SHANGHAI).time()
        assert IN_WINDOW < at < hard
        assert time(8, 30) <= local < time(12) or time(14, 30) <= local < time(20, 30)
    chosen = offered[3]
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "call_back_later",
            "call_back_at": chosen.isoformat(),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    stored = row(database, callback_id)
    assert stored.available_at == chosen and stored.assigned_agent_id is not None
    # The callback now waits in this agent's own list, with its number masked.
    desk = client.get("/console/desk").text
    assert "我的预约回访 (1)" in desk and "****" in desk


def test_a_call_back_time_outside_the_windows_is_refused_with_the_reason(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    night = datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "call_back_later",
            "call_back_at": night.isoformat(),
        },
    )
    assert response.status_code == 422
    assert "不在外呼时段内" in response.text
    assert row(database, callback_id).status == CallbackStatus.CLAIMED


def test_a_follow_up_work_order_is_raised_from_the_desk(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/follow-up",
        data={"csrf_token": csrf_of(page), "subject": "宽带测速慢", "team": "装维班"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with database.uow() as uow:
        order = uow.session.execute(sa.select(WorkOrder)).scalar_one()
    assert order.callback_id == callback_id and order.subject == "宽带测速慢"  # rule SV-5
    assert "跟进工单" in client.get(response.headers["location"]).text


def test_nothing_to_call_says_so(client: TestClient, users: Users) -> None:
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    assert "现在没有可回访的客户" in page


def test_a_lapsed_lease_cannot_be_recorded_on(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    clock.advance(timedelta(minutes=16))
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={"csrf_token": csrf_of(page), "outcome": "busy"},
    )
    assert response.status_code == 409 and "已超时" in response.text
    assert row(database, callback_id).attempt_count == 0


# --- the supervisor's board -----------------------------------------------------------


def test_the_board_shows_the_queue_the_leases_and_what_is_overdue(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    queue_install(client, users)
    late = client.post(
        "/api/v1/events",
        json=event(occurred_at=IN_WINDOW - timedelta(hours=30), name="李雷"),
        headers=users.system,
    ).json()["id"]
    client.post("/api/v1/callbacks/claim", headers=users.headers("agent2"))
    sign_in(client, users, "sup1", UserRole.SUPERVISOR)
    page = client.get("/console/board").text
    assert "各类未完成回访" in page and "已超时" in page
    assert f"#{late}" in page and "agent2" in page  # who holds which lease
    panels = client.get("/console/board/panels", headers={"HX-Request": "true"})
    assert panels.status_code == 200 and "<html" not in panels.text


def test_a_supervisor_reassigns_a_callback_to_an_agent(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    users.make("agent2", UserRole.AGENT)
    sign_in(client, users, "sup1", UserRole.SUPERVISOR)
    response = post_form(
        client,
        "/console/board",
        "/console/board/reassign",
        {"callback_id": str(callback_id), "agent": "agent2"},
    )
    assert response.status_code == 303
    assert row(database, callback_id).assigned_agent_id == users.user("agent2").id
    with database.uow() as uow:
        kinds = list(uow.session.execute(sa.select(CallbackEvent.kind)).scalars())  # type: ignore[call-overload]
    assert CallbackEventKind.REASSIGNED in kinds
    assert "已改派给 agent2" in client.get(response.headers["location"]).text


def test_a_supervisor_releases_a_lease_and_the_agent_can_no_longer_record(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    claimed = client.post("/api/v1/callbacks/claim", headers=users.headers("agent2"))
    assert claimed.status_code == 200
    sign_in(client, users, "sup1", UserRole.SUPERVISOR)
    response = post_form(client, "/console/board", f"/console/board/{callback_id}/release")
    assert response.status_code == 303
    assert row(database, callback_id).status == CallbackStatus.PENDING
    late = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "busy"},
        headers=users.headers("agent2"),
    )
    assert late.status_code == 409


def test_a_manager_reads_the_board_but_may_not_act_on_it(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    users.make("agent2", UserRole.AGENT)
    sign_in(client, users, "boss", UserRole.MANAGER)
    page = client.get("/console/board")
    assert page.status_code == 200 and "/reassign" not in page.text
    response = client.post(
        "/console/board/reassign",
        data={"csrf_token": csrf_of(page.text), "callback_id": str(callback_id), "agent": "agent2"},
    )
    assert response.status_code == 403
    assert row(database, callback_id).assigned_agent_id is None


def test_a_personal_callback_not_taken_in_time_moves_and_the_supervisor_sees_it(
    client: TestClient, users: Users, database: Database, clock: FixedClock
) -> None:
    from callcenter.config import RulesConfig
    from callcenter.sla.service import watch

    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    chosen = re.findall(r'<option value="(\d{4}-[^"]+)"', page)[0]
    client.post(
        f"/console/desk/{callback_id}/attempt",
        data={"csrf_token": csrf_of(page), "outcome": "call_back_later", "call_back_at": chosen},
    )
    due = datetime.fromisoformat(chosen)
    clock.set(due)
    mine = client.get("/console/desk/mine", headers={"HX-Request": "true"}).text
    assert "已到时间" in mine  # the alert when it is due
    clock.set(due + timedelta(minutes=31))  # rule: 30 minutes' grace by default
    watch(database.uow, now=clock.now(), config=RulesConfig())
    assert row(database, callback_id).assigned_agent_id is None
    sign_in(client, users, "sup1", UserRole.SUPERVISOR)
    board = client.get("/console/board").text
    moved = board[board.index("转入公共队列") :]
    assert f"#{callback_id}" in moved and "坐席未按时处理" in moved


def test_reassign_and_release_through_the_api(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    users.make("agent2", UserRole.AGENT)
    sup = users.headers("sup1", UserRole.SUPERVISOR)
    refused = client.post(
        f"/api/v1/callbacks/{callback_id}/reassign",
        json={"agent": "agent2"},
        headers=users.headers("agent1"),
    )
    assert refused.status_code == 403
    unknown = client.post(
        f"/api/v1/callbacks/{callback_id}/reassign", json={"agent": "nobody"}, headers=sup
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "agent"
    done = client.post(
        f"/api/v1/callbacks/{callback_id}/reassign", json={"agent": "agent2"}, headers=sup
    )
    assert done.status_code == 200 and done.json()["assigned_to"] == "agent2"
    assert client.post(f"/api/v1/callbacks/{callback_id}/release", headers=sup).status_code == 409
    claimed = client.post("/api/v1/callbacks/claim", headers=users.headers("agent2"))
    assert claimed.json()["callback"]["id"] == callback_id
    released = client.post(f"/api/v1/callbacks/{callback_id}/release", headers=sup)
    assert released.status_code == 200 and released.json()["status"] == "pending"


def test_a_supervisor_records_a_work_order_handed_over_once(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users)
    sign_in(client, users, "agent1", UserRole.AGENT)
    page = take(client)
    client.post(
        f"/console/desk/{callback_id}/follow-up",
        data={"csrf_token": csrf_of(page), "subject": "宽带测速慢"},
    )
    with database.uow() as uow:
        order_id = uow.session.execute(sa.select(WorkOrder.id)).scalar_one()  # type: ignore[call-overload]
    agent_try = client.post(
        f"/api/v1/workorders/{order_id}/hand-over", headers=users.headers("agent1")
    )
    assert agent_try.status_code == 403
    sign_in(client, users, "sup1", UserRole.SUPERVISOR)
    response = post_form(
        client, "/console/board", f"/console/board/workorders/{order_id}/hand-over"
    )
    assert response.status_code == 303
    assert "已记为转交" in client.get(response.headers["location"]).text
    with database.uow() as uow:
        order = uow.session.get_one(WorkOrder, order_id)
    assert order.status == "handed_over" and order.handed_over_at == IN_WINDOW  # KPI-3
    again = client.post(
        f"/api/v1/workorders/{order_id}/hand-over",
        json={"team": "装维班"},
        headers=users.headers("sup1", UserRole.SUPERVISOR),
    )
    assert again.status_code == 409
