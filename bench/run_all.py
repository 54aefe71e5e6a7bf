"""Run every benchmark of the callback queue and rewrite bench/RESULTS.md.

    python -m bench.run_all                 # everything, full sizes (about 6-10 minutes)
    python -m bench.run_all --quick         # smaller sizes, to try it out
    python -m bench.run_all --only intake   # one of: intake, claims, claim-cost, forecast,
                                            # ivr, console, reports

Each benchmark creates, migrates and drops its own PostgreSQL database (CALLCENTER_BENCH_DB,
default callcenter_bench). With py-spy installed (`pip install py-spy`, not a project
dependency) the API server is profiled in a separate pass after each measured one, unless
--no-profile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import callcenter
from bench import (
    bench_claim_cost,
    bench_claims,
    bench_console,
    bench_floor,
    bench_forecast,
    bench_intake,
    bench_ivr,
    bench_reports,
)
from bench.common import PROJECT, Check, Profile, Report, checks_table, log, machine_info

STEPS: dict[str, ModuleType] = {
    "intake": bench_intake,
    "claims": bench_claims,
    "claim-cost": bench_claim_cost,
    "forecast": bench_forecast,
    "ivr": bench_ivr,
    "console": bench_console,
    "reports": bench_reports,
    "floor": bench_floor,
}
QUICK: dict[str, Any] = {
    "events": 10_000,
    "profile_events": 5_000,
    "seconds": 8.0,
    "warmup": 2.0,
    "profile_seconds": 5.0,
    "callbacks": 20_000,
    "sizes": [10_000, 100_000],
    "runs": 300,
}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def step_args(module: ModuleType, overrides: dict[str, Any]) -> argparse.Namespace:
    """The module's own defaults, with the values given to run_all."""
    args: argparse.Namespace = module.parser().parse_args([])
    for name, value in overrides.items():
        if value is not None and hasattr(args, name):
            setattr(args, name, value)
    return args


def code_version() -> str:
    """Which application code ran: the commit, and whether it has uncommitted changes
    (CALLCENTER_BENCH_CODE, when set, says it instead)."""
    if os.environ.get("CALLCENTER_BENCH_CODE"):
        return os.environ["CALLCENTER_BENCH_CODE"]
    where = Path(callcenter.__file__).resolve()
    if PROJECT not in where.parents:
        return "application code imported from outside this checkout"
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "callcenter", "api", "alembic"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "this checkout (git not available)"
    state = "with uncommitted changes" if changed else "no uncommitted changes"
    return f"this checkout, commit {commit} ({state} in callcenter/, api/, alembic/)"


def render(reports: list[Report], machine: dict[str, str], code: str, command: str) -> str:
    checks = [check for report in reports for check in report.checks]
    findings = [finding for report in reports for finding in report.findings]
    lines = [
        "# Benchmarks of the callback queue",
        "",
        f"Measured {machine['date']} on {machine['cores']} cores, PostgreSQL "
        f"{machine['postgresql'].split()[0]}, one API worker. Rewritten by `{command}`; "
        "benchmarks are never part of the test suite.",
        "",
        checks_table(checks),
        "",
    ]
    if findings:
        lines += ["## Where the time goes", ""]
        lines += [f"- {finding}" for finding in findings]
        lines += [""]
    lines += [
        "## How it was measured",
        "",
        "- Each benchmark creates its own PostgreSQL database, migrates it with "
        "`callcenter db upgrade`, and drops it at the end.",
        "- HTTP benchmarks start `callcenter serve --no-scheduler --workers 1` as a subprocess "
        "on a free localhost port (uvicorn with uvloop and httptools). The intake endpoints hand "
        "their database work to FastAPI's thread pool once per request, the claim and the "
        "attempt to the hot path's own few threads (`api/deps.py`); their dependencies run on "
        "the event loop.",
        "- The load generator runs in the benchmark's own process and shares the cores with the "
        "API server and PostgreSQL: httpx for intake (100 large requests), `bench/rawhttp.py` "
        "(a lean HTTP/1.1 client on uvloop) for the claims and the floor.",
        "- CPU figures come from /proc: the API server process, the load generator, the "
        "PostgreSQL backends of the benchmark's database (plus WAL writer and checkpointer), "
        "and whatever else ran on the machine meanwhile. The *ceiling* is the rate the "
        "measured CPU cost per operation allows with the machine to itself: one worker is one "
        "core at most (the GIL), and all three share the cores.",
        "- Profiles are py-spy `--gil` samples (the Python work that holds the interpreter), "
        "taken in a separate pass after the measured one, so they do not slow the measured "
        "numbers down.",
        "",
        "## The machine",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        f"- code: {code}",
        "",
    ]
    for report in reports:
        lines += [report.markdown(), ""]
    lines += [
        "## Running them",
        "",
        "```sh",
        "python -m bench.run_all              # everything; rewrites bench/RESULTS.md",
        "python -m bench.run_all --quick      # smaller sizes",
        "python -m bench.bench_intake --events 20000 --concurrency 4",
        "python -m bench.bench_claims --agents 50 --seconds 20",
        "python -m bench.bench_claim_cost --sizes 10000 1000000 --runs 2000",
        "python -m bench.bench_floor          # what a request costs before any work of ours",
        "```",
        "",
        "Add `--profile` to a single benchmark to profile it (needs `pip install py-spy`).",
        "",
    ]
    return "\n".join(lines)


# Sections that benchmarks outside run_all write into the same file (the ten-minute soak,
# `python -m bench.bench_soak`): carried over as they are when run_all rewrites the rest.
KEPT_SECTIONS = ("## Soak",)


def kept_sections(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_text()
    starts = sorted(i for i in (text.find(head) for head in KEPT_SECTIONS) if i >= 0)
    if not starts:
        return ""
    kept = text[starts[0] :]
    # The kept sections run to the end of the file: bench_soak appends its section last.
    return "\n" + kept.rstrip() + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    p.add_argument("--only", choices=list(STEPS), action="append", help="run only these")
    p.add_argument("--no-profile", action="store_true", help="do not profile with py-spy")
    p.add_argument("--output", type=Path, default=RESULTS, help="the results file to write")
    p.add_argument("--database", default=None, help="database to create and drop")
    p.add_argument("--events", type=int, help="intake: events to post")
    p.add_argument("--concurrency", type=int, help="intake: client connections")
    p.add_argument("--agents", type=int, help="claims: concurrent agents")
    p.add_argument("--seconds", type=float, help="claims: measured seconds")
    p.add_argument("--callbacks", type=int, help="claims: pending callbacks loaded")
    p.add_argument("--sizes", type=int, nargs="+", help="claim cost: queue sizes")
    p.add_argument("--runs", type=int, help="claim cost: timed runs of each variant")
    return p


def main() -> None:
    args = parser().parse_args()
    overrides: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("database", "events", "concurrency", "agents", "seconds", "callbacks"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    for name in ("sizes", "runs"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    overrides["profile"] = not args.no_profile and Profile(0, True).enabled
    started = time.monotonic()
    machine = machine_info()
    code_before = code_version()
    reports: list[Report] = []
    for name, module in STEPS.items():
        if args.only and name not in args.only:
            continue
        log(f"=== {name}")
        try:
            reports.append(module.run(step_args(module, overrides)))
        except Exception as exc:  # one broken benchmark must not hide the others' results
            log(f"{name} failed: {exc!r}")
            failed = Report(f"{name}: failed")
            failed.checks.append(Check(f"{name} benchmark", f"failed: {exc}", "runs", False))
            failed.details += ["```", traceback.format_exc().strip(), "```"]
            reports.append(failed)
    command = "python -m bench.run_all" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    code_after = code_version()
    code = code_before
    if code_after != code_before:
        code = f"at the start, {code_before}; at the end, {code_after} (changed meanwhile)"
    text = render(reports, machine, code, command)
    args.output.write_text(text + kept_sections(args.output))
    log(f"wrote {args.output.name} after {time.monotonic() - started:.0f} s")
    print(checks_table([check for report in reports for check in report.checks]))


if __name__ == "__main__":
    main()
