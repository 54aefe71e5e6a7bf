"""The script on a call, answers (validated, never replaced), corrections, frozen versions and
follow-up work orders (rules SV-1, SV-2, SV-4, SV-5; Q-INSTALL)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from callcenter.clock import FixedClock
from callcenter.config import CallbackType
from callcenter.db import Database
from callcenter.questionnaires.loader import load_scripts, shipped_scripts_dir
from callcenter.questionnaires.service import sync_scripts
from callcenter.users.models import UserRole
from tests.conftest import IN_WINDOW, Users
from tests.factories import INSTALL_ANSWERS, event, hours

COMPLETE = INSTALL_ANSWERS


def claimed_install(
    client: TestClient, users: Users, agent: str = "agent1", **customer: Any
) -> int:
    payload = event(occurred_at=IN_WINDOW - hours(1), **customer)
    created = client.post("/api/v1/events", json=payload, headers=users.system)
    assert created.status_code == 201, created.text
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers(agent))
    assert claim.status_code == 200, claim.text
    return int(claim.json()["callback"]["id"])


def answer(
    client: TestClient,
    users: Users,
    callback_id: int,
    answers: dict[str, Any],
    agent: str = "agent1",
) -> Any:
    return client.post(
        f"/api/v1/callbacks/{callback_id}/answers",
        json={"answers": answers},
        headers=users.headers(agent),
    )


def test_the_script_is_filled_in_for_the_agent_and_customer(
    client: TestClient, users: Users
) -> None:
    callback_id = claimed_install(client, users, name="王芳")
    response = client.get(
        f"/api/v1/callbacks/{callback_id}/script", headers=users.headers("agent1")
    )
    assert response.status_code == 200, response.text
    script = response.json()
    assert script["script_id"] == "install" and script["version"] == 1
    # rule SV-1: greeting, self-introduction with name and employee number, purpose.
    assert script["opening"][0].startswith("王芳")
    number = users.user("agent1").employee_number
    assert number and f"agent1，工号{number}" in script["opening"][1]
    assert not any("久等" in line for line in script["opening"])  # not late: no apology
    assert script["closing"][-1].startswith("再见")
    # rule SV-2: the forbidden phrases are on the help panel.
    assert any("神经病" in phrase for phrase in script["forbidden_phrases"])
    questions = {q["id"]: q for q in script["questions"]}
    assert questions["working"]["asked"] is True
    assert questions["working_problem"]["asked"] is False  # only when not working
    english = client.get(
        f"/api/v1/callbacks/{callback_id}/script",
        params={"lang": "en"},
        headers=users.headers("agent1"),
    ).json()
    assert english["opening"][0].startswith("Hello, 王芳")
    assert number in english["opening"][1]


def test_the_customer_title_and_a_late_call(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    payload = event(occurred_at=IN_WINDOW - hours(30), name="李秀英")
    payload["customer"]["title"] = "ms"
    assert client.post("/api/v1/events", json=payload, headers=users.system).status_code == 201
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers("agent1")).json()
    script = client.get(
        f"/api/v1/callbacks/{claim['callback']['id']}/script", headers=users.headers("agent1")
    ).json()
    assert script["opening"][0].startswith("李女士")
    assert any("久等" in line for line in script["opening"])  # past its target: apologise


def test_only_the_holder_gets_the_script(client: TestClient, users: Users) -> None:
    callback_id = claimed_install(client, users)
    other = client.get(f"/api/v1/callbacks/{callback_id}/script", headers=users.headers("agent2"))
    assert other.status_code == 409


def test_answers_are_validated_naming_the_question(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = claimed_install(client, users)
    bad = answer(client, users, callback_id, {"overall": 7, "working": "yes"})
    assert bad.status_code == 422
    fields = {d["field"]: d for d in bad.json()["detail"]}
    assert set(fields) == {"answers.overall", "answers.working"}
    assert fields["answers.overall"]["question_id"] == "overall"
    assert fields["answers.overall"]["msg_en"] and fields["answers.overall"]["msg_zh"]
    not_asked = answer(client, users, callback_id, {"working": True, "working_problem": "没网"})
    assert not_asked.status_code == 422
    assert not_asked.json()["detail"][0]["field"] == "answers.working_problem"
    unknown = answer(client, users, callback_id, {"colour": "blue"})
    assert unknown.status_code == 422
    listed = client.get(f"/api/v1/callbacks/{callback_id}/answers", headers=users.headers("a1"))
    assert listed.json() == []  # nothing half-written


def test_an_answer_once_recorded_is_never_replaced(client: TestClient, users: Users) -> None:
    callback_id = claimed_install(client, users)
    first = answer(client, users, callback_id, {"working": False})
    assert first.status_code == 201, first.text
    again = answer(client, users, callback_id, {"working": True})
    assert again.status_code == 409
    assert "correction" in again.json()["detail"]
    # The conditional question now applies, and takes an answer.
    follow = answer(client, users, callback_id, {"working_problem": "宽带时断时续"})
    assert follow.status_code == 201


def test_a_callback_cannot_be_closed_half_asked(client: TestClient, users: Users) -> None:
    callback_id = claimed_install(client, users)
    answer(client, users, callback_id, {"working": True, "overall": 2})
    closing = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "answered"},
        headers=users.headers("agent1"),
    )
    assert closing.status_code == 422
    missing = {d["question_id"] for d in closing.json()["detail"]}
    assert missing == {"appointment_kept", "conduct_standard"}
    rest = answer(client, users, callback_id, {"appointment_kept": True, "conduct_standard": True})
    assert rest.status_code == 201
    done = client.post(
        f"/api/v1/callbacks/{callback_id}/attempts",
        json={"outcome": "answered"},
        headers=users.headers("agent1"),
    )
    assert done.status_code == 201, done.text
    assert done.json()["callbacks"][0]["status"] == "completed"


def test_corrections_keep_both_answers_with_who_and_why(client: TestClient, users: Users) -> None:
    callback_id = claimed_install(client, users)
    recorded = answer(client, users, callback_id, COMPLETE).json()
    overall = next(a for a in recorded if a["question_id"] == "overall")
    wrong_person = client.post(
        f"/api/v1/answers/{overall['id']}/corrections",
        json={"value": 4, "reason": "客户改口"},
        headers=users.headers("agent2"),
    )
    assert wrong_person.status_code == 403
    invalid = client.post(
        f"/api/v1/answers/{overall['id']}/corrections",
        json={"value": 9, "reason": "客户改口"},
        headers=users.headers("agent1"),
    )
    assert invalid.status_code == 422
    no_reason = client.post(
        f"/api/v1/answers/{overall['id']}/corrections",
        json={"value": 4},
        headers=users.headers("agent1"),
    )
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["field"] == "reason"
    corrected = client.post(
        f"/api/v1/answers/{overall['id']}/corrections",
        json={"value": 4, "reason": "客户说按错了，应为4分"},
        headers=users.headers("sup", UserRole.SUPERVISOR),
    )
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["corrects_id"] == overall["id"]
    assert corrected.json()["recorded_by"] == "sup"
    twice = client.post(
        f"/api/v1/answers/{overall['id']}/corrections",
        json={"value": 3, "reason": "again"},
        headers=users.headers("agent1"),
    )
    assert twice.status_code == 409
    history = client.get(f"/api/v1/callbacks/{callback_id}/answers", headers=users.headers("a"))
    rows = [a for a in history.json() if a["question_id"] == "overall"]
    assert [(a["value"], a["corrected_by_id"]) for a in rows] == [
        (5, corrected.json()["id"]),
        (4, None),
    ]


def test_a_callback_keeps_the_script_version_it_was_created_with(
    client: TestClient, users: Users, database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    old = claimed_install(client, users, customer_id="C-old")
    # Someone edits the install script: the first question changes its words.
    edited = tmp_path / "scripts"
    shutil.copytree(shipped_scripts_dir(), edited)
    install = edited / "install.yaml"
    install.write_text(
        install.read_text(encoding="utf-8").replace(
            "请问您的电话（宽带）已经装好了吗？", "请问您家的电话（宽带）装好了吗？"
        ),
        encoding="utf-8",
    )
    sync_scripts(database.uow(), scripts=load_scripts(edited), now=clock.now())
    new = claimed_install(client, users, agent="agent2", customer_id="C-new")
    old_script = client.get(f"/api/v1/callbacks/{old}/script", headers=users.headers("agent1"))
    new_script = client.get(f"/api/v1/callbacks/{new}/script", headers=users.headers("agent2"))
    assert old_script.json()["version"] == 1 and new_script.json()["version"] == 2
    assert "您的电话（宽带）已经装好了吗" in old_script.json()["questions"][0]["text"]
    assert "您家的电话（宽带）装好了吗" in new_script.json()["questions"][0]["text"]
    # Loading the same scripts again creates nothing.
    again = sync_scripts(database.uow(), scripts=load_scripts(edited), now=clock.now())
    assert len(again) == len(CallbackType)


def test_a_follow_up_work_order_is_due_within_15_minutes(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # rule SV-5
    callback_id = claimed_install(client, users)
    raised = client.post(
        f"/api/v1/callbacks/{callback_id}/workorders",
        json={"subject": "宽带晚上经常掉线", "details": "客户要求派人检测线路", "team": "维护部"},
        headers=users.headers("agent1"),
    )
    assert raised.status_code == 201, raised.text
    order = raised.json()
    assert order["kind"] == "follow_up" and order["status"] == "open"
    assert datetime.fromisoformat(order["due_at"]) == clock.now() + timedelta(minutes=15)
    assert order["created_by"] == "agent1"
    supervisor = users.headers("sup", UserRole.SUPERVISOR)
    listed = client.get("/api/v1/workorders", headers=supervisor).json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]
    assert client.get("/api/v1/workorders", headers=users.headers("agent1")).status_code == 403
    clock.advance(timedelta(minutes=16))
    late = client.get("/api/v1/workorders", params={"overdue": "true"}, headers=supervisor)
    assert [o["id"] for o in late.json()["items"]] == [order["id"]]
    not_holder = client.post(
        f"/api/v1/callbacks/{callback_id}/workorders",
        json={"subject": "x" * 3},
        headers=users.headers("agent2"),
    )
    assert not_holder.status_code == 409
