"""Each report as the tables that download (CSV, XLSX): stable column keys, plain cells,
instants on the centre's local clock, phones masked as the reports give them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from callcenter.errors import InvalidField
from callcenter.reports.exports import Cell
from callcenter.reports.schemas import ChurnCasePage, ChurnReport, KpiReport

MAX_PERIOD_DAYS = 400


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def default_period(now: datetime, zone: ZoneInfo, days: int = 30) -> tuple[date, date]:
    """The last `days` local days before today: the nightly snapshots cover them."""
    yesterday = now.astimezone(zone).date() - timedelta(days=1)
    return yesterday - timedelta(days=days - 1), yesterday


def check_period(start: date, end: date) -> None:
    if end < start:
        raise InvalidField("end", f"the period ends ({end}) before it starts ({start})")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidField("start", f"a period is at most {MAX_PERIOD_DAYS} days")


def _local(at: datetime | None, zone: ZoneInfo) -> datetime | None:
    return at.astimezone(zone).replace(tzinfo=None) if at else None


KPI_TABLES = ("figures", "by_type", "by_hour")
CHURN_TABLES = ("reasons", "levels", "offers")


def kpi_table(report: KpiReport, name: str) -> Table:
    if name == "figures":
        return Table(
            name,
            ("figure", "rule", "value", "numerator", "denominator", "target", "grade"),
            [
                (f.key, f.rule, f.value, f.numerator, f.denominator, f.target, str(f.grade))
                for f in report.figures
            ],
        )
    if name == "by_type":
        return Table(
            name,
            (
                "callback_type",
                "orders",
                "timeliness",
                "completed",
                "within_target",
                "within_hard_limit",
                "satisfaction",
                "attempts_per_completed",
                "by_ivr",
                "by_agent",
            ),
            [
                (
                    str(r.callback_type),
                    r.orders,
                    r.timeliness,
                    r.completed,
                    r.within_target,
                    r.within_hard_limit,
                    r.satisfaction,
                    r.attempts_per_completed,
                    r.by_ivr,
                    r.by_agent,
                )
                for r in report.by_type
            ],
        )
    if name == "by_hour":
        return Table(
            name,
            ("hour", "attempts", "answered", "answer_rate"),
            [(h.hour, h.attempts, h.answered, h.answer_rate) for h in report.by_hour],
        )
    raise InvalidField("table", f"unknown table {name!r}; one of: {', '.join(KPI_TABLES)}")


def churn_table(report: ChurnReport, name: str) -> Table:
    if name == "reasons":
        return Table(
            name,
            ("reason_code", "reason_zh", "reason_en", "cases", "share", "cumulative"),
            [(b.code, b.zh, b.en, b.count, b.share, b.cumulative) for b in report.pareto],
        )
    if name == "levels":
        return Table(
            name,
            ("level", "reached", "retained", "lost", "retention_rate"),
            [(r.level, r.reached, r.retained, r.lost, r.retention_rate) for r in report.levels],
        )
    if name == "offers":
        return Table(
            name,
            (
                "offer_code",
                "offer_zh",
                "offer_en",
                "made",
                "accepted",
                "acceptance",
                "accepted_cost_yuan",
                "cost_per_retained_yuan",
            ),
            [
                (
                    o.offer_code,
                    o.zh,
                    o.en,
                    o.made,
                    o.accepted,
                    o.acceptance,
                    o.accepted_cost_yuan,
                    o.cost_per_retained_yuan,
                )
                for o in report.offers
            ],
        )
    raise InvalidField("table", f"unknown table {name!r}; one of: {', '.join(CHURN_TABLES)}")


def cases_table(page: ChurnCasePage, zone: ZoneInfo) -> Table:
    return Table(
        "cases",
        (
            "case_id",
            "customer_id",
            "customer_name",
            "phone_masked",
            "region",
            "level",
            "state",
            "reason_code",
            "reason_zh",
            "reason_en",
            "closed_at",
            "win_back",
            "win_back_on",
        ),
        [
            (
                c.case_id,
                c.customer_id,
                c.customer_name,
                c.phone_masked,
                c.region,
                c.level,
                c.state,
                c.reason_code,
                c.reason_zh,
                c.reason_en,
                _local(c.closed_at, zone),
                c.win_back,
                c.win_back_on,
            )
            for c in page.items
        ],
    )
