"""The retention pages over HTTP (rules CB-4, CB-6, RT-1..RT-4, SV-4): each level's queue for
its role and above, the churn call's level 1 on the desk, a case with the history of every
earlier level, offers bounded by level, and levels 2 and 3 recorded from the case's page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from callcenter.callbacks.models import Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.clock import FixedClock
from callcenter.config import CallbackType
from callcenter.db import Database
from callcenter.questionnaires.models import Answer
from callcenter.retention.models import RetentionCase, RetentionStep
from callcenter.retention.rules import CaseState, StepOutcome
from callcenter.users.models import UserRole
from tests.conftest import IN_WINDOW, Users
from tests.console.helpers import csrf_of, post_form, sign_in
from tests.factories import event, hours

AGENT = ("agent1", UserRole.AGENT)
SUPERVISOR = ("sup1", UserRole.SUPERVISOR)
LEAD = ("lead1", UserRole.RETENTION_LEAD)
MANAGER = ("manager1", UserRole.MANAGER)
# rule Q-CHURN: the churn script answered for a customer who still leaves
CHURN_FORM = {"q.reason": "price", "q.retained": "false", "q.reinstall": "not_now"}
CHURN_ANSWERS: dict[str, Any] = {"reason": "price", "retained": False, "reinstall": "not_now"}


def cancel(client: TestClient, users: Users, now: datetime = IN_WINDOW) -> int:
    """A cancellation half an hour before `now`: its churn callback opens a retention case at
    level 1, due at once (rule CB-4)."""
    payload = event("cancellation", occurred_at=now - timedelta(minutes=30))
    response = client.post("/api/v1/events", json=payload, headers=users.system)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def case_of(database: Database, callback_id: int) -> RetentionCase:
    """The case the churn callback opened."""
    with database.uow() as uow:
        return uow.session.execute(
            sa.select(RetentionCase).where(RetentionCase.callback_id == callback_id)  # type: ignore[arg-type]
        ).scalar_one()


def case_row(database: Database, case_id: int) -> RetentionCase:
    with database.uow() as uow:
        return uow.session.get_one(RetentionCase, case_id)


def steps_of(database: Database, case_id: int) -> list[RetentionStep]:
    with database.uow() as uow:
        return list(
            uow.session.execute(
                sa.select(RetentionStep)
                .where(RetentionStep.case_id == case_id)  # type: ignore[arg-type]
                .order_by(RetentionStep.level)  # type: ignore[arg-type]
            ).scalars()
        )


def api_step(
    client: TestClient, users: Users, case_id: int, who: tuple[str, UserRole], **body: Any
) -> None:
    response = client.post(
        f"/api/v1/retention/cases/{case_id}/steps", json=body, headers=users.headers(*who)
    )
    assert response.status_code == 201, response.text


def at_level(level: int, client: TestClient, users: Users, clock: FixedClock) -> int:
    """A case walked up to `level` through the API, each level with a reason, an offer the
    customer declined and their answer: its id."""
    callback_id = cancel(client, users, clock.now())
    claim = client.post("/api/v1/callbacks/claim", headers=users.headers(*AGENT))
    assert claim.status_code == 200 and claim.json()["callback"]["id"] == callback_id
    answered = client.post(
        f"/api/v1/callbacks/{callback_id}/answers",
        json={"answers": CHURN_ANSWERS},
        headers=users.headers(*AGENT),
    )
    assert answered.status_code == 201, answered.text
    found = client.get(
        "/api/v1/retention/cases", params={"callback_id": callback_id}, headers=users.headers(*LEAD)
    )
    (case,) = found.json()["items"]
    case_id = int(case["id"])
    if level >= 2:
        api_step(
            client,
            users,
            case_id,
            AGENT,
            level=1,
            outcome="escalated",
            reason_code="price",
            reason_text="月租太贵了",
            offer_code="discount_10_6m",
            offer_accepted=False,
            customer_answer="九折还是太贵。",
        )
        clock.advance(hours(1))
    if level >= 3:
        api_step(
            client,
            users,
            case_id,
            SUPERVISOR,
            level=2,
            outcome="escalated",
            reason_code="competitor_offer",
            offer_code="free_month_1",
            offer_accepted=False,
            customer_answer="别家送半年。",
        )
        clock.advance(hours(1))
    return case_id


def take(client: TestClient) -> str:
    response = post_form(client, "/console/desk", "/console/desk/claim")
    assert response.status_code == 303
    return client.get(response.headers["location"]).text


def option(html: str, code: str) -> str:
    start = html.index(f'<option value="{code}"')
    return html[start : html.index(">", start) + 1]


# -- the queues -----------------------------------------------------------------------------


def test_each_level_queue_is_for_its_role_and_above(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    # "Each level has its own queue in the console, visible only to that role and above."
    case_id = at_level(2, client, users, clock)
    sign_in(client, users, *AGENT)
    home = client.get("/console/retention", follow_redirects=False)
    assert home.headers["location"] == "/console/retention/level/1"
    assert client.get("/console/retention/level/1").status_code == 200
    refused = client.get("/console/retention/level/2")
    assert refused.status_code == 403 and "无权访问" in refused.text  # rule RT-2
    assert client.get(f"/console/retention/cases/{case_id}").status_code == 403
    assert 'href="/console/retention"' in client.get("/console/desk").text  # the nav link

    sign_in(client, users, *SUPERVISOR)
    assert client.get("/console/retention", follow_redirects=False).headers["location"] == (
        "/console/retention/level/2"
    )
    queue = client.get("/console/retention/level/2")
    assert queue.status_code == 200
    assert f'data-case="{case_id}"' in queue.text and "第2级挽留队列" in queue.text
    assert "资费偏高" in queue.text  # the latest reason, in the page's language
    assert 'class="countdown' in queue.text  # due in 24 hours: a countdown (rule RT-2)
    assert client.get("/console/retention/level/3").status_code == 403  # rule RT-3

    sign_in(client, users, *LEAD)
    assert client.get("/console/retention/level/3").status_code == 200
    assert f'data-case="{case_id}"' in client.get("/console/retention/level/2").text
    assert client.get("/console/retention/level/4").status_code == 404


def test_the_queue_puts_the_overdue_first_in_red(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    first = at_level(2, client, users, clock)
    clock.advance(hours(23))  # the next morning: the first is 24 hours at level 2, due now
    second = at_level(2, client, users, clock)  # an hour later: the first is overdue
    sign_in(client, users, *SUPERVISOR)
    page = client.get("/console/retention/level/2").text
    assert page.index(f'data-case="{first}"') < page.index(f'data-case="{second}"')
    row = page[page.index(f'data-case="{first}"') :]
    assert row.index('class="countdown red"') < row.index("</tr>")
    later = page[page.index(f'data-case="{second}"') :]
    # an hour at level 2 of its 24: not at risk
    assert later[: later.index("</tr>")].count('class="countdown "') == 1


def test_a_manager_reads_every_queue_and_records_nothing(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    case_id = at_level(3, client, users, clock)
    sign_in(client, users, *MANAGER)
    for level in (1, 2, 3):
        assert client.get(f"/console/retention/level/{level}").status_code == 200
    page = client.get(f"/console/retention/cases/{case_id}").text
    assert "不记录挽留结果" in page and "/steps" not in page
    token = csrf_of(page)
    response = client.post(
        f"/console/retention/cases/{case_id}/steps",
        data={"csrf_token": token, "level": "3", "outcome": "retained", "reason_code": "price"},
    )
    assert response.status_code == 403 and "无权访问" in response.text
    assert case_row(database, case_id).state is CaseState.OPEN


# -- level 1: the churn call on the desk ----------------------------------------------------


def test_the_churn_call_on_the_desk_records_level_1_with_the_answers(
    client: TestClient, users: Users, database: Database
) -> None:
    # rules CB-6, RT-1: the agent learns the reason, offers what level 1 may, records it
    callback_id = cancel(client, users)
    sign_in(client, users, *AGENT)
    page = take(client)
    assert "拆机客户回访" in page and 'id="retention-step"' in page
    assert "disabled" not in option(page, "discount_10_6m")  # a level-1 offer
    assert "disabled" in option(page, "free_month_1")  # level 2's, shown but not offered
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "answered",
            **CHURN_FORM,
            "rt.level": "1",
            "rt.reason_code": "price",
            "rt.reason_text": "月租太贵了",
            "rt.offer_code": "discount_10_6m",
            "rt.offer_accepted": "false",
            "rt.customer_answer": "九折还是太贵。",
            "rt.outcome": "escalated",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("&retention=escalated")
    assert "第1级挽留：已升级" in client.get(response.headers["location"]).text
    case = case_of(database, callback_id)
    assert (case.state, case.level) == (CaseState.OPEN, 2)
    (step,) = steps_of(database, case.id)  # type: ignore[arg-type]
    assert (step.level, step.outcome, step.offer_code, step.offer_cost_yuan) == (
        1,
        StepOutcome.ESCALATED,
        "discount_10_6m",
        60,
    )
    assert step.reason_text == "月租太贵了" and step.attempt_id is not None
    with database.uow() as uow:
        assert uow.session.get_one(Callback, callback_id).status == CallbackStatus.COMPLETED


def test_a_level_2_offer_on_the_desk_is_refused_and_nothing_is_recorded(
    client: TestClient, users: Users, database: Database
) -> None:
    # rules RT-1, RT-2: refused by the service with a message naming the level it needs
    callback_id = cancel(client, users)
    sign_in(client, users, *AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "answered",
            **CHURN_FORM,
            "rt.level": "1",
            "rt.reason_code": "price",
            "rt.offer_code": "free_month_1",
            "rt.offer_accepted": "true",
            "rt.customer_answer": "送一个月就不拆了。",
            "rt.outcome": "retained",
        },
    )
    assert response.status_code == 403
    assert "挽留方案“赠送1个月”需要第2级（班长）或以上" in response.text
    assert "您的级别是第1级" in response.text
    assert "送一个月就不拆了。" in response.text  # the form is kept
    case = case_of(database, callback_id)
    assert (case.state, case.level) == (CaseState.OPEN, 1)
    assert steps_of(database, case.id) == []  # type: ignore[arg-type]
    with database.uow() as uow:
        assert uow.session.get_one(Callback, callback_id).status == CallbackStatus.CLAIMED
        assert uow.session.execute(sa.select(sa.func.count()).select_from(Answer)).scalar() == 0


def test_the_desk_names_each_missing_retention_field(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = cancel(client, users)
    sign_in(client, users, *AGENT)
    page = take(client)
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "answered",
            **CHURN_FORM,
            "rt.level": "1",
            "rt.reason_code": "other",  # rule RT-4: "other" needs the customer's words
            "rt.offer_code": "speed_up_6m",
            "rt.outcome": "escalated",
        },
    )
    assert response.status_code == 422
    for field in ("rt-reason_text", "rt-offer_accepted"):
        assert f'id="err-{field}"' in response.text
    assert "此原因需要记录客户原话" in response.text
    assert case_of(database, callback_id).level == 1


def test_a_churn_call_not_answered_records_no_step(
    client: TestClient, users: Users, database: Database
) -> None:
    # The retention part goes with an answered call only: the customer asks to be called at
    # 11:00, the form's retention fields are not recorded and the case waits at level 1.
    callback_id = cancel(client, users)
    sign_in(client, users, *AGENT)
    page = take(client)
    eleven = (IN_WINDOW + hours(1)).isoformat()
    assert f'value="{eleven}"' in page  # one of the picker's times
    response = client.post(
        f"/console/desk/{callback_id}/attempt",
        data={
            "csrf_token": csrf_of(page),
            "outcome": "call_back_later",
            "call_back_at": eleven,
            "rt.level": "1",
            "rt.reason_code": "price",
            "rt.outcome": "retained",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert "retention=" not in response.headers["location"]
    case = case_of(database, callback_id)
    assert (case.level, case.state, steps_of(database, case.id)) == (1, CaseState.OPEN, [])  # type: ignore[arg-type]


# -- a case's page --------------------------------------------------------------------------


def test_the_case_page_shows_every_earlier_level_the_script_and_the_offers(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    case_id = at_level(3, client, users, clock)
    sign_in(client, users, *LEAD)
    page = client.get(f"/console/retention/cases/{case_id}")
    assert page.status_code == 200
    html = page.text
    history = html[html.index('id="history-h"') : html.index('id="offers-h"')]
    # rule RT-4: each level's reason, offer, the customer's answer, outcome, who and when
    assert history.index('data-level="1"') < history.index('data-level="2"')
    for text in ("资费偏高", "月租太贵了", "月租九折，6个月", "九折还是太贵。", "agent1"):
        assert text in history
    for text in ("其他运营商优惠", "赠送1个月", "别家送半年。", "sup1", "已升级"):
        assert text in history
    assert "拆机回访话术的答复" in history  # level 1's questionnaire, as answered
    # the churn script (rule Q-CHURN), read for level 3 by the lead
    assert "第3级挽留话术" in html and "拆机客户回访" in html
    assert "请问您这次办理拆机，主要是出于什么原因呢？" in html
    assert users.user("lead1").employee_number in html  # the opening names the one calling
    # every offer of the catalogue is the lead's at level 3
    assert "需第" not in html[html.index('id="offers-h"') : html.index('id="record-h"')]
    assert 'name="win_back"' in html  # lost is allowed at the last level (RT-4)


def test_an_offer_above_the_level_is_refused_on_the_case_page(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    case_id = at_level(2, client, users, clock)
    sign_in(client, users, *SUPERVISOR)
    page = client.get(f"/console/retention/cases/{case_id}").text
    assert "disabled" in option(page, "free_months_3")  # shown with the level it needs
    assert "需第3级（挽留主管）" in page
    response = client.post(
        f"/console/retention/cases/{case_id}/steps",
        data={
            "csrf_token": csrf_of(page),
            "level": "2",
            "reason_code": "price",
            "offer_code": "free_months_3",
            "offer_accepted": "true",
            "customer_answer": "送三个月我就留下。",
            "outcome": "retained",
        },
    )
    # rules RT-2, RT-3: the service refuses it; the page says why and keeps the form
    assert response.status_code == 403
    assert "挽留方案“赠送3个月”需要第3级（挽留主管）或以上" in response.text
    assert "您的级别是第2级" in response.text and "未记录任何内容" in response.text
    assert "送三个月我就留下。" in response.text
    assert len(steps_of(database, case_id)) == 1  # level 1's only
    assert case_row(database, case_id).level == 2


def test_retained_at_level_2_from_the_case_page(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    case_id = at_level(2, client, users, clock)
    sign_in(client, users, *SUPERVISOR)
    page = client.get(f"/console/retention/cases/{case_id}").text
    response = client.post(
        f"/console/retention/cases/{case_id}/steps",
        data={
            "csrf_token": csrf_of(page),
            "level": "2",
            "reason_code": "network_quality",
            "offer_code": "speed_up_12m",
            "offer_accepted": "true",
            "customer_answer": "提速就不拆了。",
            "outcome": "retained",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == (
        f"/console/retention/level/2?saved={case_id}&outcome=retained"
    )
    queue = client.get(response.headers["location"]).text
    assert f"已保存：挽留单 {case_id}，已挽留。" in queue
    assert f'data-case="{case_id}"' not in queue  # no longer open
    case = case_row(database, case_id)
    assert (case.state, case.level, case.reason_code) == (
        CaseState.RETAINED,
        2,
        "network_quality",
    )
    level_2 = steps_of(database, case_id)[-1]
    assert (level_2.level, level_2.outcome, level_2.offer_accepted) == (
        2,
        StepOutcome.RETAINED,
        True,
    )
    assert level_2.recorded_by_id == users.user("sup1").id
    closed = client.get(f"/console/retention/cases/{case_id}").text
    assert "此挽留单已结案" in closed and 'name="outcome"' not in closed


def test_lost_at_level_3_with_a_win_back_day(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    case_id = at_level(3, client, users, clock)
    sign_in(client, users, *LEAD)
    page = client.get(f"/console/retention/cases/{case_id}").text
    lost: dict[str, str] = {
        "csrf_token": csrf_of(page),
        "level": "3",
        "reason_code": "moving_house",
        "offer_code": "discount_30_12m",
        "offer_accepted": "false",
        "customer_answer": "明年春天搬回来再装。",
        "outcome": "lost",
    }
    # rule RT-4: a lost customer is asked whether they might come back, and when
    missing = client.post(f"/console/retention/cases/{case_id}/steps", data=lost)
    assert missing.status_code == 422 and 'id="err-step-win_back"' in missing.text
    no_day = client.post(
        f"/console/retention/cases/{case_id}/steps", data={**lost, "win_back": "true"}
    )
    assert no_day.status_code == 422 and 'id="err-step-win_back_on"' in no_day.text
    assert "明年春天搬回来再装。" in no_day.text
    response = client.post(
        f"/console/retention/cases/{case_id}/steps",
        data={**lost, "win_back": "true", "win_back_on": "2027-03-01"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    case = case_row(database, case_id)
    assert (case.state, case.level) == (CaseState.LOST, 3)
    level_3 = steps_of(database, case_id)[-1]
    assert (level_3.outcome, level_3.win_back, level_3.win_back_on.isoformat()) == (  # type: ignore[union-attr]
        StepOutcome.LOST,
        True,
        "2027-03-01",
    )
    with database.uow() as uow:
        win_back = uow.session.get_one(Callback, case.win_back_callback_id)
    assert win_back.type is CallbackType.WIN_BACK
    shown = client.get(f"/console/retention/cases/{case_id}").text
    assert f"挽回回访 {win_back.id}" in shown and "是，2027-03-01 起" in shown


def test_level_1_is_not_recorded_from_the_case_page(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    case_id = at_level(1, client, users, clock)
    sign_in(client, users, *SUPERVISOR)
    page = client.get(f"/console/retention/cases/{case_id}").text
    assert "第1级挽留由领取该拆机回访的坐席在工作台上" in page and 'name="outcome"' not in page
    response = client.post(
        f"/console/retention/cases/{case_id}/steps",
        data={
            "csrf_token": csrf_of(page),
            "level": "1",
            "reason_code": "price",
            "outcome": "retained",
        },
    )
    assert response.status_code == 409
    assert steps_of(database, case_id) == []


def test_a_case_that_moved_on_is_refused_with_a_message(
    client: TestClient, users: Users, clock: FixedClock, database: Database
) -> None:
    case_id = at_level(2, client, users, clock)
    sign_in(client, users, *LEAD)
    page = client.get(f"/console/retention/cases/{case_id}").text
    # meanwhile a supervisor escalates it to level 3 through the API
    api_step(client, users, case_id, SUPERVISOR, level=2, outcome="escalated", reason_code="price")
    response = client.post(
        f"/console/retention/cases/{case_id}/steps",
        data={
            "csrf_token": csrf_of(page),
            "level": "2",
            "reason_code": "price",
            "outcome": "retained",
        },
    )
    assert response.status_code == 409
    assert "挽留流程现在不允许这一步" in response.text
    assert [s.level for s in steps_of(database, case_id)] == [1, 2]


def test_the_pages_in_english(client: TestClient, users: Users, clock: FixedClock) -> None:
    case_id = at_level(2, client, users, clock)
    sign_in(client, users, *SUPERVISOR)
    client.cookies.set("cc_lang", "en")
    queue = client.get("/console/retention/level/2").text
    assert "Retention queue, level 2" in queue and "Price" in queue
    page = client.get(f"/console/retention/cases/{case_id}").text
    assert "What each level recorded" in page and "10% off the monthly fee for 6 months" in page
    assert "Cancellation callback" in page  # the script in English
    assert "Needs level 3 (retention lead)" in page
