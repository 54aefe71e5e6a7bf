"""The capacity forecast: `forecast()` over 100,000 open callbacks, in-process, PostgreSQL.

    python -m bench.bench_forecast [--callbacks 100000] [--closed 200000] [--runs 10] [--keep]

Builds a scratch database (`callcenter_bench_forecast`, created and dropped; the schema from
the models' metadata), loads with INSERT ... SELECT generate_series: open agent callbacks for
customers in five zones (most in Shanghai), open IVR callbacks and closed callbacks the
forecast must skip, a million attempts (two weeks of claims by 60 agents and older history)
and a roster for today and tomorrow. Then times `forecast()` after one warm-up run, and the
parts of it: the handling-time query, the open-callbacks query, the simulation, the answer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from sqlalchemy.sql.schema import ScalarElementColumnDefault

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
from callcenter.config import RulesConfig
from callcenter.db import Database
from callcenter.forecast import rules
from callcenter.forecast.service import (
    DEFAULT_RULE,
    _measured_handling,
    _open_callbacks,
    _read,
    _rostered,
    forecast,
)
from callcenter.models import metadata

DATABASE = "callcenter_bench_forecast"
TARGET_S = 1.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 10:00 in Shanghai: the morning window is open, the afternoon and tomorrow ahead.
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI).astimezone(dt.UTC)
# Share of customers per zone, in percent (the rest: Asia/Shanghai).
ZONES = {"Asia/Urumqi": 5, "Asia/Tokyo": 4, "Asia/Hong_Kong": 3, "America/New_York": 2}
AGENTS = 60
ROSTER = {"team-a": 250, "team-b": 150}  # per window, today and tomorrow


def _defaults(table: str, given: dict[str, str]) -> tuple[str, str]:
    """Column list and SELECT list for `given`, plus the scalar default of every other NOT
    NULL column the models declare (so that the loader keeps up with new columns)."""
    columns = dict(given)
    for column in metadata.tables[table].columns:
        default = column.default
        if column.name in columns or column.nullable or column.primary_key:
            continue
        if not isinstance(default, ScalarElementColumnDefault):
            raise RuntimeError(f"{table}.{column.name}: NOT NULL without a default; load it")
        value = default.arg
        if isinstance(value, bool):
            columns[column.name] = "true" if value else "false"
        elif isinstance(value, str):
            columns[column.name] = "'" + value.replace("'", "''") + "'"
        else:
            columns[column.name] = str(value)
    return ", ".join(columns), ", ".join(columns.values())


def load(database: str, *, callbacks: int, closed: int, attempts: int) -> float:
    """Bulk-load the data set; the seconds it took."""
    started = time.perf_counter()
    customers = max(1, callbacks * 4 // 5)
    ivr = callbacks // 5
    zone_case = "CASE"
    low = 0
    for zone, share in ZONES.items():
        zone_case += f" WHEN g %% 100 BETWEEN {low} AND {low + share - 1} THEN '{zone}'"
        low += share
    zone_case += " ELSE 'Asia/Shanghai' END"
    params: dict[str, Any] = {"now": NOW, "n": callbacks, "nc": customers}
    with psycopg.connect(dsn(database)) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            """
            INSERT INTO users (id, username, display_name, role, is_active, created_at,
                               failed_logins)
            SELECT g, 'agent' || g, 'Agent ' || g, 'agent', true, %(now)s, 0
            FROM generate_series(1, %(agents)s) AS g
            UNION ALL
            SELECT %(agents)s + 1, 'supervisor', 'Supervisor', 'supervisor', true, %(now)s, 0
            """,
            {"now": NOW, "agents": AGENTS},
        )
        conn.execute(
            f"""
            INSERT INTO customers (id, external_id, name, phone, timezone, info_as_of,
                                   created_at)
            SELECT g, 'FC-' || g, 'Customer ' || g, '+86138' || lpad(g::text, 8, '0'),
                   {zone_case}, %(now)s, %(now)s
            FROM generate_series(1, %(nc)s) AS g
            """,
            params,
        )
        conn.execute(
            "INSERT INTO known_zones (name) SELECT DISTINCT timezone FROM customers "
            "ON CONFLICT DO NOTHING"
        )
        columns, values = _defaults(
            "callbacks",
            {
                "id": "g",
                "type": "kind",
                "status": "status",
                "channel": "channel",
                "customer_id": "1 + (g - 1) %% %(nc)s",
                "order_id": "'FO-' || g",
                "event_id": "'fevt-' || g",
                "anchor_at": "anchor",
                # A claim holds a few; one in ten waits for a retry later today or tomorrow.
                "available_at": "CASE WHEN status = 'claimed' THEN %(now)s + interval '10 min'"
                " WHEN g %% 10 = 0 THEN %(now)s + random() * interval '30 hours'"
                " ELSE anchor END",
                # rules CB-1..CB-3: install 24 h / 72 h, repair 24 h / 48 h, complaint 48 h.
                "due_at": "anchor + CASE kind WHEN 'complaint' THEN interval '48 hours'"
                " ELSE interval '24 hours' END",
                "hard_due_at": "anchor + CASE kind WHEN 'install' THEN interval '72 hours'"
                " ELSE interval '48 hours' END",
                "claim_id": "CASE WHEN status = 'claimed' THEN 'claim-' || g END",
                "claimed_by_id": "CASE WHEN status = 'claimed' THEN 1 + g %% 60 END",
                "claimed_at": "CASE WHEN status = 'claimed' THEN %(now)s END",
                "lease_expires_at": "CASE WHEN status = 'claimed' "
                "THEN %(now)s + interval '10 min' END",
                "closed_at": "CASE WHEN status = 'completed' THEN anchor END",
                "created_at": "anchor",
                "updated_at": "anchor",
            },
        )
        # Open agent callbacks (3 % claimed), open IVR ones, and closed ones, in one go.
        conn.execute(
            f"""
            INSERT INTO callbacks ({columns})
            SELECT {values}
            FROM (
                SELECT g,
                       (ARRAY['install', 'repair', 'complaint'])[1 + (g %% 3)] AS kind,
                       CASE WHEN g > %(n)s + %(ivr)s THEN 'completed'
                            WHEN g %% 33 = 0 THEN 'claimed' ELSE 'pending' END AS status,
                       CASE WHEN g > %(n)s AND g <= %(n)s + %(ivr)s THEN 'ivr'
                            ELSE 'agent' END AS channel,
                       %(now)s - random() * interval '40 hours'
                           - CASE WHEN g > %(n)s + %(ivr)s THEN interval '30 days'
                                  ELSE interval '0' END AS anchor
                FROM generate_series(1, %(n)s + %(ivr)s + %(closed)s) AS g
            ) AS s
            """,
            {**params, "ivr": ivr, "closed": closed},
        )
        # Attempts: 15 % in the last two weeks, each agent ending a claim every 5-7 minutes
        # (with a long break now and then), the rest older history the query must skip.
        # Inserted in the order they were recorded, as the application does (never updated).
        recent = attempts * 15 // 100
        columns, values = _defaults(
            "attempts",
            {
                "callback_id": "%(first_closed)s + g %% %(closed)s",
                "number": "1",
                "claim_id": "'hc-' || g",
                "agent_id": "1 + g %% %(agents)s",
                "channel": "'agent'",
                "outcome": "'answered'",
                "recorded_at": "recorded_at",
            },
        )
        conn.execute(
            f"""
            INSERT INTO attempts ({columns})
            SELECT {values}
            FROM (
                SELECT g,
                       CASE WHEN g <= %(recent)s THEN %(now)s - interval '14 days'
                                 + (g / %(agents)s) * interval '6 minutes'
                                 + random() * interval '1 minute'
                                 + CASE WHEN g %% 97 = 0 THEN interval '2 hours'
                                        ELSE interval '0' END
                            ELSE %(now)s - interval '15 days' - random() * interval '180 days'
                       END AS recorded_at
                FROM generate_series(1, %(attempts)s) AS g
            ) AS s
            ORDER BY recorded_at
            """,
            {
                "now": NOW,
                "agents": AGENTS,
                "attempts": attempts,
                "recent": recent,
                "first_closed": callbacks + ivr + 1,
                "closed": closed,
            },
        )
        today = NOW.astimezone(SHANGHAI).date()
        for day in (today, today + dt.timedelta(days=1)):
            for start in (dt.time(8, 30), dt.time(14, 30)):
                for team, agents in ROSTER.items():
                    conn.execute(
                        "INSERT INTO roster (day, window_start, agents, team, updated_by_id, "
                        "updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                        (day, start, agents, team, AGENTS + 1, NOW),
                    )
        for table in ("users", "customers", "callbacks", "attempts"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
    vacuum_analyze(database, "users", "customers", "callbacks", "attempts", "roster")
    return time.perf_counter() - started


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def parts(database: Database, config: RulesConfig) -> dict[str, float]:
    """One forecast, step by step, with the time of each step."""
    times: dict[str, float] = {}
    windows, horizon_end = rules.horizon_windows(
        NOW, ZoneInfo(config.default_timezone), config.windows
    )
    with database.uow() as uow:
        session, dialect = uow.session, uow.dialect
        times["handling-time query"], (samples, mean) = timed(
            lambda: _measured_handling(session, dialect, now=NOW, config=config, rule=DEFAULT_RULE)
        )
        times["roster query"], agents = timed(lambda: _rostered(session, [w.day for w in windows]))
        times["open-callbacks query"], callbacks = timed(
            lambda: _open_callbacks(session, dialect, NOW)
        )
    handling = rules.handling_time(samples=samples, mean_seconds=mean, rule=DEFAULT_RULE)
    times["simulation (rules.forecast)"], result = timed(
        lambda: rules.forecast(
            callbacks,
            windows=windows,
            horizon_end=horizon_end,
            agents=agents,
            handling=handling.duration,
            default_zone=config.default_timezone,
            calling_windows=config.windows,
            in_queue_order=True,
            miss_limit=500,
        )
    )
    times["answer (ForecastRead)"], _ = timed(
        lambda: _read(result, handling, now=NOW, config=config)
    )
    return times


def run(args: argparse.Namespace) -> Report:
    report = Report(f"Capacity forecast: `forecast()` over {args.callbacks:,} open callbacks")
    log(f"creating database {args.database}")
    create_database(args.database)
    database: Database | None = None
    try:
        database = Database(sqlalchemy_url(args.database))
        metadata.create_all(database.engine)
        log(f"loading {args.callbacks:,} open callbacks and {args.attempts:,} attempts")
        seconds = load(
            args.database, callbacks=args.callbacks, closed=args.closed, attempts=args.attempts
        )
        log(f"loaded in {seconds:.1f} s")
        config = RulesConfig()
        # Warm up: connections, statement compilation caches, zone data.
        first = forecast(database.uow(), now=NOW, config=config)
        runs, cpu = [], []
        for _ in range(args.runs):
            started = time.process_time()
            elapsed, answer = timed(lambda: forecast(database.uow(), now=NOW, config=config))
            runs.append(elapsed)
            cpu.append(time.process_time() - started)
        step_runs: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for name, value in parts(database, config).items():
                step_runs.setdefault(name, []).append(value)
        with database.engine.connect() as connection:
            open_count = connection.execute(
                sa.text("SELECT count(*) FROM callbacks WHERE status IN ('pending', 'claimed')")
            ).scalar_one()
    finally:
        if database is not None:
            database.dispose()
        if not args.keep:
            log(f"dropping database {args.database}")
            drop_database(args.database)

    p50, worst = percentile(runs, 50), max(runs)
    report.checks.append(
        Check(
            f"forecast() at {answer.open_callbacks:,} open agent callbacks, p50 / max "
            f"({args.runs} runs)",
            f"{fmt_ms(p50 * 1000)} / {fmt_ms(worst * 1000)}",
            f"< {TARGET_S:.0f} s",
            worst < TARGET_S,
        )
    )
    report.details += [
        f"{open_count:,} open callbacks ({answer.open_callbacks:,} for agents, the rest IVR), "
        f"{args.closed:,} closed ones, {args.attempts:,} attempts, customers in "
        f"{len(ZONES) + 1} zones; `now` {NOW.isoformat()} (10:00 in Shanghai). Loaded in "
        f"{seconds:.1f} s. One warm-up run (first: {first.open_callbacks:,} callbacks), then "
        f"{args.runs} timed runs of `forecast(uow, now=..., config=...)`, in-process.",
        "",
        f"- p50 {fmt_ms(p50 * 1000)}, max {fmt_ms(worst * 1000)}, "
        f"min {fmt_ms(min(runs) * 1000)}; this process's CPU p50 "
        f"{fmt_ms(percentile(cpu, 50) * 1000)} (the rest is PostgreSQL and waiting)",
        "",
        "| step | p50 | max |",
        "|---|---|---|",
        *[
            f"| {name} | {fmt_ms(percentile(values, 50) * 1000)} | {fmt_ms(max(values) * 1000)} |"
            for name, values in step_runs.items()
        ],
        "",
        f"The answer: AHT {answer.aht_seconds:.0f} s ({answer.aht_samples:,} claims measured), "
        f"{len(answer.windows)} windows, {answer.called_within_horizon:,} called within the "
        f"horizon, {answer.missing_hard_limit:,} miss their hard limit, "
        f"{answer.missing_target_only:,} only their target, {answer.carried_beyond_horizon:,} "
        f"carried beyond; {answer.extra_agent_hours_for_hard_limits:,.1f} more agent-hours for "
        f"the hard limits, {answer.extra_agent_hours_for_targets:,.1f} for every target.",
        "",
        "| window | agents | capacity | demand | assigned | shortfall | +h hard | +h target |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {w.day} {w.window_start:%H:%M} from {w.starts_at:%H:%M}Z | {w.agents} | "
            f"{w.capacity:,} | {w.demand:,} | {w.assigned:,} | {w.shortfall:,} | "
            f"{w.extra_agent_hours_for_hard_limits:,.1f} | {w.extra_agent_hours_for_targets:,.1f} |"
            for w in answer.windows
        ],
    ]
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--callbacks", type=int, default=100_000, help="open agent callbacks")
    p.add_argument("--closed", type=int, default=200_000, help="closed callbacks (history)")
    p.add_argument("--attempts", type=int, default=1_000_000, help="attempts in the history")
    p.add_argument("--runs", type=int, default=10, help="timed runs")
    p.add_argument("--database", default=DATABASE, help="database to create and drop")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return p


def main() -> None:
    print_report(run(parser().parse_args()))


if __name__ == "__main__":
    main()
