"""The manager's pages: the KPI dashboard and the churn report, their charts (ECharts, drawn
in the browser from the figures embedded in the page) and their downloads. Managers and
admins only; customer phones are masked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.console.i18n import UiLang
from api.console.i18n import gettext_noop as N_
from api.console.web import ConsoleSession, gettext, page_for, render
from api.deps import MANAGERS, NowDep, SettingsDep, UowDep
from api.routers.reports import download
from callcenter.config import CallbackType, Settings
from callcenter.errors import InvalidField
from callcenter.reports.exports import ExportFormat
from callcenter.reports.schemas import ChurnFilters, KpiFilters
from callcenter.reports.service import churn_cases, churn_reasons, kpis, teams_and_agents
from callcenter.reports.tables import (
    CHURN_TABLES,
    KPI_TABLES,
    Table,
    cases_table,
    check_period,
    churn_table,
    default_period,
    kpi_table,
)

router = APIRouter(prefix="/console/reports", include_in_schema=False)

ReportPage = Annotated[ConsoleSession, Depends(page_for(*MANAGERS))]
PAGE_SIZE = 50

# Each figure: its name and its definition, as the handbook states it (rules KPI-1..KPI-3).
FIGURES: dict[str, tuple[str, str]] = {
    "timeliness": (
        N_("Timeliness rate"),
        N_(
            "Orders not overdue / all orders (KPI-1): callbacks closed in the period, cancelled "
            "ones aside; not overdue when completed, or closed as unreachable, no later than "
            "the target."
        ),
    ),
    "satisfaction": (
        N_("Satisfaction rate"),
        N_(
            "Orders where the customer did not say they were dissatisfied / all orders (KPI-2), "
            "over the completed callbacks; dissatisfied as each script marks it."
        ),
    ),
    "transfer_timeliness": (
        N_("Transfer timeliness"),
        N_(
            "Orders transferred in time / orders the hotline sent (KPI-3): follow-up orders "
            "handed over no later than due (15 minutes, SV-5)."
        ),
    ),
    "within_target": (
        N_("Completed within target"),
        N_("Completed callbacks closed no later than their target (CB-1..CB-4) / completed."),
    ),
    "within_hard_limit": (
        N_("Completed within hard limit"),
        N_("Completed callbacks closed no later than their hard limit / completed."),
    ),
    "attempts_per_completed": (
        N_("Attempts per completed callback"),
        N_("Attempts the completed callbacks took / completed callbacks."),
    ),
    "ivr_share": (
        N_("Completed by the IVR"),
        N_("Completed callbacks whose last attempt was the IVR's / completed; the rest by agents."),
    ),
    "answer_rate": (
        N_("Answer rate"),
        N_("Attempts the customer answered / attempts made in the period."),
    ),
}

GRADES = {"met": N_("Target met"), "near": N_("Just below target"), "missed": N_("Target missed")}
STATES = {"retained": N_("Retained"), "lost": N_("Lost")}

# The downloads' column headers.
COLUMNS: dict[str, str] = {
    "figure": N_("Figure"),
    "rule": N_("Rule"),
    "value": N_("Value"),
    "numerator": N_("Numerator"),
    "denominator": N_("Denominator"),
    "target": N_("Target"),
    "grade": N_("Grade"),
    "callback_type": N_("Callback type"),
    "orders": N_("Orders"),
    "timeliness": N_("Timeliness rate"),
    "completed": N_("Completed"),
    "within_target": N_("Within target"),
    "within_hard_limit": N_("Within hard limit"),
    "satisfaction": N_("Satisfaction rate"),
    "attempts_per_completed": N_("Attempts per completed callback"),
    "by_ivr": N_("By the IVR"),
    "by_agent": N_("By agents"),
    "hour": N_("Hour"),
    "attempts": N_("Attempts"),
    "answered": N_("Answered"),
    "answer_rate": N_("Answer rate"),
    "reason_code": N_("Reason code"),
    "reason_zh": N_("Reason (Chinese)"),
    "reason_en": N_("Reason (English)"),
    "cases": N_("Cases"),
    "share": N_("Share"),
    "cumulative": N_("Cumulative share"),
    "level": N_("Level"),
    "reached": N_("Reached the level"),
    "retained": N_("Retained"),
    "lost": N_("Lost"),
    "retention_rate": N_("Retention rate"),
    "offer_code": N_("Offer code"),
    "offer_zh": N_("Offer (Chinese)"),
    "offer_en": N_("Offer (English)"),
    "made": N_("Made"),
    "accepted": N_("Accepted"),
    "acceptance": N_("Acceptance"),
    "accepted_cost_yuan": N_("Cost of accepted offers (yuan)"),
    "cost_per_retained_yuan": N_("Cost per customer kept (yuan)"),
    "case_id": N_("Case"),
    "customer_id": N_("Customer"),
    "customer_name": N_("Name"),
    "phone_masked": N_("Phone"),
    "region": N_("Region"),
    "state": N_("Outcome"),
    "closed_at": N_("Decided at"),
    "win_back": N_("Might come back"),
    "win_back_on": N_("Win-back date"),
}


def _date(raw: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else fallback
    except ValueError:
        return fallback


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _period(request: Request, settings: Settings, now: Any) -> tuple[date, date, str | None]:
    """The period asked for (the last 30 days by default); a bad one falls back with a note."""
    first, last = default_period(now, ZoneInfo(settings.rules.default_timezone))
    start = _date(request.query_params.get("start"), first)
    end = _date(request.query_params.get("end"), last)
    try:
        check_period(start, end)
    except InvalidField as exc:
        return first, last, exc.reason
    return start, end, None


def _kpi_filters(request: Request, settings: Settings, now: Any) -> tuple[KpiFilters, str | None]:
    start, end, problem = _period(request, settings, now)
    params = request.query_params
    kind = params.get("callback_type") or None
    return (
        KpiFilters(
            start=start,
            end=end,
            team=params.get("team") or None,
            agent_id=_int(params.get("agent_id")),
            callback_type=CallbackType(kind) if kind in set(CallbackType) else None,
        ),
        problem,
    )


def _churn_filters(
    request: Request, settings: Settings, now: Any
) -> tuple[ChurnFilters, str | None]:
    start, end, problem = _period(request, settings, now)
    params = request.query_params
    level = _int(params.get("level"))
    state = params.get("state")
    return (
        ChurnFilters(
            start=start,
            end=end,
            region=params.get("region") or None,
            level=level if level in (1, 2, 3) else None,
            state=state if state in STATES else None,
            reason=params.get("reason"),
        ),
        problem,
    )


def _query(values: Mapping[str, object]) -> str:
    return urlencode({k: str(v) for k, v in values.items() if v is not None and v != ""})


def _translated(table: Table, _: Callable[[str], str]) -> Table:
    return Table(table.name, tuple(_(COLUMNS.get(c, c)) for c in table.columns), table.rows)


def _format(request: Request) -> ExportFormat:
    return ExportFormat.XLSX if request.query_params.get("format") == "xlsx" else ExportFormat.CSV


@router.get("")
def reports_home(session: ReportPage) -> Response:
    return RedirectResponse("/console/reports/kpis", status_code=303)


@router.get("/kpis")
def kpis_page(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: ReportPage
) -> Response:
    _ = gettext(session.lang)
    filters, problem = _kpi_filters(request, settings, now)
    report = kpis(uow, filters=filters, config=settings.rules)
    teams, agents = teams_and_agents(uow)
    query = _query(filters.model_dump())
    ivr = next(f for f in report.figures if f.key == "ivr_share")
    chart = {
        "hours": {
            "title": _("Answer rate by hour of the day"),
            "hours": [f"{h.hour:02d}:00" for h in report.by_hour],
            "attempts": [h.attempts for h in report.by_hour],
            "rates": [round((h.answer_rate or 0) * 100, 1) for h in report.by_hour],
            "attempts_label": _("Attempts"),
            "rate_label": _("Answer rate") + " %",
        },
        "channels": {
            "title": _("Completed by the IVR and by agents"),
            "items": [
                {"name": _("IVR"), "value": ivr.numerator or 0},
                {"name": _("Agents"), "value": (ivr.denominator or 0) - (ivr.numerator or 0)},
            ],
        },
    }
    return render(
        request,
        "reports_kpis.html",
        {
            "report": report,
            "filters": filters,
            "problem": problem,
            "teams": teams,
            "agents": agents,
            "types": list(CallbackType),
            "figure_text": FIGURES,
            "grades": GRADES,
            "query": query,
            "tables": KPI_TABLES,
            "chart": chart,
        },
        session=session,
    )


@router.get("/kpis/export/{table}")
def kpis_export(
    table: str,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: ReportPage,
) -> Response:
    filters, _problem = _kpi_filters(request, settings, now)
    report = kpis(uow, filters=filters, config=settings.rules)
    named = _translated(kpi_table(report, table), gettext(session.lang))
    return download(named, _format(request), f"kpis-{table}-{filters.start}-{filters.end}")


def _level_name(level: int, lang: UiLang) -> str:
    _ = gettext(lang)
    return _("Level %(n)s") % {"n": level}


@router.get("/churn")
def churn_page(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: ReportPage
) -> Response:
    _ = gettext(session.lang)
    filters, problem = _churn_filters(request, settings, now)
    report = churn_reasons(uow, filters=filters, config=settings.rules)
    zone = ZoneInfo(settings.rules.default_timezone)
    lost = churn_cases(
        uow,
        filters=filters.model_copy(update={"state": "lost"}),
        zone=zone,
        config=settings.rules,
        limit=20,
    )
    base = filters.model_dump(exclude={"reason"})
    zh = session.lang is UiLang.ZH_CN
    drill = {
        bar.code: "/console/reports/churn/cases?" + _query({**base, "reason": bar.code})
        for bar in report.pareto
    }
    chart = {
        "pareto": {
            "title": _("Reasons for cancelling (Pareto)"),
            "names": [bar.zh if zh else bar.en for bar in report.pareto],
            "counts": [bar.count for bar in report.pareto],
            "cumulative": [round(bar.cumulative * 100, 1) for bar in report.pareto],
            "links": [drill[bar.code] for bar in report.pareto],
            "count_label": _("Cases"),
            "cumulative_label": _("Cumulative share") + " %",
        },
        "levels": {
            "title": _("Retention rate per level"),
            "names": [_level_name(r.level, session.lang) for r in report.levels],
            "rates": [round((r.retention_rate or 0) * 100, 1) for r in report.levels],
            "rate_label": _("Retention rate") + " %",
        },
    }
    return render(
        request,
        "reports_churn.html",
        {
            "report": report,
            "filters": filters,
            "problem": problem,
            "lost": lost,
            "drill": drill,
            "states": STATES,
            "query": _query(filters.model_dump()),
            "lost_query": _query({**base, "state": "lost"}),
            "tables": CHURN_TABLES,
            "chart": chart,
            "zone": settings.rules.default_timezone,
        },
        session=session,
    )


@router.get("/churn/cases")
def churn_cases_page(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: ReportPage
) -> Response:
    """The drill-down: the cases behind a bar (a reason, a level, a region, an outcome)."""
    filters, problem = _churn_filters(request, settings, now)
    page_number = max(1, _int(request.query_params.get("page")) or 1)
    zone = ZoneInfo(settings.rules.default_timezone)
    page = churn_cases(
        uow,
        filters=filters,
        zone=zone,
        config=settings.rules,
        limit=PAGE_SIZE,
        offset=(page_number - 1) * PAGE_SIZE,
    )
    reason = settings.rules.retention.reason(filters.reason) if filters.reason else None
    return render(
        request,
        "reports_cases.html",
        {
            "page": page,
            "page_number": page_number,
            "page_size": PAGE_SIZE,
            "filters": filters,
            "problem": problem,
            "reason": reason,
            "states": STATES,
            "query": _query(filters.model_dump()),
            "zone": settings.rules.default_timezone,
        },
        session=session,
    )


@router.get("/churn/export/{table}")
def churn_export(
    table: str,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: ReportPage,
) -> Response:
    filters, _problem = _churn_filters(request, settings, now)
    zone = ZoneInfo(settings.rules.default_timezone)
    if table == "cases":
        page = churn_cases(uow, filters=filters, zone=zone, config=settings.rules, limit=100_000)
        found = cases_table(page, zone)
    else:
        found = churn_table(churn_reasons(uow, filters=filters, config=settings.rules), table)
    named = _translated(found, gettext(session.lang))
    return download(named, _format(request), f"churn-{table}-{filters.start}-{filters.end}")
