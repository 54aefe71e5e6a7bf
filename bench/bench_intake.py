"""Batch intake through HTTP: events/s of `POST /api/v1/events/batch`, against a bare COPY of
the same callback rows.

    python -m bench.bench_intake [--events 100000] [--batch 1000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import random
import time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from bench.common import (
    ActivitySampler,
    Check,
    CpuSample,
    FunctionSource,
    Profile,
    Report,
    Server,
    add_common_arguments,
    bench_database,
    cpu_ceiling,
    describe_cpu,
    dsn,
    fmt_latency,
    latency_ms,
    log,
    make_users,
    print_report,
    process_cpu,
)
from callcenter.callbacks.service import ingest_events
from callcenter.db import Database
from callcenter.users.models import UserRole

TARGET_EVENTS_PER_S = 5000

# Every event type, weighted roughly like a day of the order system: mostly replies
# (CB-1..CB-3), some cancellations (CB-4) and proactive-contact triggers (CB-7).
EVENT_MIX = {
    "install_completed": 30,
    "repair_replied": 20,
    "complaint_replied": 10,
    "cancellation": 10,
    "install_accepted": 12,
    "fault_accepted": 12,
    "complaint_accepted": 6,
}
SHANGHAI = ZoneInfo("Asia/Shanghai")

PROFILE_GROUPS = [
    ("auth: token lookup", "get_current_user"),
    ("read + parse request JSON", "get_body"),
    ("validate events (pydantic)", "validate_python"),
    ("normalize phones (phonenumbers)", "normalize_phone"),
    ("hash event bodies", "_hash ("),
    ("compute deadlines", "deadlines_for"),
    ("SQL insert events", "_claim_event_ids"),
    ("SQL upsert customers", "_upsert_customers"),
    ("SQL closing-event lookup", "_orders_with_closing_events"),
    ("SQL CB-7 cancel update", "_cancel_closed_contacts"),
    ("SQL insert callbacks + update events", "_create_callbacks"),
    ("SQL load the callbacks for the answer (ORM)", "callback_views"),
    ("SQL commit", "commit ("),
    ("build results (pydantic models)", "ingest_events"),
    ("serialize the answer", "serialize_response"),
    ("uvicorn / starlette / anyio plumbing", "uvicorn"),
]


def make_events(
    count: int, *, customers: int, now: dt.datetime, tag: str, seed: int
) -> list[dict[str, Any]]:
    """`count` valid, distinct events; customers drawn from a pool of `customers`, so that most
    of them come back several times (with the same name and phone)."""
    rng = random.Random(seed)
    kinds = list(EVENT_MIX)
    weights = list(EVENT_MIX.values())
    events = []
    for i in range(count):
        c = rng.randrange(customers)
        occurred = now - dt.timedelta(seconds=rng.uniform(60, 20 * 3600))
        events.append(
            {
                "event_id": f"{tag}-{i:07d}",
                "type": rng.choices(kinds, weights)[0],
                "occurred_at": occurred.astimezone(SHANGHAI).isoformat(timespec="seconds"),
                "order_id": f"{tag}-ORD-{i:07d}",
                "customer": {"id": f"BC-{c:06d}", "name": f"客户{c}", "phone": f"138{c:08d}"},
            }
        )
    return events


def batches(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [json.dumps(events[i : i + size]).encode() for i in range(0, len(events), size)]


async def send(
    base_url: str, token: str, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], collections.Counter[str]]:
    """Post every body over `concurrency` connections; (seconds, latencies, result counts)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    pending = collections.deque(bodies)
    latencies: list[float] = []
    totals: collections.Counter[str] = collections.Counter()
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, headers=headers, timeout=600
    ) as client:

        async def worker() -> None:
            while pending:
                body = pending.popleft()
                started = time.perf_counter()
                response = await client.post("/api/v1/events/batch", content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"batch refused: {response.status_code} {response.text}")
                data = response.json()
                for key in ("created", "duplicate", "conflict", "invalid"):
                    totals[key] += data[key]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, totals


def callback_columns(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'callbacks' ORDER BY ordinal_position"
    ).fetchall()
    return [row[0] for row in rows]


def copy_rate(database: str, tag: str, repeats: int = 5) -> dict[str, Any]:
    """COPY the callback rows the intake made into a scratch copy of the callbacks table:
    a temporary table without indexes (LIKE ... INCLUDING DEFAULTS), and a logged table with
    all of the callbacks table's indexes (LIKE ... INCLUDING ALL). For each, the best rows/s of
    `repeats` runs, and the least CPU per row (this process and its PostgreSQL backend), which
    other load on the machine hardly changes."""
    with psycopg.connect(dsn(database)) as conn:
        columns = callback_columns(conn)
        names = ", ".join(columns)
        rows = conn.execute(
            f"SELECT {names} FROM callbacks WHERE event_id LIKE %s ORDER BY id", (f"{tag}-%",)
        ).fetchall()
        conn.execute("CREATE TEMP TABLE callbacks_copy (LIKE callbacks INCLUDING DEFAULTS)")
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench_scratch")
        conn.execute("CREATE TABLE bench_scratch.callbacks (LIKE public.callbacks INCLUDING ALL)")
        conn.commit()
        backend = conn.info.backend_pid
        results: dict[str, Any] = {"rows": len(rows)}
        for label, table in (
            ("temp, no indexes", "callbacks_copy"),
            ("logged, with indexes", "bench_scratch.callbacks"),
        ):
            seconds, cpu = [], []
            for _ in range(repeats):
                conn.execute(f"TRUNCATE {table}")
                conn.commit()
                cpu_before = time.process_time() + process_cpu(backend)
                started = time.perf_counter()
                with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                conn.commit()
                seconds.append(time.perf_counter() - started)
                cpu.append(time.process_time() + process_cpu(backend) - cpu_before)
            results[label] = len(rows) / min(seconds)
            results[f"{label} cpu_ms_per_1000"] = min(cpu) / len(rows) * 1_000_000
        conn.execute("DROP SCHEMA bench_scratch CASCADE")
        conn.commit()
    return results


def run(args: argparse.Namespace) -> Report:
    report = Report("1. Batch intake through HTTP")
    now = dt.datetime.now(dt.UTC)
    customers = max(1, int(args.events * args.customers_per_event))
    tag = "bm"
    events = make_events(args.events, customers=customers, now=now, tag=tag, seed=1)
    warmup = make_events(
        args.batch * args.warmup_batches, customers=customers, now=now, tag="warm", seed=2
    )
    kinds = collections.Counter(e["type"] for e in events)
    distinct_customers = len({e["customer"]["id"] for e in events})
    bodies = batches(events, args.batch)
    with bench_database(args.database, keep=args.keep) as url:
        database = Database(url)
        [(_, token)] = make_users(database, "ordersys", 1, UserRole.SYSTEM)
        database.dispose()
        functions = [FunctionSource.of(ingest_events)]  # the lines as the server will load them
        with Server(url) as server:
            log(f"warming up with {len(warmup)} events")
            asyncio.run(send(server.base_url, token, batches(warmup, args.batch), 1))
            log(f"posting {len(events)} events in {len(bodies)} batches, {args.concurrency} conns")
            before = CpuSample.take(server.pid, args.database)
            with ActivitySampler(args.database) as activity:
                seconds, latencies, totals = asyncio.run(
                    send(server.base_url, token, bodies, args.concurrency)
                )
            usage = before.until(CpuSample.take(server.pid, args.database))
            profile = Profile(server.pid, args.profile)
            if profile.enabled:
                extra = make_events(
                    args.profile_events, customers=customers, now=now, tag="prof", seed=3
                )
                log(f"profiling the server over {len(extra)} more events (not counted)")
                with profile:
                    asyncio.run(
                        send(server.base_url, token, batches(extra, args.batch), args.concurrency)
                    )
            errors = server.errors_in_log()
        if totals["created"] != len(events):
            raise RuntimeError(f"expected {len(events)} created, got {dict(totals)}: {errors}")
        rate = len(events) / seconds
        cost = cpu_ceiling(usage, len(events))
        log(f"intake: {rate:,.0f} events/s; now the COPY reference")
        copy = copy_rate(args.database, tag)

    report.checks.append(
        Check(
            f"intake, {args.events:,} events via HTTP ({args.batch}/request, "
            f"{args.concurrency} connections)",
            f"{rate:,.0f} events/s",
            f"≥ {TARGET_EVENTS_PER_S:,} events/s",
            rate >= TARGET_EVENTS_PER_S,
        )
    )
    bare = copy["temp, no indexes"]
    per_1000 = copy["temp, no indexes cpu_ms_per_1000"]
    report.checks.append(
        Check(
            "intake vs bare COPY of the same callback rows",
            f"COPY is {bare / rate:.0f}× faster ({bare:,.0f} rows/s); HTTP intake costs "
            f"{(cost['server_ms'] + cost['postgres_ms']) * 1000 / per_1000:.0f}× its CPU per row",
            "reported",
            None,
        )
    )
    per_batch = latency_ms(latencies)
    report.details += [
        f"{args.events:,} distinct, valid events ({dict(sorted(kinds.items()))}), for "
        f"{distinct_customers:,} customers (pool of {customers:,}: most customers come back), "
        f"posted in batches of {args.batch} over {args.concurrency} concurrent connections "
        f"(httpx.AsyncClient) to one API worker (`callcenter serve --no-scheduler --workers 1`); "
        f"{args.warmup_batches} warm-up batch(es) first, not counted.",
        "",
        f"- **{rate:,.0f} events/s** ({seconds:.1f} s for {args.events:,} events; every event "
        f"`created`: {dict(totals)})",
        f"- per batch request: {fmt_latency(per_batch)}",
        f"- CPU: {describe_cpu(usage)}. The load generator shares the 2 cores with the server "
        "and PostgreSQL (request bodies are serialized before the clock starts; answers are "
        "parsed inside it).",
        f"- PostgreSQL, {activity.describe()}.",
        f"- CPU per 1,000 events: API server {cost['server_ms'] * 1000:,.0f} ms, PostgreSQL "
        f"{cost['postgres_ms'] * 1000:,.0f} ms, load generator {cost['client_ms'] * 1000:,.0f} "
        f"ms. Ceiling with the machine to itself (one worker is one core at most): "
        f"**~{cost['ceiling']:,.0f} events/s**.",
        f"- bare COPY (psycopg `cursor.copy`, `write_row`, best of 5) of the same "
        f"{copy['rows']:,} callback rows: {copy['temp, no indexes']:,.0f} rows/s and "
        f"{per_1000:,.0f} ms of CPU per 1,000 rows (this process and its PostgreSQL backend) "
        "into a temporary `LIKE callbacks INCLUDING DEFAULTS` table; "
        f"{copy['logged, with indexes']:,.0f} rows/s and "
        f"{copy['logged, with indexes cpu_ms_per_1000']:,.0f} ms per 1,000 rows into a logged "
        "`LIKE callbacks INCLUDING ALL` table with the callbacks table's indexes. "
        f"HTTP intake runs at 1/{bare / rate:.0f} of the first's rate and costs "
        f"{(cost['server_ms'] + cost['postgres_ms']) * 1000 / per_1000:.0f}× its CPU per row "
        "(API server and PostgreSQL).",
    ]
    if errors:
        report.details.append(f"- server log errors: {errors[:5]}")
    summary = profile.summary(groups=PROFILE_GROUPS, functions=functions)
    if rate < TARGET_EVENTS_PER_S:
        report.findings.append(
            f"Intake runs at {rate:,.0f} events/s against {TARGET_EVENTS_PER_S:,}. The API server "
            f"spends {cost['server_ms'] * 1000:,.0f} ms of CPU per 1,000 events (PostgreSQL "
            f"{cost['postgres_ms'] * 1000:,.0f} ms), and one worker is one core at most, so it "
            f"tops out near {cost['ceiling']:,.0f} events/s even with the machine to itself."
            + (
                f" Meanwhile {activity.share('active, waiting: Lock'):.1f} of the "
                f"{args.concurrency} batches' backends were, on average, waiting for another "
                f"batch's row locks, in {activity.waiting_in()}: concurrent batches share "
                "customers, and a batch holds the rows it wrote until it commits, seconds later."
                if activity.share("active, waiting: Lock") >= 0.5
                else ""
            )
            + (
                f" Stages: {profile.top('stages', 4)}. Libraries: {profile.top('libraries', 4)}."
                if summary
                else ""
            )
        )
    if summary:
        report.details += [
            "",
            "### Where the server's time goes (py-spy)",
            "",
            f"A separate pass of {args.profile_events:,} more events, same server, same "
            "settings, with py-spy attached (the measured pass above ran without it).",
            "",
            summary,
        ]
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000, help="events per request (max 1000)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent client connections")
    p.add_argument(
        "--customers-per-event",
        type=float,
        default=0.25,
        help="size of the customer pool relative to the events (0.25: ~4 events each)",
    )
    p.add_argument("--warmup-batches", type=int, default=2)
    p.add_argument("--profile-events", type=int, default=20_000, help="events of the profiled pass")
    add_common_arguments(p)
    return p


def main() -> None:
    print_report(run(parser().parse_args()))


if __name__ == "__main__":
    main()
