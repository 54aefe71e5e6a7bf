"""The console's pages, rendered server-side with 100,000 callbacks in PostgreSQL.

    python -m bench.bench_console [--callbacks 100000] [--runs 200] [--keep]

Builds a scratch database (`callcenter_bench_console`, created and dropped; the schema from
the models' metadata) and loads 100,000 pending agent callbacks (about a third of them
overdue or at risk), 200 live leases, 2,000 failed callbacks and 500 open work orders. Then
signs an agent and a supervisor in and times, in-process through the ASGI app (no network),
the desk without a call, the desk during a call (script, history, call-back picker), the
supervisor's board and the board's refresh fragment.
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
    load_queue,
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
from callcenter.users.models import UserRole
from callcenter.users.service import create_user

DATABASE = "callcenter_bench_console"
TARGET_MS = 100.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI).astimezone(dt.UTC)
PASSWORD = "bench-password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def shape(database: str, leases: int, failed: int, orders: int, agent_id: int) -> None:
    """Some leases held by others, failed callbacks and open work orders, for the board."""
    with psycopg.connect(dsn(database)) as conn:
        conn.execute(
            """UPDATE callbacks SET status = 'claimed', claim_id = 'bench-' || id,
               claimed_by_id = %s, claimed_at = %s, lease_expires_at = %s
               WHERE id IN (SELECT id FROM callbacks ORDER BY id DESC LIMIT %s)""",
            (agent_id, NOW, NOW + dt.timedelta(minutes=10), leases),
        )
        conn.execute(
            """UPDATE callbacks SET status = 'failed', attempt_count = 3, closed_at = %s,
               close_reason = 'not reached after 3 attempts (no_answer)'
               WHERE id IN (SELECT id FROM callbacks WHERE status = 'pending'
                            ORDER BY id LIMIT %s)""",
            (NOW, failed),
        )
        conn.execute(
            """INSERT INTO work_orders (kind, status, callback_id, customer_id, subject, team,
                                        created_at, due_at)
               SELECT 'follow_up', 'open', id, customer_id, 'bench follow-up', 'team-a',
                      %s, %s
               FROM callbacks ORDER BY id LIMIT %s""",
            (NOW, NOW + dt.timedelta(minutes=15), orders),
        )
        conn.commit()
    vacuum_analyze(database, "callbacks", "work_orders")


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


def timed(
    client: TestClient,
    path: str,
    runs: int,
    before: Any = None,
    **headers: str,
) -> list[float]:
    client.get(path, headers=headers)  # warm-up: templates compiled, statements cached
    values = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        values.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    return values


def run(args: argparse.Namespace) -> Report:
    report = Report(f"Console pages, server-side, with {args.callbacks:,} callbacks")
    log(f"creating database {args.database}")
    create_database(args.database)
    database: Database | None = None
    results: dict[str, list[float]] = {}
    try:
        database = Database(sqlalchemy_url(args.database))
        metadata.create_all(database.engine)
        agent = create_user(
            database.uow(),
            username="agent1",
            role=UserRole.AGENT,
            now=NOW,
            password=PASSWORD,
            employee_number="10001",
        )
        create_user(
            database.uow(), username="holder", role=UserRole.AGENT, now=NOW, password=PASSWORD
        )
        create_user(
            database.uow(), username="sup1", role=UserRole.SUPERVISOR, now=NOW, password=PASSWORD
        )
        log(f"loading {args.callbacks:,} callbacks")
        seconds = load_queue(
            args.database,
            callbacks=args.callbacks,
            customers=args.callbacks // 2,
            zone="Asia/Shanghai",
            now=NOW,
        )
        assert agent.id is not None
        shape(args.database, leases=200, failed=2_000, orders=500, agent_id=agent.id + 1)
        log(f"loaded in {seconds:.1f} s")
        settings = Settings(database_url=sqlalchemy_url(args.database), scheduler_enabled=False)
        clock = FixedClock(NOW)
        app = create_app(settings, database=database, clock=clock, start_scheduler=False)
        with TestClient(app) as agent_client, TestClient(app) as supervisor_client:
            # The app synced the shipped scripts at start: give every callback its script.
            with psycopg.connect(dsn(args.database)) as conn:
                conn.execute(
                    """UPDATE callbacks SET script_version_id = (
                           SELECT max(id) FROM script_versions s
                           WHERE s.callback_type = callbacks.type)"""
                )
                conn.commit()
            # As autovacuum would after such a bulk update: the counts read the index alone.
            vacuum_analyze(args.database, "callbacks")
            sign_in(agent_client, "agent1")
            sign_in(supervisor_client, "sup1")
            results["desk, no call"] = timed(agent_client, "/console/desk", args.runs)
            page = agent_client.get("/console/desk").text
            token = _CSRF.search(page)
            assert token
            taken = agent_client.post(
                "/console/desk/claim", data={"csrf_token": token.group(1)}, follow_redirects=False
            )
            assert taken.headers["location"] == "/console/desk", "nothing was claimed"
            results["desk, during a call"] = timed(agent_client, "/console/desk", args.runs)
            results["supervisor's board"] = timed(supervisor_client, "/console/board", args.runs)
            # The board shares its count of the open queue for 10 s; with the clock moved on
            # 11 s before each render, every render counts afresh (the worst case).
            results["supervisor's board, queue counted afresh each time"] = timed(
                supervisor_client,
                "/console/board",
                args.runs,
                before=lambda: clock.advance(dt.timedelta(seconds=11)),
            )
            clock.set(NOW)
            results["board refresh (fragment)"] = timed(
                supervisor_client, "/console/board/panels", args.runs, **{"HX-Request": "true"}
            )
    finally:
        if database is not None:
            database.dispose()
        if not args.keep:
            log(f"dropping database {args.database}")
            drop_database(args.database)

    for name, values in results.items():
        p99 = percentile(values, 99) * 1000
        report.checks.append(
            Check(
                f"console: {name}, p50 / p99 ({args.runs} renders)",
                f"{fmt_ms(percentile(values, 50) * 1000)} / {fmt_ms(p99)}",
                f"< {TARGET_MS:.0f} ms",
                p99 < TARGET_MS,
            )
        )
    report.details += [
        f"{args.callbacks:,} pending agent callbacks for {args.callbacks // 2:,} customers "
        "(anchors over the last 36 hours, so many are at risk or overdue), 200 leases held, "
        "2,000 failed, 500 open work orders; loaded in "
        f"{seconds:.1f} s. Each page is rendered once to warm up, then {args.runs} times "
        "through the ASGI app in-process (FastAPI's TestClient: the server's whole work — "
        "session check, queries, template — without a network).",
    ]
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--callbacks", type=int, default=100_000, help="pending callbacks")
    p.add_argument("--runs", type=int, default=200, help="timed renders of each page")
    p.add_argument("--database", default=DATABASE, help="database to create and drop")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return p


def main(argv: Any = None) -> None:
    print_report(run(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
