"""The manager's console pages: the KPI dashboard, the churn report, drill-down, downloads."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.conftest import Users
from tests.console.helpers import sign_in
from tests.report_data import PHONE, load_day


@pytest.fixture
def day(database: Database) -> dict[str, int]:
    return load_day(database)


def test_the_dashboard_shows_each_figure_with_target_colour_and_definition(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    sign_in(client, users, "boss", UserRole.MANAGER)
    page = client.get("/console/reports/kpis")
    assert page.status_code == 200
    html = page.text
    timeliness = re.search(
        r'<article class="figure (\w+)" data-figure="timeliness">(.*?)</article>', html, re.S
    )
    assert timeliness is not None
    assert timeliness.group(1) == "missed"  # 60 % against 90 %: red
    assert "60.0 %" in timeliness.group(2) and "3 / 5" in timeliness.group(2)
    assert "90.0 %" in timeliness.group(2)  # its target
    assert "KPI-1" in timeliness.group(2)
    assert "按时率" in html or "及时率" in html  # zh-CN first
    assert 'id="report-charts"' in html and "echarts.min.js" in html
    assert 'href="/console/reports/kpis"' in html  # the nav link


def test_the_dashboard_in_english(client: TestClient, users: Users, day: dict[str, int]) -> None:
    sign_in(client, users, "boss", UserRole.MANAGER)
    client.cookies.set("cc_lang", "en")
    html = client.get("/console/reports/kpis?callback_type=repair").text
    assert "Timeliness rate" in html and "Orders not overdue / all orders" in html
    figure = re.search(r'data-figure="timeliness">(.*?)</article>', html, re.S)
    assert figure is not None and "100.0 %" in figure.group(1)


def test_the_churn_report_links_each_bar_to_its_cases(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    sign_in(client, users, "boss", UserRole.ADMIN)
    html = client.get("/console/reports/churn").text
    assert "资费偏高" in html
    link = re.search(r'href="(/console/reports/churn/cases\?[^"]*reason=price[^"]*)"', html)
    assert link is not None
    cases = client.get(link.group(1).replace("&amp;", "&"))
    assert cases.status_code == 200
    assert cases.text.count('<td class="num">#') == 3
    assert PHONE.removeprefix("+86") not in html + cases.text
    assert "138****5678" in cases.text


def test_downloads_from_the_console(client: TestClient, users: Users, day: dict[str, int]) -> None:
    sign_in(client, users, "boss", UserRole.MANAGER)
    answer = client.get("/console/reports/churn/export/cases?state=lost&format=csv")
    assert answer.status_code == 200
    assert answer.content.startswith(b"\xef\xbb\xbf")
    text = answer.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("挽留单,客户")  # headers in the page's language
    assert PHONE.removeprefix("+86") not in text
    xlsx = client.get("/console/reports/kpis/export/by_type?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


@pytest.mark.parametrize("role", [UserRole.AGENT, UserRole.SUPERVISOR, UserRole.RETENTION_LEAD])
def test_other_roles_may_not_open_the_reports(
    client: TestClient, users: Users, role: UserRole
) -> None:
    sign_in(client, users, f"u-{role}", role)
    for path in (
        "/console/reports/kpis",
        "/console/reports/churn",
        "/console/reports/churn/cases",
        "/console/reports/kpis/export/figures",
    ):
        assert client.get(path).status_code == 403, path
    assert 'href="/console/reports/kpis"' not in client.get("/console/board").text
