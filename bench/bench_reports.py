"""The manager's report pages with a year of history in PostgreSQL.

    python -m bench.bench_reports [--callbacks 2000000] [--runs 20] [--snapshot-days 3] [--keep]

Builds a scratch database (`callcenter_bench_reports`, created and dropped; the schema from
the models' metadata) and loads a year of closed history with SQL: `--callbacks` callbacks
over 365 days (install, repair, complaint; about 1.4 attempts each, a third of repairs by the
IVR), their attempts, follow-up orders, and about 5 % of them as churn callbacks with decided
retention cases and their steps. Then:

- times the nightly `snapshot_day` on `--snapshot-days` days of that history (the real job);
- fills the snapshot tables for the rest of the year by copying those days' snapshot rows to
  every other day (what the nightly job would have written, without running it 365 times);
- times, in-process through the ASGI app (no network), each dashboard page and the JSON
  endpoints over the whole year, unfiltered and filtered, and the drill-down lists, which
  read `retention_cases` itself through its (state, closed_at) index.

Answers (the survey) are not loaded: the satisfaction figure is read from the snapshots,
whose cost does not depend on them; `snapshot_day` reads the answers of one day only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from bench.common import (
    Check,
    Report,
    create_database,
    drop_database,
    dsn,
    fmt_ms,
    log,
    percentile,
    print_report,
    sqlalchemy_url,
    vacuum_analyze,
)
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.models import metadata
from callcenter.reports.service import snapshot_day
from callcenter.users.models import UserRole
from callcenter.users.service import create_user

DATABASE = "callcenter_bench_reports"
TARGET_MS = 1000.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI).astimezone(dt.UTC)
FIRST_DAY = dt.date(2025, 11, 25)  # 365 days up to yesterday
PASSWORD = "bench-password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def load_history(database: str, callbacks: int, agent_ids: list[int]) -> dict[str, int]:
    """A year of closed history, written with SQL (generate_series)."""
    agents = "ARRAY[" + ",".join(str(i) for i in agent_ids) + "]"
    start = dt.datetime.combine(FIRST_DAY, dt.time(0), tzinfo=SHANGHAI)
    with psycopg.connect(dsn(database)) as conn:
        conn.execute(
            """INSERT INTO customers (external_id, name, phone, timezone, region, info_as_of,
                                      created_at)
               SELECT 'B-' || n, '客户' || n, '+86139' || lpad(n::text, 8, '0'), 'Asia/Shanghai',
                      (ARRAY['福州','厦门','泉州','漳州','莆田'])[1 + n %% 5], %s, %s
               FROM generate_series(1, 200000) AS n""",
            (NOW, NOW),
        )
        log("customers loaded")
        # Callback n closes on day n %% 365 at a local time inside the windows; ~8 %% late.
        conn.execute(
            """INSERT INTO callbacks (type, status, channel, customer_id, order_id, event_id,
                    anchor_at, available_at, due_at, hard_due_at, attempt_count,
                    unreached_count, closed_at, created_at, updated_at)
               SELECT t.kind, t.status, t.channel, 1 + n %% 200000, 'O-' || n, 'E-' || n,
                      t.closed - interval '1 day', t.closed - interval '1 day',
                      t.closed + CASE WHEN n %% 13 = 0 THEN interval '-3 hours'
                                      ELSE interval '5 hours' END,
                      t.closed + interval '1 day', t.tries, 0, t.closed,
                      t.closed - interval '1 day', t.closed
               FROM generate_series(1, %s) AS n,
               LATERAL (SELECT
                 (ARRAY['install','install','repair','repair','complaint','churn',
                        'install','repair','install','complaint','repair','install','repair',
                        'install','complaint','repair','install','repair','install',
                        'complaint'])[1 + n %% 20] AS kind,
                 CASE WHEN n %% 25 = 0 THEN 'failed' WHEN n %% 40 = 0 THEN 'expired'
                      ELSE 'completed' END AS status,
                 CASE WHEN n %% 20 IN (2, 7) AND n %% 3 = 0 THEN 'ivr' ELSE 'agent' END AS channel,
                 %s::timestamptz + (n %% 365) * interval '1 day'
                   + interval '8 hours 40 minutes' + (n %% 700) * interval '1 minute' AS closed,
                 CASE WHEN n %% 5 < 3 THEN 1 WHEN n %% 5 = 3 THEN 2 ELSE 3 END AS tries) AS t""",
            (callbacks, start),
        )
        log("callbacks loaded")
        conn.execute(
            f"""INSERT INTO attempts (callback_id, number, agent_id, channel, outcome,
                                      recorded_at, late_by_seconds)
               SELECT c.id, k,
                      CASE WHEN c.channel = 'ivr' THEN NULL
                           ELSE ({agents})[1 + c.id % {len(agent_ids)}] END,
                      c.channel,
                      CASE WHEN k = c.attempt_count AND c.status = 'completed' THEN 'answered'
                           WHEN k % 2 = 0 THEN 'busy' ELSE 'no_answer' END,
                      c.closed_at - (c.attempt_count - k) * interval '2 hours', 0
               FROM callbacks c, generate_series(1, c.attempt_count) AS k"""
        )
        log("attempts loaded")
        conn.execute(
            f"""INSERT INTO work_orders (kind, status, callback_id, customer_id, subject, team,
                                         created_by_id, created_at, due_at, handed_over_at)
               SELECT 'follow_up', 'handed_over', id, customer_id, '跟进', '装维',
                      ({agents})[1 + id % {len(agent_ids)}], closed_at,
                      closed_at + interval '15 minutes',
                      closed_at + CASE WHEN id % 97 = 0 THEN interval '40 minutes'
                                       ELSE interval '6 minutes' END
               FROM callbacks WHERE id % 50 = 0 AND type <> 'churn'"""
        )
        conn.execute(
            """INSERT INTO retention_cases (callback_id, customer_id, order_id, state, level,
                    level_since, due_at, reason_code, closed_at, created_at, updated_at)
               SELECT id, customer_id, order_id,
                      CASE WHEN id % 10 < 4 THEN 'retained' ELSE 'lost' END,
                      CASE WHEN id % 10 < 2 THEN 1 WHEN id % 10 < 4 THEN 2 ELSE 3 END,
                      closed_at, closed_at,
                      (ARRAY['price','price','price','competitor_offer','competitor_offer',
                             'network_quality','moving_house','no_longer_needed',
                             'service_attitude','other'])[1 + (id / 7) % 10],
                      closed_at + interval '2 days', closed_at, closed_at + interval '2 days'
               FROM callbacks WHERE type = 'churn'"""
        )
        conn.execute(
            """INSERT INTO retention_steps (case_id, level, outcome, escalated_to, reason_code,
                    offer_code, offer_cost_yuan, offer_accepted, win_back, win_back_on,
                    recorded_at)
               SELECT c.id, k,
                      CASE WHEN k < c.level THEN 'escalated' ELSE c.state END,
                      CASE WHEN k < c.level THEN k + 1 END, c.reason_code,
                      (ARRAY['discount_10_6m','free_month_1','free_months_3'])[k],
                      (ARRAY[60, 100, 300])[k],
                      k = c.level AND c.state = 'retained',
                      CASE WHEN k = c.level AND c.state = 'lost' THEN c.id % 3 = 0 END,
                      CASE WHEN k = c.level AND c.state = 'lost' AND c.id % 3 = 0
                           THEN (c.closed_at + interval '90 days')::date END,
                      c.closed_at - (c.level - k) * interval '1 hour'
               FROM retention_cases c, generate_series(1, c.level) AS k"""
        )
        conn.commit()
        counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("callbacks", "attempts", "work_orders", "retention_cases")
        }
    log(f"history loaded: {counts}")
    vacuum_analyze(
        database,
        "customers",
        "callbacks",
        "attempts",
        "work_orders",
        "retention_cases",
        "retention_steps",
    )
    return counts


def fill_snapshots(database: str, days: list[dt.date]) -> int:
    """Copy the snapshot rows of the measured days to every other day of the year."""
    tables = {
        "report_days": "team, agent_id, callback_type, closed, cancelled, closed_in_time, "
        "completed, within_target, within_hard_limit, expired, failed, completed_attempts, "
        "dissatisfied, by_ivr, attempts, answered, transfers_sent, transfers_in_time, "
        "computed_at",
        "report_hours": "hour, team, agent_id, callback_type, attempts, answered",
        "churn_days": "region, level, reason_code, state, cases",
        "offer_days": "region, level, offer_code, made, accepted, accepted_cost_yuan",
    }
    with psycopg.connect(dsn(database)) as conn:
        for offset in range(365):
            day = FIRST_DAY + dt.timedelta(days=offset)
            if day in days:
                continue
            source = days[offset % len(days)]
            for table, columns in tables.items():
                conn.execute(
                    f"INSERT INTO {table} (day, {columns}) "
                    f"SELECT %s, {columns} FROM {table} WHERE day = %s",
                    (day, source),
                )
        conn.commit()
        rows = int(conn.execute("SELECT count(*) FROM report_days").fetchone()[0])  # type: ignore[index]
    vacuum_analyze(database, *tables)
    return rows


def sign_in(client: TestClient, username: str) -> None:
    form = client.get("/console/login").text
    token = _CSRF.search(form)
    assert token
    response = client.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def timed(client: TestClient, path: str, runs: int) -> list[float]:
    client.get(path)  # warm-up
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        values.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    return values


def run(args: argparse.Namespace) -> Report:
    report = Report(
        f"Report pages, server-side, with a year of history ({args.callbacks:,} callbacks)"
    )
    create_database(DATABASE)
    try:
        url = sqlalchemy_url(DATABASE)
        database = Database(url)
        metadata.create_all(database.engine)
        agent_ids = []
        for n in range(50):
            user = create_user(database.uow(), username=f"agent{n}", role=UserRole.AGENT, now=NOW)
            agent_ids.append(user.id or 0)
        with psycopg.connect(dsn(DATABASE)) as conn:
            conn.execute(
                "UPDATE users SET team = (ARRAY['一组','二组','三组','四组','五组'])[1 + id % 5]"
            )
            conn.commit()
        create_user(
            database.uow(), username="boss", role=UserRole.MANAGER, now=NOW, password=PASSWORD
        )
        started = time.perf_counter()
        counts = load_history(DATABASE, args.callbacks, agent_ids)
        report.details.append(
            f"- history: {counts['callbacks']:,} callbacks, {counts['attempts']:,} attempts, "
            f"{counts['work_orders']:,} follow-up orders, {counts['retention_cases']:,} "
            f"retention cases over 365 days (loaded in {time.perf_counter() - started:.0f} s)"
        )
        days = [dt.date(2026, 11, 24) - dt.timedelta(days=n) for n in range(args.snapshot_days)]
        costs = []
        for day in days:
            began = time.perf_counter()
            snapshot_day(database.uow(), day=day, zone=SHANGHAI, now=NOW)
            costs.append(time.perf_counter() - began)
        per_day = args.callbacks // 365
        report.checks.append(
            Check(
                f"nightly snapshot_day, one day (~{per_day:,} callbacks closed)",
                f"{fmt_ms(max(costs) * 1000)} max of {len(costs)}",
                "reported",
                None,
            )
        )
        rows = fill_snapshots(DATABASE, days)
        report.details.append(f"- snapshot rows for the year: {rows:,} in report_days")
        settings = Settings(database_url=url, scheduler_enabled=False)
        app = create_app(settings, database=database, clock=FixedClock(NOW), start_scheduler=False)
        year = "start=2025-11-25&end=2026-11-24"
        pages = [
            ("KPI dashboard page, a year", f"/console/reports/kpis?{year}"),
            (
                "KPI dashboard page, a year, one agent",
                f"/console/reports/kpis?{year}&agent_id={agent_ids[3]}",
            ),
            (
                "KPI dashboard page, a year, one team and type",
                f"/console/reports/kpis?{year}&team=一组&callback_type=repair",
            ),
            (
                "churn page (Pareto, levels, offers, 20 lost), a year",
                f"/console/reports/churn?{year}",
            ),
            (
                "churn page, a year, one region and level",
                f"/console/reports/churn?{year}&region=厦门&level=3",
            ),
            (
                "drill-down: cases of the top reason, a year, page 1",
                f"/console/reports/churn/cases?{year}&reason=price",
            ),
            ("drill-down, page 50", f"/console/reports/churn/cases?{year}&reason=price&page=50"),
            (
                "lost customers, a year, one region",
                f"/console/reports/churn/cases?{year}&state=lost&region=福州",
            ),
        ]
        with TestClient(app) as client:
            sign_in(client, "boss")
            for what, path in pages:
                values = timed(client, path, args.runs)
                p50, worst = percentile(values, 50) * 1000, max(values) * 1000
                report.checks.append(
                    Check(
                        what,
                        f"p50 {fmt_ms(p50)}, max {fmt_ms(worst)}",
                        f"< {TARGET_MS:,.0f} ms",
                        worst < TARGET_MS,
                    )
                )
                log(f"{what}: p50 {fmt_ms(p50)} max {fmt_ms(worst)}")
        report.details.append(
            f"- each page: {args.runs} requests after one warm-up, in-process (TestClient), "
            "the page's whole server time: session, queries, template"
        )
        database.dispose()
    finally:
        if not args.keep:
            drop_database(DATABASE)
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--callbacks", type=int, default=2_000_000)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--snapshot-days", type=int, default=3)
    p.add_argument("--keep", action="store_true")
    return p


def main(argv: Any = None) -> None:
    print_report(run(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
