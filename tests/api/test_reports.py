"""GET /api/v1/reports/…: the figures of a hand-made day, downloads, access and masking."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.conftest import Users
from tests.report_data import DAY, EXPECTED, PHONE, WIN_BACK_ON, load_day


def auth(users: Users, role: UserRole = UserRole.MANAGER) -> dict[str, str]:
    _, token = users.make(f"r-{role}", role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def day(database: Database) -> dict[str, int]:
    return load_day(database)


def test_the_dashboard_gives_each_figure_with_its_target(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    answer = client.get("/api/v1/reports/kpis", headers=auth(users))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["filters"]["end"] == DAY.isoformat()  # the default period ends yesterday
    figures = {f["key"]: f for f in body["figures"]}
    for key in (
        "timeliness",
        "satisfaction",
        "transfer_timeliness",
        "within_target",
        "within_hard_limit",
        "attempts_per_completed",
        "ivr_share",
        "answer_rate",
    ):
        assert (figures[key]["numerator"], figures[key]["denominator"]) == EXPECTED[key], key
    assert figures["timeliness"]["target"] == 0.9 and figures["timeliness"]["rule"] == "KPI-1"
    assert figures["satisfaction"]["target"] == 0.95
    assert figures["transfer_timeliness"]["target"] == 0.99
    assert figures["timeliness"]["grade"] == "missed"  # 60 % against 90 %
    hours = {h["hour"]: (h["attempts"], h["answered"]) for h in body["by_hour"]}
    assert hours == EXPECTED["hours"]
    assert body["snapshot_days"] == 1


def test_filters_narrow_the_dashboard(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    def figure(**params: Any) -> tuple[int, int]:
        body = client.get("/api/v1/reports/kpis", headers=auth(users), params=params).json()
        f = next(f for f in body["figures"] if f["key"] == "timeliness")
        return f["numerator"], f["denominator"]

    assert figure(callback_type="repair") == (1, 1)  # the IVR's repair, in time
    assert figure(callback_type="install") == (2, 4)
    assert figure(agent_id=day["li"]) == (2, 3)  # #1, #2, #3 (the IVR's is nobody's)
    assert figure(team="一组") == (2, 3)
    assert figure(start="2026-10-01", end="2026-10-31") == (0, 0)


def test_churn_gives_the_pareto_levels_and_offers(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    body = client.get("/api/v1/reports/churn", headers=auth(users)).json()
    assert [(b["code"], b["count"], b["share"], b["cumulative"]) for b in body["pareto"]] == (
        EXPECTED["pareto"]
    )
    assert [
        (r["level"], r["reached"], r["retained"], r["lost"]) for r in body["levels"]
    ] == EXPECTED["levels"]
    offers = {
        o["offer_code"]: (o["made"], o["accepted"], o["accepted_cost_yuan"]) for o in body["offers"]
    }
    assert offers == EXPECTED["offers"]
    assert (body["decided"], body["retained"], body["retention_rate"]) == (4, 2, 0.5)
    assert body["regions"] == sorted(["福州", "厦门"])
    xiamen = client.get("/api/v1/reports/churn", headers=auth(users), params={"region": "厦门"})
    assert [(b["code"], b["count"]) for b in xiamen.json()["pareto"]] == [("price", 1)]


def test_the_cases_behind_a_bar_and_the_lost_customers(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    price = client.get(
        "/api/v1/reports/churn/cases", headers=auth(users), params={"reason": "price"}
    ).json()
    assert price["total"] == 3
    assert {c["reason_code"] for c in price["items"]} == {"price"}
    lost = client.get("/api/v1/reports/lost-customers", headers=auth(users)).json()
    assert {c["case_id"] for c in lost["items"]} == {day["lost_case"], day["lost_xiamen"]}
    won_back = next(c for c in lost["items"] if c["case_id"] == day["lost_case"])
    assert won_back["win_back_on"] == WIN_BACK_ON.isoformat()
    assert won_back["reason_code"] == "competitor_offer" and won_back["level"] == 3


def test_phones_are_masked_in_every_report_and_export(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    bare = PHONE.removeprefix("+86")
    for path in (
        "/api/v1/reports/churn/cases",
        "/api/v1/reports/lost-customers",
        "/api/v1/reports/churn/cases/export?format=csv",
    ):
        answer = client.get(path, headers=auth(users))
        assert answer.status_code == 200
        text = answer.content.decode("utf-8-sig")
        assert bare not in text, path
        assert "138****5678" in text, path
    xlsx = client.get("/api/v1/reports/churn/cases/export?format=xlsx", headers=auth(users))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    cells = [str(c) for row in sheet.iter_rows(values_only=True) for c in row]
    assert not any(bare in c for c in cells)
    assert "+86 138****5678" in cells


def test_csv_has_a_bom_and_reads_back_in_chinese(
    client: TestClient, users: Users, day: dict[str, int]
) -> None:
    answer = client.get("/api/v1/reports/churn/reasons/export?format=csv", headers=auth(users))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["reason_code", "reason_zh", "reason_en", "cases"]
    assert rows[1][:4] == ["price", "资费偏高", "Price", "3"]


def test_xlsx_exports_are_readable(client: TestClient, users: Users, day: dict[str, int]) -> None:
    for path in (
        "/api/v1/reports/kpis/figures/export",
        "/api/v1/reports/kpis/by_type/export",
        "/api/v1/reports/kpis/by_hour/export",
        "/api/v1/reports/churn/levels/export",
        "/api/v1/reports/churn/offers/export",
    ):
        answer = client.get(path, headers=auth(users), params={"format": "xlsx"})
        assert answer.status_code == 200, path
        sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).active
        assert sheet is not None
        rows = list(sheet.iter_rows(values_only=True))
        assert len(rows) >= 2, path
    figures = client.get(
        "/api/v1/reports/kpis/figures/export", headers=auth(users), params={"format": "xlsx"}
    )
    sheet = openpyxl.load_workbook(io.BytesIO(figures.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][:5] == ("timeliness", "KPI-1", 0.6, 3, 5)


@pytest.mark.parametrize("role", [UserRole.AGENT, UserRole.SUPERVISOR, UserRole.RETENTION_LEAD])
def test_only_managers_and_admins_read_reports(
    client: TestClient, users: Users, role: UserRole
) -> None:
    for path in (
        "/api/v1/reports/kpis",
        "/api/v1/reports/churn",
        "/api/v1/reports/churn/cases",
        "/api/v1/reports/lost-customers",
        "/api/v1/reports/kpis/figures/export",
        "/api/v1/reports/churn/cases/export",
    ):
        assert client.get(path, headers=auth(users, role)).status_code == 403, path
    assert client.get("/api/v1/reports/kpis").status_code == 401
    assert (
        client.get("/api/v1/reports/kpis", headers=auth(users, UserRole.ADMIN)).status_code == 200
    )


def test_a_bad_period_or_table_is_refused(client: TestClient, users: Users) -> None:
    bad = client.get(
        "/api/v1/reports/kpis",
        headers=auth(users),
        params={"start": "2026-11-20", "end": "2026-11-01"},
    )
    assert bad.status_code == 422
    assert client.get("/api/v1/reports/kpis/nope/export", headers=auth(users)).status_code == 422


def test_the_reports_are_in_the_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/reports/kpis",
        "/api/v1/reports/kpis/{table}/export",
        "/api/v1/reports/churn",
        "/api/v1/reports/churn/{table}/export",
        "/api/v1/reports/churn/cases",
        "/api/v1/reports/churn/cases/export",
        "/api/v1/reports/lost-customers",
    ):
        assert path in paths, path
    content = paths["/api/v1/reports/churn/cases/export"]["get"]["responses"]["200"]["content"]
    assert "text/csv; charset=utf-8" in content
