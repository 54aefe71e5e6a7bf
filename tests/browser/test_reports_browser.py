"""A manager reads the KPI dashboard and the churn report in a real browser: the charts are
drawn (ECharts), every visible word is Chinese, and a Pareto bar leads to its cases."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from callcenter.users.models import UserRole
from tests.browser.conftest import LiveServer, english_left, screenshot
from tests.console.helpers import PASSWORD
from tests.report_data import PHONE, load_day


def sign_in(page: Page, live: LiveServer, username: str, role: UserRole) -> None:
    live.users.make(username, role)
    page.goto(f"{live.url}/console/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出")).to_be_visible()


def charts_drawn(page: Page, *ids: str) -> None:
    for chart in ids:
        expect(page.locator(f"#{chart} svg").first).to_be_attached()
        expect(page.locator(f"#{chart}")).to_have_attribute("data-drawn", "true")


def test_a_manager_reads_the_dashboards_in_chinese(live: LiveServer, new_page: Any) -> None:
    load_day(live.database)
    page = new_page()
    sign_in(page, live, "boss", UserRole.MANAGER)
    page.get_by_role("link", name="报表").click()
    expect(page.get_by_role("heading", name="考核指标看板")).to_be_visible()
    charts_drawn(page, "chart-hours", "chart-channels")
    expect(page.locator('[data-figure="timeliness"] .value')).to_have_text("60.0 %")
    screenshot(page, "zh_CN", "reports-kpis")
    assert english_left(page) == []

    page.get_by_role("link", name="流失原因").first.click()
    expect(page.get_by_role("heading", name="流失原因")).to_be_visible()
    charts_drawn(page, "chart-pareto", "chart-levels")
    screenshot(page, "zh_CN", "reports-churn")
    assert english_left(page) == []
    assert PHONE.removeprefix("+86") not in page.content()

    # Drill down: a click on the first (largest) bar opens the cases behind it.
    x, y = page.evaluate(
        """() => {
          const el = document.getElementById('chart-pareto');
          const chart = echarts.getInstanceByDom(el);
          const count = chart.getOption().series[0].data[0];
          const [x, y] = chart.convertToPixel({seriesIndex: 0}, [0, count / 2]);
          const box = el.getBoundingClientRect();
          return [box.left + x, box.top + y];
        }"""
    )
    with page.expect_navigation():
        page.mouse.click(x, y)
    expect(page.get_by_role("heading", name="挽留工单明细")).to_be_visible()
    expect(page.locator("table.cases tbody tr")).to_have_count(3)  # the three "price" cases
    screenshot(page, "zh_CN", "reports-cases")
    assert english_left(page) == []


def test_a_manager_reads_the_dashboards_in_english(live: LiveServer, new_page: Any) -> None:
    load_day(live.database)
    page = new_page()
    sign_in(page, live, "boss", UserRole.MANAGER)
    page.get_by_role("button", name="English").click()
    page.goto(f"{live.url}/console/reports/kpis")
    expect(page.get_by_role("heading", name="KPI dashboard")).to_be_visible()
    expect(page.get_by_text("Orders not overdue / all orders", exact=False)).to_be_visible()
    charts_drawn(page, "chart-hours", "chart-channels")
    screenshot(page, "en", "reports-kpis")
    page.goto(f"{live.url}/console/reports/churn")
    expect(page.get_by_role("heading", name="Churn reasons")).to_be_visible()
    charts_drawn(page, "chart-pareto", "chart-levels")
    screenshot(page, "en", "reports-churn")
