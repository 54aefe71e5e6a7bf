"""The console in a real headless Chromium: an agent's call from sign-in to saved, a
supervisor's reassignment, a refused page, and screenshots of each page in both languages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from callcenter.callbacks.models import Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.questionnaires.models import Answer
from callcenter.users.models import UserRole
from tests.browser.conftest import LiveServer, english_left, screenshot
from tests.conftest import IN_WINDOW
from tests.console.helpers import PASSWORD
from tests.factories import event

pytestmark = pytest.mark.xdist_group("browser")


def queue(live: LiveServer, name: str = "王芳", hours_ago: float = 3, **kwargs: Any) -> int:
    response = httpx.post(
        f"{live.url}/api/v1/events",
        json=event(occurred_at=IN_WINDOW - timedelta(hours=hours_ago), name=name, **kwargs),
        headers=live.users.system,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def sign_in(page: Page, live: LiveServer, username: str, role: UserRole) -> None:
    live.users.make(username, role)
    page.goto(f"{live.url}/console/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出")).to_be_visible()


def status_of(live: LiveServer, callback_id: int) -> CallbackStatus:
    with live.database.uow() as uow:
        return uow.session.get_one(Callback, callback_id).status


def test_an_agent_takes_a_callback_fills_the_script_and_saves_it(
    live: LiveServer, new_page: Any
) -> None:
    callback_id = queue(live)
    page = new_page()
    sign_in(page, live, "agent1", UserRole.AGENT)
    expect(page).to_have_url(f"{live.url}/console/desk")
    screenshot(page, "zh_CN", "desk-empty")
    assert english_left(page) == []

    # The button has the focus: the keyboard alone takes the next callback.
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="新装客户回访")).to_be_visible()
    expect(page.locator(".customer .phone")).to_contain_text("+86")
    screenshot(page, "zh_CN", "desk-call")
    assert english_left(page, data=("agent1",)) == []

    problem = page.locator("#q-working_problem")
    expect(problem).to_be_hidden()  # conditional: only when it is not working
    page.locator("#q-working").get_by_label("否").check()
    expect(problem).to_be_visible()
    problem.locator("textarea").fill("宽带时断时续")
    page.locator("#q-appointment_kept").get_by_label("是").check()
    page.locator("#q-overall").get_by_label("5", exact=True).check()
    page.get_by_role("button", name="保存").click()  # conduct_standard left unanswered

    error = page.locator("#err-conduct_standard")
    expect(error).to_be_visible()
    expect(error).to_contain_text("必答题")
    assert status_of(live, callback_id) == CallbackStatus.CLAIMED
    # What was typed stays, the conditional question too.
    expect(problem.locator("textarea")).to_have_value("宽带时断时续")
    screenshot(page, "zh_CN", "desk-error")
    assert english_left(page, data=("agent1",)) == []

    page.locator("#q-conduct_standard").get_by_label("是").check()
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("status")).to_contain_text("已保存")
    assert status_of(live, callback_id) == CallbackStatus.COMPLETED
    with live.database.uow() as uow:
        answers = dict(uow.session.execute(sa.select(Answer.question_id, Answer.value)).all())  # type: ignore[call-overload]
    assert answers["working"] is False and answers["working_problem"] == "宽带时断时续"
    # The next callback is one click (or one key) away.
    expect(page.get_by_role("button", name="取下一个回访")).to_be_focused()


def test_the_desk_works_with_the_keyboard_alone(live: LiveServer, new_page: Any) -> None:
    callback_id = queue(live)
    page = new_page()
    sign_in(page, live, "agent1", UserRole.AGENT)
    page.keyboard.press("Alt+n")  # take next
    expect(page.get_by_role("heading", name="新装客户回访")).to_be_visible()
    # Tab to the first answer and choose with the keyboard, then save with Alt+S.
    first = page.locator("#q-working input").first
    first.focus()
    page.keyboard.press("Space")
    for question in ("appointment_kept", "conduct_standard"):
        page.locator(f"#q-{question} input").first.focus()
        page.keyboard.press("Space")
    page.locator("#q-overall input").last.focus()
    page.keyboard.press("Space")
    page.keyboard.press("Alt+s")
    expect(page.get_by_role("status")).to_contain_text("已保存")
    assert status_of(live, callback_id) == CallbackStatus.COMPLETED


def test_a_supervisor_reassigns_a_callback(live: LiveServer, new_page: Any) -> None:
    callback_id = queue(live, name="李雷", hours_ago=22)  # at risk
    live.users.make("agent2", UserRole.AGENT)
    page = new_page()
    sign_in(page, live, "sup1", UserRole.SUPERVISOR)
    expect(page).to_have_url(f"{live.url}/console/board")
    screenshot(page, "zh_CN", "board")
    assert english_left(page) == []
    # The row's button fills the form with its callback; the supervisor picks the agent.
    page.locator(f'button.pick[data-callback="{callback_id}"]').click()
    expect(page.get_by_label("回访编号")).to_have_value(str(callback_id))
    page.get_by_label("改派给坐席").select_option("agent2")
    page.locator("form.reassign").get_by_role("button", name="改派").click()
    expect(page.get_by_role("status")).to_contain_text("已改派给 agent2")
    with live.database.uow() as uow:
        assigned = uow.session.get_one(Callback, callback_id).assigned_agent_id
    assert assigned == live.users.user("agent2").id


def test_an_agent_is_refused_a_supervisor_page(live: LiveServer, new_page: Any) -> None:
    page = new_page()
    sign_in(page, live, "agent1", UserRole.AGENT)
    response = page.goto(f"{live.url}/console/board")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="无权访问")).to_be_visible()
    screenshot(page, "zh_CN", "forbidden")
    assert english_left(page) == []


def test_every_page_in_english(live: LiveServer, new_page: Any) -> None:
    queue(live)
    queue(live, name="李雷", hours_ago=22)
    page = new_page()
    page.goto(f"{live.url}/console/login")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "en", "login")
    live.users.make("agent1", UserRole.AGENT)
    page.get_by_label("Username").fill("agent1")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    screenshot(page, "en", "desk-empty")
    page.get_by_role("button", name="Take the next callback").click()
    expect(
        page.get_by_role("heading", name="Complaint callback").or_(
            page.get_by_role("heading", name="New installation callback")
        )
    ).to_be_visible()
    screenshot(page, "en", "desk-call")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".question.invalid").first).to_be_visible()
    screenshot(page, "en", "desk-error")
    page.goto(f"{live.url}/console/board")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(page, "en", "forbidden")

    supervisor = new_page()
    supervisor.goto(f"{live.url}/console/login")
    supervisor.get_by_role("button", name="English").click()
    live.users.make("sup1", UserRole.SUPERVISOR)
    supervisor.get_by_label("Username").fill("sup1")
    supervisor.get_by_label("Password").fill(PASSWORD)
    supervisor.get_by_role("button", name="Sign in").click()
    expect(supervisor.get_by_role("heading", name="Supervisor's board")).to_be_visible()
    screenshot(supervisor, "en", "board")


def test_the_sign_in_page_in_chinese(live: LiveServer, new_page: Any) -> None:
    page = new_page()
    page.goto(f"{live.url}/console/login")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    screenshot(page, "zh_CN", "login")
    assert english_left(page) == []
