"""The audit trail in the console (rule SV-4): the desk's view of a full phone number is
recorded with the agent's address; managers and admins search the trail on its page; the
other roles may not open it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.api.test_audit import ADDRESS, added, mark
from tests.conftest import Users
from tests.console.helpers import post_form, sign_in
from tests.console.test_desk import queue_install, take


def test_the_desk_records_each_view_of_the_full_phone_once(
    client: TestClient, users: Users, database: Database
) -> None:
    callback_id = queue_install(client, users, customer_id="C-DESK", phone="13812345678")
    sign_in(client, users, "agent1", UserRole.AGENT)
    before = mark(database)
    assert "13812345678" not in client.get("/console/desk").text  # nothing held: no view
    assert added(database, before) == []
    page = take(client)  # the claim, then the desk that shows the number
    assert "+8613812345678" in page
    (row,) = added(database, before)  # the claim itself is not counted twice
    assert (row["action"], row["subject_type"], row["subject_id"]) == (
        "phone_viewed",
        "customer",
        "C-DESK",
    )
    assert (row["actor_username"], row["address"]) == ("agent1", ADDRESS)
    assert row["detail"]["via"] == "desk" and row["detail"]["callbacks"] == [callback_id]
    client.get("/console/desk")  # shown again: seen again
    assert [r["action"] for r in added(database, before)] == ["phone_viewed", "phone_viewed"]
    # The outcome recorded from the desk is audited with the same address.
    before = mark(database)
    saved = post_form(
        client, "/console/desk", f"/console/desk/{callback_id}/attempt", {"outcome": "busy"}
    )
    assert saved.status_code == 303, saved.text
    rows = added(database, before)
    # The form page fetched for its token showed the phone; then the outcome.
    assert [r["action"] for r in rows] == ["phone_viewed", "attempt_recorded"]
    assert rows[1]["address"] == ADDRESS and rows[1]["detail"]["outcome"] == "busy"


def test_managers_search_the_trail_on_its_page(
    client: TestClient, users: Users, database: Database
) -> None:
    queue_install(client, users, customer_id="C-PAGE-1")
    sign_in(client, users, "agent1", UserRole.AGENT)
    take(client)
    client.cookies.clear()
    sign_in(client, users, "manager1", UserRole.MANAGER)
    board = client.get("/console/reports/kpis").text
    assert 'href="/console/audit"' in board  # in the navigation
    page = client.get("/console/audit")
    assert page.status_code == 200
    html = page.text
    assert "审计记录" in html and "查看完整电话号码</td>" in html and "配置变更</td>" in html
    assert "C-PAGE-1" in html and "agent1" in html and ADDRESS in html
    assert "+8613" not in html  # the trail names the customer, never the number
    only_views = client.get("/console/audit", params={"action": "phone_viewed"}).text
    assert "C-PAGE-1" in only_views and "配置变更</td>" not in only_views
    nobody = client.get("/console/audit", params={"actor": "agent9"}).text
    assert "C-PAGE-1" not in nobody and "没有符合条件的记录" in nobody
    client.cookies.set("cc_lang", "en")
    english = client.get("/console/audit").text
    assert "Viewed the full phone number</td>" in english
    # No form on the page changes or removes an entry.
    assert 'method="post" action="/console/audit' not in html


def test_the_trail_is_for_managers_and_admins_only(client: TestClient, users: Users) -> None:
    for name, role in (
        ("agent1", UserRole.AGENT),
        ("sup1", UserRole.SUPERVISOR),
        ("lead1", UserRole.RETENTION_LEAD),
    ):
        client.cookies.clear()
        sign_in(client, users, name, role)
        response = client.get("/console/audit")
        assert response.status_code == 403, name
        assert 'href="/console/audit"' not in client.get("/console/").text
    client.cookies.clear()
    sign_in(client, users, "admin1", UserRole.ADMIN)
    assert client.get("/console/audit").status_code == 200
