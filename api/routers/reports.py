"""The manager's reports (rules KPI-1..KPI-3, CB-6, RT-1..RT-4): the KPI dashboard, the
churn figures and the cases behind them, as JSON and as CSV / XLSX downloads. Managers and
admins only; customer phones are masked in every report."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import AUTH_ERRORS, Managers, NowDep, SettingsDep, UowDep
from api.params import MAX_ROW_ID
from callcenter.config import CallbackType, Settings
from callcenter.errors import InvalidField
from callcenter.reports.exports import MEDIA_TYPES, ExportFormat, to_csv, to_xlsx
from callcenter.reports.schemas import (
    ChurnCasePage,
    ChurnFilters,
    ChurnReport,
    KpiFilters,
    KpiReport,
)
from callcenter.reports.service import churn_cases, churn_reasons, kpis
from callcenter.reports.tables import (
    Table,
    cases_table,
    check_period,
    churn_table,
    default_period,
    kpi_table,
)
from callcenter.timeformats import IsoDate

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    200: {
        "description": "The table as a file: CSV (UTF-8 with a byte-order mark) or XLSX.",
        "content": {media: {} for media in MEDIA_TYPES.values()},
    },
}

Start = Annotated[
    IsoDate | None, Query(description="First local day (default: 30 days before yesterday).")
]
End = Annotated[IsoDate | None, Query(description="Last local day, included (default: yesterday).")]
Format = Annotated[ExportFormat, Query(description="csv (UTF-8 with BOM) or xlsx.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def _period(
    start: date | None, end: date | None, now: Any, settings: Settings
) -> tuple[date, date]:
    first, last = default_period(now, ZoneInfo(settings.rules.default_timezone))
    if start is None and end is not None and end - date.min < last - first:
        # The default period before `end` would begin before the calendar does.
        raise InvalidField("end", f"{end} is too early: give start as well")
    start, end = start or (first if end is None else end - (last - first)), end or last
    check_period(start, end)
    return start, end


def download(table: Table, fmt: ExportFormat, stem: str) -> Response:
    rows = table.rows
    body = (
        to_csv(table.columns, rows)
        if fmt is ExportFormat.CSV
        else to_xlsx(table.name, table.columns, rows)
    )
    return Response(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt.value}"'},
    )


def _kpi_filters(
    start: date | None,
    end: date | None,
    team: str | None,
    agent_id: int | None,
    callback_type: CallbackType | None,
    now: Any,
    settings: Settings,
) -> KpiFilters:
    first, last = _period(start, end, now, settings)
    return KpiFilters(
        start=first, end=last, team=team, agent_id=agent_id, callback_type=callback_type
    )


@router.get("/kpis", summary="The KPI dashboard of a period", responses=AUTH_ERRORS)
def get_kpis(
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    start: Start = None,
    end: End = None,
    team: Annotated[str | None, Query(description="One team.")] = None,
    agent_id: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="One agent (user id).")
    ] = None,
    callback_type: Annotated[CallbackType | None, Query(description="One type.")] = None,
) -> KpiReport:
    """Timeliness (KPI-1, target ≥ 90 %), satisfaction (KPI-2, ≥ 95 %), transfer timeliness
    (KPI-3, ≥ 99 %), completed within target and hard limit, attempts per completed callback,
    the IVR's share and the answer rate by hour, each with its target and grade. Read from
    the nightly snapshots: a period ends yesterday at the latest."""
    filters = _kpi_filters(start, end, team, agent_id, callback_type, now, settings)
    return kpis(uow, filters=filters, config=settings.rules)


@router.get(
    "/kpis/{table}/export",
    summary="A table of the KPI dashboard as CSV or XLSX",
    responses=_DOWNLOAD,
    response_class=Response,
)
def export_kpis(
    table: Annotated[str, Path(description="figures, by_type or by_hour")],
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    format: Format = ExportFormat.CSV,
    start: Start = None,
    end: End = None,
    team: str | None = None,
    agent_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    callback_type: CallbackType | None = None,
) -> Response:
    filters = _kpi_filters(start, end, team, agent_id, callback_type, now, settings)
    report = kpis(uow, filters=filters, config=settings.rules)
    return download(kpi_table(report, table), format, f"kpis-{table}-{filters.start}-{filters.end}")


def _churn_filters(
    start: date | None,
    end: date | None,
    region: str | None,
    level: int | None,
    state: str | None,
    reason: str | None,
    now: Any,
    settings: Settings,
) -> ChurnFilters:
    first, last = _period(start, end, now, settings)
    return ChurnFilters(
        start=first, end=last, region=region, level=level, state=state, reason=reason
    )


Region = Annotated[str | None, Query(description="The customers' region.")]
Level = Annotated[int | None, Query(ge=1, le=3, description="Level where it was decided.")]
State = Annotated[str | None, Query(pattern="^(retained|lost)$", description="The outcome.")]
Reason = Annotated[str | None, Query(description="A reason code (empty: none recorded).")]


@router.get("/churn", summary="Why customers leave: reasons, levels, offers", responses=AUTH_ERRORS)
def get_churn(
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    start: Start = None,
    end: End = None,
    region: Region = None,
    level: Level = None,
    state: State = None,
    reason: Reason = None,
) -> ChurnReport:
    """The Pareto of reasons of the retention cases decided in the period, the retention
    rate per level (retained at a level / decided cases that reached it), and what each offer
    kept and cost (rules CB-6, RT-1..RT-4). From the nightly snapshots."""
    filters = _churn_filters(start, end, region, level, state, reason, now, settings)
    return churn_reasons(uow, filters=filters, config=settings.rules)


@router.get(
    "/churn/cases",
    summary="The cases behind the churn figures (drill-down)",
    responses=AUTH_ERRORS,
)
def get_churn_cases(
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    start: Start = None,
    end: End = None,
    region: Region = None,
    level: Level = None,
    state: State = None,
    reason: Reason = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ChurnCasePage:
    """Retention cases decided in the period, the latest first, with the reason, the level
    where it was decided and the win-back date of a lost customer; phones masked."""
    filters = _churn_filters(start, end, region, level, state, reason, now, settings)
    zone = ZoneInfo(settings.rules.default_timezone)
    return churn_cases(
        uow, filters=filters, zone=zone, config=settings.rules, limit=limit, offset=offset
    )


@router.get(
    "/lost-customers", summary="Lost customers and their win-back dates", responses=AUTH_ERRORS
)
def get_lost_customers(
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    start: Start = None,
    end: End = None,
    region: Region = None,
    level: Level = None,
    reason: Reason = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ChurnCasePage:
    """The customers lost in the period with their reasons and the day they said they might
    come back (rule RT-4); phones masked."""
    filters = _churn_filters(start, end, region, level, "lost", reason, now, settings)
    zone = ZoneInfo(settings.rules.default_timezone)
    return churn_cases(
        uow, filters=filters, zone=zone, config=settings.rules, limit=limit, offset=offset
    )


@router.get(
    "/churn/cases/export",
    summary="The churn cases (or lost customers, state=lost) as CSV or XLSX",
    responses=_DOWNLOAD,
    response_class=Response,
)
def export_churn_cases(
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    format: Format = ExportFormat.CSV,
    start: Start = None,
    end: End = None,
    region: Region = None,
    level: Level = None,
    state: State = None,
    reason: Reason = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    filters = _churn_filters(start, end, region, level, state, reason, now, settings)
    zone = ZoneInfo(settings.rules.default_timezone)
    page = churn_cases(uow, filters=filters, zone=zone, config=settings.rules, limit=limit)
    return download(cases_table(page, zone), format, f"churn-cases-{filters.start}")


# After /churn/cases/export, which this path would otherwise take.
@router.get(
    "/churn/{table}/export",
    summary="A table of the churn report as CSV or XLSX",
    responses=_DOWNLOAD,
    response_class=Response,
)
def export_churn(
    table: Annotated[str, Path(description="reasons, levels or offers")],
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Managers,
    format: Format = ExportFormat.CSV,
    start: Start = None,
    end: End = None,
    region: Region = None,
    level: Level = None,
    state: State = None,
    reason: Reason = None,
) -> Response:
    filters = _churn_filters(start, end, region, level, state, reason, now, settings)
    report = churn_reasons(uow, filters=filters, config=settings.rules)
    return download(churn_table(report, table), format, f"churn-{table}-{filters.start}")
