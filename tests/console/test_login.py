"""Signing in to the console: sessions, CSRF, lock-out, roles (issue: the web console)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.callbacks.models import Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.clock import FixedClock
from callcenter.config import Environment, Settings
from callcenter.db import Database
from callcenter.users.models import UserRole, WebSession
from tests.conftest import IN_WINDOW, Users
from tests.console.helpers import PASSWORD, csrf_of, post_form, sign_in
from tests.factories import event


def attempt_login(client: TestClient, username: str, password: str) -> int:
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    return response.status_code


def test_a_page_without_a_session_sends_the_browser_to_sign_in(client: TestClient) -> None:
    response = client.get("/console/desk", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/desk"


def test_signing_in_sets_an_httponly_samesite_session_cookie(
    client: TestClient, users: Users
) -> None:
    response = sign_in(client, users, "agent1", UserRole.AGENT)
    assert response.headers["location"] == "/console/desk"
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("cc_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # development runs on plain http
    page = client.get("/console/desk")
    assert page.status_code == 200 and "agent1" in page.text


def test_cookies_are_secure_in_production(
    database: Database, clock: FixedClock, users: Users
) -> None:
    settings = Settings(
        database_url=database.url, scheduler_enabled=False, environment=Environment.PRODUCTION
    )
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app, base_url="https://testserver") as client:
        response = sign_in(client, users, "agent1", UserRole.AGENT)
        cookie = response.headers["set-cookie"]
        assert "cc_session=" in cookie and "Secure" in cookie


def test_the_password_is_checked_and_the_message_does_not_say_which_part_was_wrong(
    client: TestClient, users: Users
) -> None:
    users.make("agent1", UserRole.AGENT)
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": "agent1", "password": "wrong one", "csrf_token": csrf_of(form.text)},
    )
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text
    nobody = client.post(
        "/console/login",
        data={"username": "nobody", "password": "x", "csrf_token": csrf_of(form.text)},
    )
    assert nobody.status_code == 401 and "用户名或密码错误" in nobody.text


def test_repeated_wrong_passwords_lock_the_account_for_a_while(
    client: TestClient, users: Users, clock: FixedClock
) -> None:
    users.make("agent1", UserRole.AGENT)
    codes = [attempt_login(client, "agent1", "wrong one") for _ in range(5)]
    assert codes == [401, 401, 401, 401, 423]
    # Locked: even the right password is refused until the lock-out ends.
    assert attempt_login(client, "agent1", PASSWORD) == 423
    clock.advance(timedelta(minutes=16))
    assert attempt_login(client, "agent1", PASSWORD) == 303


def test_a_correct_password_resets_the_count_of_failures(client: TestClient, users: Users) -> None:
    users.make("agent1", UserRole.AGENT)
    for _ in range(4):
        assert attempt_login(client, "agent1", "wrong one") == 401
    assert attempt_login(client, "agent1", PASSWORD) == 303
    assert [attempt_login(client, "agent1", "wrong one") for _ in range(4)] == [401] * 4


def test_the_sign_in_form_needs_its_csrf_token(client: TestClient, users: Users) -> None:
    users.make("agent1", UserRole.AGENT)
    client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": "agent1", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "cc_session" not in response.headers.get("set-cookie", "")


def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    client: TestClient, users: Users, database: Database
) -> None:
    client.post("/api/v1/events", json=event(occurred_at=IN_WINDOW), headers=users.system)
    sign_in(client, users, "agent1", UserRole.AGENT)
    response = client.post("/console/desk/claim", data={"csrf_token": "forged"})
    assert response.status_code == 403
    with database.engine.connect() as connection:
        status = connection.execute(sa.select(Callback.status)).scalar_one()  # type: ignore[call-overload]
    assert status == CallbackStatus.PENDING


def test_an_agent_opening_a_supervisor_page_gets_403_with_a_page_that_says_so(
    client: TestClient, users: Users
) -> None:
    sign_in(client, users, "agent1", UserRole.AGENT)
    response = client.get("/console/board")
    assert response.status_code == 403
    assert "无权打开此页面" in response.text and "坐席" in response.text


def test_each_role_lands_on_its_own_page(client: TestClient, users: Users) -> None:
    assert sign_in(client, users, "sup1", UserRole.SUPERVISOR).headers["location"] == (
        "/console/board"
    )
    assert client.get("/console/board").status_code == 200


def test_the_system_role_cannot_sign_in_to_the_console(client: TestClient, users: Users) -> None:
    users.make("ordersys", UserRole.SYSTEM)
    assert attempt_login(client, "ordersys", PASSWORD) == 401


def test_signing_out_ends_the_session_for_good(
    client: TestClient, users: Users, database: Database
) -> None:
    sign_in(client, users, "agent1", UserRole.AGENT)
    stolen = client.cookies.get("cc_session")
    assert post_form(client, "/console/desk", "/console/logout").status_code == 303
    client.cookies.set("cc_session", stolen or "")
    response = client.get("/console/desk", follow_redirects=False)
    assert response.status_code == 303 and "/console/login" in response.headers["location"]
    with database.engine.connect() as connection:
        ended = connection.execute(sa.select(WebSession.ended_at)).scalar_one()  # type: ignore[call-overload]
    assert ended is not None


def test_an_idle_session_ends(client: TestClient, users: Users, clock: FixedClock) -> None:
    sign_in(client, users, "agent1", UserRole.AGENT)
    clock.advance(timedelta(hours=2, minutes=1))
    assert client.get("/console/desk", follow_redirects=False).status_code == 303


def test_after_signing_in_the_browser_returns_to_the_page_it_asked_for(
    client: TestClient, users: Users
) -> None:
    users.make("sup1", UserRole.SUPERVISOR)
    form = client.get("/console/login?next=/console/board")
    response = client.post(
        "/console/login",
        data={
            "username": "sup1",
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/board"  # never another site


def test_the_language_switch_sets_english_and_back(client: TestClient, users: Users) -> None:
    sign_in(client, users, "agent1", UserRole.AGENT)
    assert "取下一个回访" in client.get("/console/desk").text
    post_form(client, "/console/desk", "/console/lang", {"lang": "en", "back": "/console/desk"})
    page = client.get("/console/desk").text
    assert "Take the next callback" in page and 'lang="en"' in page
    post_form(client, "/console/desk", "/console/lang", {"lang": "zh_CN", "back": "/console/desk"})
    assert "取下一个回访" in client.get("/console/desk").text
