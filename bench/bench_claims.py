"""Claims through HTTP with concurrent agents: each agent claims (`POST /api/v1/callbacks/claim`)
and records `answered` on what it got (`POST /api/v1/callbacks/{id}/attempts`), again and again.
Claims per second and the claim's latency, measured by the load generator.

    python -m bench.bench_claims [--agents 50] [--seconds 20] [--callbacks 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import time
from dataclasses import dataclass, field

import uvloop

from api.deps import HOT_PATH_THREADS
from bench.common import (
    ActivitySampler,
    Check,
    CpuSample,
    FunctionSource,
    Matcher,
    Profile,
    Report,
    Server,
    add_common_arguments,
    bench_database,
    cpu_ceiling,
    describe_cpu,
    fmt_latency,
    latency_ms,
    load_queue,
    log,
    make_users,
    open_zone,
    print_report,
)
from bench.rawhttp import Connection, HttpError
from callcenter.callbacks.hotpath import HOT_PATH_CONNECTIONS, HotPath
from callcenter.callbacks.service import claim_next, record_attempt
from callcenter.db import Database
from callcenter.users.models import UserRole

TARGET_CLAIMS_PER_S = 500
TARGET_P99_MS = 150


def profile_groups() -> list[tuple[str, Matcher]]:
    """Where a request's time goes, by the functions on the stack (first match wins)."""
    return [
        ("auth: token → user (`user_for_token`, a transaction of its own)", "user_for_token"),
        ("claim on the hot path (`HotPath.claim`)", "HotPath.claim ("),
        ("attempt on the hot path (`HotPath.record_attempt`)", "HotPath.record_attempt ("),
        ("claim handed to the service (`claim_next`)", "claim_next ("),
        ("attempt handed to the service (`record_attempt`)", "record_attempt ("),
        ("FastAPI: serialize the answer", "serialize_response"),
        ("FastAPI: parse the request, run the dependencies", "solve_dependencies"),
        ("FastAPI / Starlette / anyio: request plumbing, thread hand-offs", "starlette/"),
        ("uvicorn / httptools: HTTP", "uvicorn/"),
        ("anyio worker threads: waiting for and handing over work", "anyio/"),
    ]


def profiled_functions() -> list[FunctionSource]:
    """The service functions whose lines the profile names (read now: call this when the
    code under test is loaded)."""
    return [
        FunctionSource.of(HotPath.claim),
        FunctionSource.of(HotPath.record_attempt),
        FunctionSource.of(HotPath._plain_attempt),
        FunctionSource.of(claim_next),
        FunctionSource.of(record_attempt),
    ]


@dataclass
class Tally:
    measuring_from: float = 0.0
    measuring_until: float = float("inf")
    stop: bool = False
    claim_latencies: list[float] = field(default_factory=list)
    attempt_latencies: list[float] = field(default_factory=list)
    claims: int = 0
    callbacks: int = 0
    empty: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def counts(self, started: float, finished: float) -> bool:
        """Started and finished inside the measured seconds (for latencies)."""
        return started >= self.measuring_from and finished <= self.measuring_until

    def within(self, finished: float) -> bool:
        """Finished inside the measured seconds (for throughput)."""
        return self.measuring_from <= finished <= self.measuring_until


async def agent(host: str, port: int, token: str, tally: Tally) -> None:
    # One keep-alive connection per agent, through the lean client: httpx would cost the load
    # generator ~1 ms of CPU per request, on the cores the server and PostgreSQL share.
    headers = {"authorization": f"Bearer {token}"}
    async with Connection(host, port, headers=headers) as client:
        while not tally.stop:
            started = time.perf_counter()
            try:
                status, body = await client.request("POST", "/api/v1/callbacks/claim")
            except HttpError as exc:
                tally.errors[f"claim {exc}"] += 1
                continue
            finished = time.perf_counter()
            measured = tally.counts(started, finished)
            if status == 204:
                if tally.within(finished):
                    tally.empty += 1
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                tally.errors[f"claim {status}"] += 1
                await asyncio.sleep(0.05)
                continue
            claim = json.loads(body)
            if measured:
                tally.claim_latencies.append(finished - started)
            if tally.within(finished):
                tally.claims += 1
                tally.callbacks += len(claim["callbacks"])
            for callback in claim["callbacks"]:
                started = time.perf_counter()
                try:
                    status, _ = await client.request(
                        "POST",
                        f"/api/v1/callbacks/{callback['id']}/attempts",
                        {"outcome": "answered"},
                    )
                except HttpError as exc:
                    tally.errors[f"attempt {exc}"] += 1
                    continue
                finished = time.perf_counter()
                if status != 201:
                    tally.errors[f"attempt {status}"] += 1
                elif tally.counts(started, finished):
                    tally.attempt_latencies.append(finished - started)


async def measure(
    server: Server, tokens: list[str], args: argparse.Namespace
) -> tuple[Tally, dict[str, float], ActivitySampler, Profile]:
    """Drive the agents: warm-up, the measured seconds (CPU sampled, no profiler), then, if
    asked, more seconds with py-spy attached (not counted). Blocking calls run in threads: a
    stalled loop would let the server's keep-alive timeout close the agents' connections."""
    profile = Profile(server.pid, args.profile)
    extra = args.profile_seconds if profile.enabled else 0.0
    tally = Tally()
    start = time.perf_counter()
    tally.measuring_from = start + args.warmup
    tally.measuring_until = start + args.warmup + args.seconds
    tasks = [asyncio.create_task(agent(server.host, server.port, token, tally)) for token in tokens]
    await asyncio.sleep(args.warmup)
    before = await asyncio.to_thread(CpuSample.take, server.pid, args.database)
    with ActivitySampler(args.database) as activity:
        await asyncio.sleep(tally.measuring_until - time.perf_counter())
    usage = before.until(await asyncio.to_thread(CpuSample.take, server.pid, args.database))
    if extra:
        log(f"profiling the server for {extra:.0f} s more (not counted)")
        await asyncio.to_thread(profile.__enter__)
        await asyncio.sleep(extra)
    tally.stop = True
    await asyncio.gather(*tasks)
    if extra:
        await asyncio.to_thread(profile.__exit__)
    return tally, usage, activity, profile


def pool_shape(database: Database) -> str:
    """How the application's connection pool is set up, in words."""
    pool = database.engine.pool
    size = pool.size() if hasattr(pool, "size") else "?"
    overflow = getattr(pool, "_max_overflow", "?")
    return (
        "the claim and the plain attempt run on the event loop over the hot path's own "
        f"{HOT_PATH_CONNECTIONS} connections (`callcenter/callbacks/hotpath.py`); what they hand "
        f"over runs on {HOT_PATH_THREADS} worker threads (`api/deps.py`) with the engine's "
        f"pool, which keeps {size} connections and opens up to {overflow} more"
    )


def run(args: argparse.Namespace) -> Report:
    report = Report("2. Claims through HTTP with concurrent agents")
    now = dt.datetime.now(dt.UTC)
    zone, closes = open_zone(now, dt.timedelta(seconds=args.warmup + args.seconds + 300))
    customers = max(1, args.callbacks // args.callbacks_per_customer)
    with bench_database(args.database, keep=args.keep) as url:
        loaded_in = load_queue(
            args.database, callbacks=args.callbacks, customers=customers, zone=zone, now=now
        )
        log(f"loaded {args.callbacks:,} callbacks in {loaded_in:.1f} s; customers in {zone}")
        database = Database(url)
        tokens = [token for _, token in make_users(database, "agent", args.agents, UserRole.AGENT)]
        pool = pool_shape(database)
        database.dispose()
        functions = profiled_functions()  # the source lines as the server will load them
        with Server(url) as server:
            log(f"{args.agents} agents: {args.warmup:.0f} s warm-up, {args.seconds:.0f} s measured")
            # uvloop, as the server has: the load generator's own event loop costs less CPU.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                tally, usage, activity, profile = runner.run(measure(server, tokens, args))
            errors = server.errors_in_log()

    rate = tally.claims / args.seconds
    claim = latency_ms(tally.claim_latencies)
    attempt = latency_ms(tally.attempt_latencies)
    p99 = claim.get("p99", float("inf"))
    cost = cpu_ceiling(usage, tally.claims)
    report.checks.append(
        Check(
            f"claims/s, {args.agents} concurrent agents via HTTP (claim + attempt)",
            f"{rate:,.0f} claims/s",
            f"≥ {TARGET_CLAIMS_PER_S} claims/s",
            rate >= TARGET_CLAIMS_PER_S,
        )
    )
    report.checks.append(
        Check(
            f"claim latency p50 / p99, {args.agents} agents",
            f"{claim.get('p50', float('nan')):.0f} ms / {p99:.0f} ms",
            f"p99 ≤ {TARGET_P99_MS} ms",
            p99 <= TARGET_P99_MS,
        )
    )
    report.details += [
        f"{args.agents} agent users, each with its own API token and its own keep-alive "
        "connection (`bench/rawhttp.py`: a lean HTTP/1.1 client, ~0.2 ms of CPU per claim and "
        "attempt where httpx took ~2.5 ms of the cores the server shares), in one uvloop event "
        "loop, against one API worker. Each agent "
        "loops: "
        "`POST /api/v1/callbacks/claim`, then `POST /api/v1/callbacks/{id}/attempts` with "
        "`answered` for every callback the claim took. The queue: "
        f"{args.callbacks:,} pending agent callbacks ({args.callbacks_per_customer} per "
        f"customer) bulk-loaded in {loaded_in:.1f} s; the customers live in `{zone}`, whose "
        f"calling window is open until {closes:%H:%M} UTC (the server runs on the real clock). "
        f"{args.warmup:.0f} s of warm-up, then {args.seconds:.0f} s measured.",
        "",
        f"- **{rate:,.0f} claims/s** ({tally.claims:,} claims answered within the "
        f"{args.seconds:.0f} measured seconds, taking {tally.callbacks:,} callbacks; "
        f"{tally.empty} empty answers; errors: "
        f"{dict(tally.errors) or 'none'})",
        f"- claim latency (requests sent and answered within the measured seconds): "
        f"{fmt_latency(claim)}",
        f"- attempt latency: {fmt_latency(attempt)}",
        f"- CPU: {describe_cpu(usage)}. The load generator shares the 2 cores with the server "
        "and PostgreSQL, and its latencies include its own event-loop delays.",
        f"- PostgreSQL, {activity.describe()}.",
        f"- connections: {pool}; PostgreSQL sessions opened during the measured seconds: "
        f"{usage['pg_sessions_opened']:.0f}.",
        f"- CPU per claim (with its attempts): API server {cost.get('server_ms', 0):.2f} ms, "
        f"PostgreSQL {cost.get('postgres_ms', 0):.2f} ms, load generator "
        f"{cost.get('client_ms', 0):.2f} ms. Ceiling with the machine to itself (one worker is "
        f"one core at most): **~{cost.get('ceiling', 0):,.0f} claims/s**.",
    ]
    if errors:
        report.details.append(f"- server log errors: {errors[:5]}")
    summary = profile.summary(groups=profile_groups(), functions=functions)
    if rate < TARGET_CLAIMS_PER_S or p99 > TARGET_P99_MS:
        cycle = args.agents / rate * 1000 if rate else float("inf")
        busy = usage["server_cpu_s"] / usage["wall_s"]
        queueing = (
            f"the worker was busy {busy:.2f} cores' worth, so the latency is queueing behind a "
            "saturated worker"
            if busy >= 0.8
            else f"the worker used only {busy:.2f} cores: other processes held the CPU"
        )
        report.findings.append(
            f"Claims run at {rate:,.0f}/s with p99 {p99:,.0f} ms against {TARGET_CLAIMS_PER_S}/s "
            f"and {TARGET_P99_MS} ms. A claim cycle (the claim and its attempt, two requests) "
            f"costs the API server {cost.get('server_ms', 0):.1f} ms of CPU, so "
            f"one worker tops out near {cost.get('ceiling', 0):,.0f} claims/s. With "
            f"{args.agents} agents each waits ~{cycle:,.0f} ms per cycle; {queueing}."
            + (
                f" PostgreSQL sessions opened during the {args.seconds:.0f} measured seconds: "
                f"{usage['pg_sessions_opened']:.0f} ({pool})."
                if usage["pg_sessions_opened"] >= 10
                else ""
            )
            + (
                f" Stages: {profile.top('stages', 5)}. Lines of `HotPath.claim`: "
                f"{profile.top_lines('HotPath.claim', 3)}. Libraries: "
                f"{profile.top('libraries', 4)}."
                if summary
                else ""
            )
        )
    if summary:
        report.details += [
            "",
            "### Where the server's time goes (py-spy)",
            "",
            f"{args.profile_seconds:.0f} more seconds of the same load right after the measured "
            "ones, with py-spy attached (the measured seconds ran without it).",
            "",
            summary,
        ]
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    p.add_argument("--callbacks", type=int, default=60_000, help="pending callbacks loaded")
    p.add_argument("--callbacks-per-customer", type=int, default=1)
    p.add_argument(
        "--profile-seconds", type=float, default=10.0, help="seconds of the profiled run"
    )
    add_common_arguments(p)
    return p


def main() -> None:
    print_report(run(parser().parse_args()))


if __name__ == "__main__":
    main()
