"""What a request costs one uvicorn worker before any work of ours: the floor under the
claims benchmark. Three minimal apps (`bench/floor_app.py`) answer `POST /claim` with a body the
size of a claim's answer, to 50 keep-alive connections (the claims benchmark's load generator):
a Starlette route; a FastAPI endpoint with a bearer dependency and a response model; and the same
handing its work to the hot path's threads, as the claim and the attempt do. The server's CPU per
request, from /proc. No database.

    python -m bench.bench_floor [--connections 50] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from bench.common import Check, Report, Server, log, print_report, process_cpu
from bench.rawhttp import Connection, HttpError

APPS = {
    "starlette_app": "Starlette route",
    "fastapi_app": "FastAPI endpoint (bearer dependency, response model)",
    "fastapi_thread_app": "FastAPI endpoint, work handed to the hot path's threads",
}


async def drive(
    port: int, connections: int, warmup: float, seconds: float, pid: int
) -> tuple[int, float]:
    """Requests answered and server CPU seconds within the measured seconds."""
    done = 0
    measuring = False
    stop = False

    async def client() -> None:
        nonlocal done
        async with Connection("127.0.0.1", port, headers={"authorization": "Bearer x"}) as conn:
            while not stop:
                try:
                    status, _ = await conn.request("POST", "/claim")
                except HttpError:
                    continue
                if status == 200 and measuring:
                    done += 1

    tasks = [asyncio.create_task(client()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    measuring = True
    cpu = process_cpu(pid)
    await asyncio.sleep(seconds)
    measuring = False
    cpu = process_cpu(pid) - cpu
    stop = True
    await asyncio.gather(*tasks)
    return done, cpu


def measure(app: str, args: argparse.Namespace) -> tuple[float, float]:
    """Requests per second and server CPU milliseconds per request for `bench.floor_app:app`,
    served as `callcenter serve` serves the product."""
    with (
        Server(app=f"bench.floor_app:{app}") as server,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        done, cpu = runner.run(
            drive(server.port, args.connections, args.warmup, args.seconds, server.pid)
        )
    return done / args.seconds, cpu / max(done, 1) * 1000


def run(args: argparse.Namespace) -> Report:
    report = Report("8. The floor: what a request costs the server before any work of ours")
    rows = []
    for app, label in APPS.items():
        rate, cost = measure(app, args)
        log(f"{label}: {rate:,.0f} requests/s, {cost:.3f} ms of server CPU per request")
        rows.append((label, rate, cost))
        report.checks.append(
            Check(
                f"floor: {label}, server CPU per request (information)",
                f"{cost:.3f} ms ({rate:,.0f} requests/s)",
                "—",
                None,
            )
        )
    threaded = rows[-1][2]
    report.details += [
        f"Three minimal apps in `bench/floor_app.py`, each served by one uvicorn worker as "
        "`callcenter serve` serves the product (uvloop, httptools, proxy headers, access log), "
        f"answer `POST /claim` with a fixed body the size of a claim's answer to "
        f"{args.connections} keep-alive connections (`bench/rawhttp.py`), "
        f"{args.warmup:.0f} s of warm-up, then {args.seconds:.0f} s measured. No database.",
        "",
        "| app | requests/s | server CPU per request |",
        "|---|---|---|",
        *[f"| {label} | {rate:,.0f} | {cost:.3f} ms |" for label, rate, cost in rows],
        "",
        f"A claim and its attempt are two such requests: **{2 * threaded:.2f} ms** of the "
        "server's CPU per claim before any work of ours, so one worker can never pass "
        f"~{1000 / (2 * threaded):,.0f} claims/s with FastAPI and the hot path's threads, "
        f"whatever the claim itself costs. 500 claims/s leaves "
        f"{2.0 - 2 * threaded:.2f} ms per claim and attempt for the two transactions, their "
        "statements and their answers.",
    ]
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per app")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    return p


def main() -> None:
    print_report(run(parser().parse_args()))


if __name__ == "__main__":
    main()
