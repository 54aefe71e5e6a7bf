"""The claim's cost with a small and a large queue, and the service against its bare SQL.

For each queue size the pending callbacks are bulk-loaded, then, each run rolled back so that
the queue stays the same:

- bare SQL: the claim's SELECT (the compiled `claim_statement`) and the UPDATE that
  `claim_next` runs, captured from the service itself and replayed with psycopg;
- the service: `claim_next` through a `UnitOfWork` whose commit only flushes, so that leaving
  the unit of work rolls the transaction back.

    python -m bench.bench_claim_cost [--sizes 10000 1000000] [--runs 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import os
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.common import (
    Check,
    FunctionSource,
    Profile,
    Report,
    add_common_arguments,
    bench_database,
    dsn,
    fmt_latency,
    latency_ms,
    load_queue,
    log,
    make_users,
    open_zone,
    postgres_state,
    print_report,
    process_cpu,
)
from callcenter.callbacks import hotpath
from callcenter.callbacks.service import claim_next, claim_statement
from callcenter.config import RulesConfig
from callcenter.db import Database, UnitOfWork
from callcenter.users.models import User, UserRole
from callcenter.users.service import user_for_token

TARGET_GROWTH = 1.5  # the claim at the large size, at most this many times the small one
TARGET_SERVICE_RATIO = 2.0  # the service, at most this many times its bare SQL
CONFIG = RulesConfig()
# The lines of `claim_next` as this process loaded them (others may be editing the file).
CLAIM_NEXT_SOURCE = FunctionSource.of(claim_next)
QUEUE_INDEX = "ix_callbacks_queue"
PREPARED = "bare SELECT + UPDATE, prepared once (PREPARE / EXECUTE)"


class RollbackUnitOfWork(UnitOfWork):
    """The service's whole transaction, ended by a rollback: `commit()` only flushes, and
    leaving the `with` block closes the session, which rolls back."""

    def commit(self) -> None:
        self.session.flush()


Statement = tuple[str, dict[str, Any]]


class Recorder:
    """The statements the application sends to psycopg, with the time each one takes."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[Statement] = []
        self.seconds: list[float] = []
        self._started = 0.0

    def __enter__(self) -> Recorder:
        sa.event.listen(self.engine, "before_cursor_execute", self._before)
        sa.event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        self.statements.append((statement, dict(params) if params else {}))
        self._started = time.perf_counter()

    def _after(self, *args: Any) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def label(statement: str) -> str:
    text = " ".join(statement.split())
    if "UPDATE OF customers SKIP LOCKED" in text:  # FOR NO KEY UPDATE (or FOR UPDATE)
        return "claim SELECT (`claim_statement`)"
    if text.startswith("UPDATE callbacks SET status"):
        return "claim UPDATE"
    if text.startswith("SELECT known_zones.name"):
        return "SELECT known zones"
    if "assigned_agent_id" in text and "LIMIT" in text and text.startswith("SELECT callbacks.id"):
        return "SELECT: any callbacks assigned to this agent?"
    if text.startswith("SELECT callbacks.id") and "LEFT OUTER JOIN users" in text:
        return "SELECT the claimed callbacks' views (ORM: callback, customer, username)"
    if text.startswith("SELECT customers.id") and "WHERE customers.id =" in text:
        return "SELECT the customer (`session.get_one`)"
    return text[:60]


def capture(database: Database, agent: User) -> tuple[Statement, Statement, list[str]]:
    """Run `claim_next` once; its claim SELECT and UPDATE as sent to psycopg, and the labels
    of everything it sent."""
    with Recorder(database.engine) as recorder:
        claimed = claim_next(
            RollbackUnitOfWork(database.session_factory),
            agent=agent,
            now=dt.datetime.now(dt.UTC),
            config=CONFIG,
        )
    if claimed is None:
        raise RuntimeError("the queue gave nothing to claim: is the calling window open?")
    select = next(s for s in recorder.statements if label(s[0]).startswith("claim SELECT"))
    update = next(s for s in recorder.statements if label(s[0]) == "claim UPDATE")
    return select, update, [label(s[0]) for s in recorder.statements]


def same_sql_as_claim_statement(
    select: Statement, zone: str, agent: User, dialect: sa.Dialect
) -> bool:
    """Is the captured SELECT the compiled `claim_statement` (parameters aside)?"""
    known: dict[str, Any] = {"agent_id": agent.id, "agent": agent}
    extra: dict[str, Any] = {
        name: known[name]
        for name in list(inspect.signature(claim_statement).parameters)[2:]
        if name in known
    }
    compiled = claim_statement(dt.datetime.now(dt.UTC), [zone], **extra).compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True}
    )
    return " ".join(compiled.string.split()) == " ".join(select[0].split())


def explain(database: str, statement: Statement, runs: int = 5) -> str:
    """`EXPLAIN (ANALYZE, BUFFERS)`, parameters inlined (the plan for these values), each run
    rolled back; the run that executed fastest (one run alone is at the mercy of the machine's
    other load)."""
    plans = []
    with psycopg.connect(dsn(database)) as conn:
        cursor = psycopg.ClientCursor(conn)
        for _ in range(runs):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement[0], statement[1])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
            conn.rollback()
    return min(plans, key=lambda plan: _plan_ms(plan, "Execution Time"))


def _plan_ms(plan: str, what: str) -> float:
    found = re.search(rf"{what}: ([0-9.]+) ms", plan)
    return float(found.group(1)) if found else float("inf")


HOT = "hot path: its one statement, generic plan"


class HotClaim:
    """The PostgreSQL hot path's claim (`callcenter.callbacks.hotpath`): its one statement as
    the API sends it (a raw cursor, prepared, the generic plan kept), each run rolled back."""

    def __init__(self, database: str, agent: User, zone: str) -> None:
        options = "-c plan_cache_mode=force_generic_plan"
        self.conn = psycopg.connect(dsn(database), options=options)
        now = dt.datetime.now(dt.UTC)
        self.params = hotpath._CLAIM.params(
            {
                "now": now,
                "agent_id": agent.id,
                "zones": [zone],
                "b_claim_id": "bench",
                "b_lease_end": now + CONFIG.attempts.lease,
                "a_at": now,
                "a_actor_user_id": agent.id,
                "a_actor_username": agent.username,
                "a_actor_role": agent.role,
                "a_address": None,
                "a_action": "phone_viewed",
                "a_subject_type": "customer",
            }
        )
        self.conn.execute("PREPARE hot_claim AS " + hotpath._CLAIM.sql)
        self.conn.commit()

    def claim(self) -> float:
        started = time.perf_counter()
        cursor = psycopg.RawCursor(self.conn)
        cursor.execute(hotpath._CLAIM.sql, self.params, prepare=True)
        taken = cursor.fetchall()
        self.conn.rollback()
        seconds = time.perf_counter() - started
        assert taken and taken[0][7] is not None
        return seconds

    def plan(self, runs: int = 5) -> str:
        """`EXPLAIN (ANALYZE, BUFFERS)` of the generic plan (a server-side PREPARE of the same
        text, executed with these values); the fastest of `runs`, each rolled back."""
        cursor = psycopg.ClientCursor(self.conn)
        values = ", ".join(cursor.mogrify("%s", [value]) for value in self.params)
        plans = []
        for _ in range(runs):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE hot_claim({values})")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
            self.conn.rollback()
        return min(plans, key=lambda plan: _plan_ms(plan, "Execution Time"))

    def close(self) -> None:
        self.conn.close()


class Bare:
    """The claim's SQL with psycopg directly, on one connection, rolled back after each run."""

    def __init__(self, database: str, select: Statement, update: Statement) -> None:
        self.conn = psycopg.connect(dsn(database))
        self.select, self.update = select, update
        self.customer_key = next(k for k in update[1] if "customer_id" in k)

    def select_only(self) -> float:
        started = time.perf_counter()
        row = self.conn.execute(*self.select).fetchone()
        seconds = time.perf_counter() - started
        self.conn.rollback()
        assert row is not None
        return seconds

    def claim(self) -> float:
        started = time.perf_counter()
        row = self.conn.execute(*self.select).fetchone()
        assert row is not None
        params = {**self.update[1], self.customer_key: row[1]}
        taken = self.conn.execute(self.update[0], params).fetchall()
        self.conn.rollback()
        seconds = time.perf_counter() - started
        assert taken
        return seconds

    def plans(self) -> str:
        """How PostgreSQL planned the prepared claim statements of this connection."""
        rows = self.conn.execute(
            "SELECT left(statement, 7), generic_plans, custom_plans FROM pg_prepared_statements"
        ).fetchall()
        self.conn.rollback()
        return ", ".join(f"{kind.strip()}: {g} generic / {c} custom plans" for kind, g, c in rows)

    def close(self) -> None:
        self.conn.close()


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")  # psycopg's %(name)s


class Prepared:
    """The same two statements prepared once on the server (PREPARE / EXECUTE), so that
    PostgreSQL does not plan them again at every run. psycopg's own preparing is off: it
    deallocates everything at each ROLLBACK."""

    def __init__(self, database: str, select: Statement, update: Statement) -> None:
        self.conn = psycopg.connect(dsn(database), prepare_threshold=None, autocommit=True)
        self.select_names = self._prepare("bench_claim_select", select[0])
        self.update_names = self._prepare("bench_claim_update", update[0])
        self.conn.autocommit = False
        self.cursor = psycopg.ClientCursor(self.conn)
        self.select_values = [select[1][name] for name in self.select_names]
        self.update_params = update[1]
        self.customer_key = next(k for k in update[1] if "customer_id" in k)

    def _prepare(self, name: str, sql: str) -> list[str]:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        positional = _PLACEHOLDER.sub(number, sql)
        self.conn.execute(f"PREPARE {name} AS {positional}")
        return names

    def claim(self) -> float:
        started = time.perf_counter()
        marks = ", ".join(["%s"] * len(self.select_values))
        self.cursor.execute(f"EXECUTE bench_claim_select({marks})", self.select_values)
        row = self.cursor.fetchone()
        assert row is not None
        params = {**self.update_params, self.customer_key: row[1]}
        values = [params[name] for name in self.update_names]
        marks = ", ".join(["%s"] * len(values))
        self.cursor.execute(f"EXECUTE bench_claim_update({marks})", values)
        taken = self.cursor.fetchall()
        self.conn.rollback()
        seconds = time.perf_counter() - started
        assert taken
        return seconds

    def plans(self) -> str:
        rows = self.conn.execute(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements ORDER BY name"
        ).fetchall()
        self.conn.rollback()
        return ", ".join(f"{name}: {g} generic / {c} custom plans" for name, g, c in rows)

    def close(self) -> None:
        self.conn.close()


def service(database: Database, agent: User) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        claimed = claim_next(
            RollbackUnitOfWork(database.session_factory),
            agent=agent,
            now=dt.datetime.now(dt.UTC),
            config=CONFIG,
        )
        seconds = time.perf_counter() - started
        assert claimed is not None
        return seconds

    return run


def cpu_now(database: str) -> float:
    """CPU seconds so far of this process and of the benchmark database's backends."""
    pids, _, _ = postgres_state(database)
    return time.process_time() + sum(process_cpu(pid) for pid in pids)


def interleaved(
    variants: dict[str, Callable[[], float]], runs: int, database: str
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """`runs` timings of each variant, in alternating blocks (so that drift in the machine's
    load hits every variant alike), after a warm-up of each; and the CPU each run of a variant
    costs this process and PostgreSQL, which other load on the machine hardly changes."""
    for fn in variants.values():
        for _ in range(50):
            fn()
    times: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)
    block = 100
    for start in range(0, runs, block):
        for name, fn in variants.items():
            before = cpu_now(database)
            times[name] += [fn() for _ in range(min(block, runs - start))]
            cpu[name] += cpu_now(database) - before
    return times, {name: cpu[name] / len(times[name]) for name in times}


def statement_breakdown(
    database: Database, agent: User, runs: int
) -> tuple[list[str], float, dict[str, float]]:
    """Markdown rows: mean time per statement `claim_next` sends (driver call to result),
    and the mean total of the service."""
    per_label: dict[str, list[float]] = defaultdict(list)
    totals = []
    fn = service(database, agent)
    for _ in range(runs):
        with Recorder(database.engine) as recorder:
            totals.append(fn())
        for (statement, _), seconds in zip(recorder.statements, recorder.seconds, strict=True):
            per_label[label(statement)].append(seconds)
    total = statistics.fmean(totals) * 1000
    rows = []
    in_statements = 0.0
    calls = {name: len(values) / runs for name, values in per_label.items()}
    for name, values in per_label.items():
        mean = sum(values) / runs * 1000
        in_statements += mean
        rows.append(
            f"| {name} ({calls[name]:.2f} per claim) | {mean:.3f} ms | {mean / total:.0%} |"
        )
    rows.append(
        "| everything else (the Python around the statements: SQLAlchemy, psycopg, the "
        "answer's models; the pool checkout with its pre-ping; ROLLBACK) | "
        f"{total - in_statements:.3f} ms | {(total - in_statements) / total:.0%} |"
    )
    return rows, total, calls


def profile_service(
    database: Database, agent: User, runs: int, function: FunctionSource
) -> tuple[str, str, str]:
    """py-spy (`--gil`) on this process while it runs `claim_next` `runs` times."""
    fn = service(database, agent)
    with Profile(os.getpid(), True, rate=500, what="this process", blocking=True) as profile:
        for _ in range(runs):
            fn()
    summary = profile.summary(top=12, functions=[function])
    return summary, profile.top_lines(function.name, 4), profile.top("libraries", 3)


def prepared_kept(url: str, agent: User, token: str, lookups: bool, claims: int = 10) -> int:
    """Statements psycopg keeps prepared on the pool's connections after `claims` committed
    claims, each preceded (as in the server, where every request authenticates first) or not
    by a token lookup; -1 if psycopg's internals changed."""
    database = Database(url)
    try:
        for _ in range(claims):
            if lookups:
                user_for_token(database.uow(), token=token)
            claim_next(database.uow(), agent=agent, now=dt.datetime.now(dt.UTC), config=CONFIG)
        kept = 0
        for record in list(database.engine.pool._pool.queue):  # type: ignore[attr-defined]
            kept += len(record.dbapi_connection._prepared._names)
        return kept
    except AttributeError:
        return -1
    finally:
        database.dispose()


def truncate(database: str) -> None:
    with psycopg.connect(dsn(database)) as conn:
        conn.execute("TRUNCATE callbacks, customers, known_zones RESTART IDENTITY CASCADE")


def hold_head(database: Database, agents: list[User]) -> None:
    """Commit one claim per agent: the head of the queue is now held, as with live agents."""
    for agent in agents:
        claimed = claim_next(
            database.uow(), agent=agent, now=dt.datetime.now(dt.UTC), config=CONFIG
        )
        assert claimed is not None


def measure_size(
    args: argparse.Namespace,
    url: str,
    size: int,
    zone: str,
    agent: User,
    token: str,
    holders: list[User],
    function: FunctionSource,
) -> dict[str, Any]:
    truncate(args.database)
    customers = max(1, size // args.callbacks_per_customer)
    loaded = load_queue(
        args.database,
        callbacks=size,
        customers=customers,
        zone=zone,
        now=dt.datetime.now(dt.UTC),
    )
    log(f"{size:,} pending callbacks for {customers:,} customers loaded in {loaded:.1f} s")
    database = Database(url)
    plain = Database(url, pool_pre_ping=False)
    pings = bool(getattr(database.engine.pool, "_pre_ping", False))
    select, update, sent = capture(database, agent)
    result: dict[str, Any] = {
        "pre_ping": pings,
        "size": size,
        "customers": customers,
        "loaded_s": loaded,
        "sent": sent,
        "is_claim_statement": same_sql_as_claim_statement(
            select, zone, agent, database.engine.dialect
        ),
        "select_sql": select[0],
        "plan": explain(args.database, select),
        "update_plan": explain(args.database, update),
    }
    bare = Bare(args.database, select, update)
    prepared = Prepared(args.database, select, update)
    hot = HotClaim(args.database, agent, zone)
    try:
        result["hot_plan"] = hot.plan()
        log(f"timing {args.runs} runs of each variant at {size:,}")
        times, cpu = interleaved(
            {
                "bare SELECT": bare.select_only,
                "bare SELECT + UPDATE": bare.claim,
                PREPARED: prepared.claim,
                HOT: hot.claim,
                "service `claim_next`": service(database, agent),
                "service `claim_next`, pool_pre_ping off": service(plain, agent),
            },
            args.runs,
            args.database,
        )
        result["breakdown"], result["breakdown_total"], result["breakdown_calls"] = (
            statement_breakdown(database, agent, min(args.runs, 500))
        )
        if args.profile:
            result["profile"], result["top_stages"], result["top_libraries"] = profile_service(
                database, agent, min(args.runs, 1000), function
            )
        # With the head of the queue held by live claims, as it is while agents work.
        hold_head(database, holders)
        held, held_cpu = interleaved(
            {"bare SELECT + UPDATE, head held": bare.claim}, args.runs // 2, args.database
        )
        times.update(held)
        cpu.update(held_cpu)
        # Last: these commit claims.
        result["kept_with_lookups"] = prepared_kept(url, agent, token, lookups=True)
        result["kept_without"] = prepared_kept(url, agent, token, lookups=False)
        result["plans"] = bare.plans()
        result["prepared_plans"] = prepared.plans()
    finally:
        bare.close()
        prepared.close()
        hot.close()
        database.dispose()
        plain.dispose()
    result["times"] = {name: latency_ms(values) for name, values in times.items()}
    result["cpu_ms"] = {name: seconds * 1000 for name, seconds in cpu.items()}
    return result


def profile_section(result: dict[str, Any]) -> list[str]:
    if not result.get("profile"):
        return []
    title = "Where the Python time of `claim_next` goes (py-spy on this process):"
    return [title, "", result["profile"], ""]


def run(args: argparse.Namespace) -> Report:
    report = Report("3–4. The claim's cost: queue size, and the service against its bare SQL")
    function = CLAIM_NEXT_SOURCE
    zone, closes = open_zone(dt.datetime.now(dt.UTC), dt.timedelta(minutes=20))
    results = []
    with bench_database(args.database, keep=args.keep) as url:
        users = Database(url)
        agents = make_users(users, "cost", 1 + args.held, UserRole.AGENT)
        users.dispose()
        (agent, token), holders = agents[0], [user for user, _ in agents[1:]]
        for size in args.sizes:
            results.append(measure_size(args, url, size, zone, agent, token, holders, function))

    small, large = results[0], results[-1]
    key = "bare SELECT + UPDATE"
    growth = large["times"][key]["p50"] / small["times"][key]["p50"]
    index_scan = all(f"Index Scan using {QUEUE_INDEX}" in r["plan"] for r in results)
    hot_growth = large["times"][HOT]["p50"] / small["times"][HOT]["p50"]
    hot_index_scan = all(f"Index Scan using {QUEUE_INDEX}" in r["hot_plan"] for r in results)
    report.checks.append(
        Check(
            f"hot path's claim statement p50 at {large['size']:,} vs {small['size']:,} pending",
            f"{large['times'][HOT]['p50']:.3f} ms vs {small['times'][HOT]['p50']:.3f} ms "
            f"({hot_growth:.2f}×)",
            f"≤ {TARGET_GROWTH}×",
            hot_growth <= TARGET_GROWTH,
        )
    )
    report.checks.append(
        Check(
            "hot path's claim plan (generic)",
            f"Index Scan using {QUEUE_INDEX}" if hot_index_scan else "not the queue index",
            "index scan on the queue index",
            hot_index_scan,
        )
    )
    report.checks.append(
        Check(
            f"claim SQL (SELECT + UPDATE) p50 at {large['size']:,} vs {small['size']:,} pending",
            f"{large['times'][key]['p50']:.3f} ms vs {small['times'][key]['p50']:.3f} ms "
            f"({growth:.2f}×)",
            f"≤ {TARGET_GROWTH}×",
            growth <= TARGET_GROWTH,
        )
    )
    report.checks.append(
        Check(
            "claim SELECT plan",
            f"Index Scan using {QUEUE_INDEX}" if index_scan else "not the queue index",
            "index scan on the queue index",
            index_scan,
        )
    )
    for r in results if len(results) == 1 else [small, large]:
        ratio = r["times"]["service `claim_next`"]["p50"] / r["times"][key]["p50"]
        cpu_ratio = r["cpu_ms"]["service `claim_next`"] / r["cpu_ms"][key]
        report.checks.append(
            Check(
                f"service `claim_next` vs its bare SQL, p50 at {r['size']:,} pending",
                f"{r['times']['service `claim_next`']['p50']:.3f} ms vs "
                f"{r['times'][key]['p50']:.3f} ms ({ratio:.1f}×); CPU per claim "
                f"{r['cpu_ms']['service `claim_next`']:.2f} vs {r['cpu_ms'][key]:.2f} ms "
                f"({cpu_ratio:.1f}×)",
                f"≤ {TARGET_SERVICE_RATIO:.0f}× (p50)",
                ratio <= TARGET_SERVICE_RATIO,
            )
        )

    if growth > TARGET_GROWTH:
        report.findings.append(
            f"The claim SQL takes {growth:.2f}× as long at {large['size']:,} as at "
            f"{small['size']:,} pending callbacks; see the plans below."
        )
    service_key = "service `claim_next`"
    ratio = large["times"][service_key]["p50"] / large["times"][key]["p50"]
    if ratio > TARGET_SERVICE_RATIO:
        outside = large["times"][service_key]["p50"] - large["times"][key]["p50"]
        others = [
            name
            for name in large["breakdown_calls"]
            if name != "claim UPDATE" and not name.startswith("claim SELECT")
        ]
        finding = (
            f"`claim_next` takes {ratio:.1f}× its bare SQL at {large['size']:,} pending "
            f"({large['times'][service_key]['p50']:.2f} ms against "
            f"{large['times'][key]['p50']:.2f} ms p50; in CPU per claim, "
            f"{large['cpu_ms'][service_key]:.2f} against {large['cpu_ms'][key]:.2f} ms): "
            f"~{outside:.1f} ms per claim go to what the bare SQL does not do: "
            f"{len(others)} more statement(s) ({'; '.join(others) or 'none'}), and the Python "
            "around the statements (SQLAlchemy, psycopg, the pool checkout, the answer's models)."
        )
        if large.get("top_stages"):
            finding += (
                f" Its busiest lines: {large['top_stages']}. Libraries: {large['top_libraries']}."
            )
        if any("session.get_one" in sent for sent in large["sent"]):
            finding += (
                " `session.get_one(Customer, …)` sends a SELECT although `callback_views` "
                "loaded that customer a moment before: the views keep no ORM object, and the "
                "session's identity map holds them weakly."
            )
        report.findings.append(finding)
    planning = _plan_ms(large["plan"], "Planning Time")
    execution = _plan_ms(large["plan"], "Execution Time")
    if large["kept_with_lookups"] == 0 and large["kept_without"] > 0:
        report.findings.append(
            f"PostgreSQL plans the claim SELECT in {planning:.2f} ms and runs it in "
            f"{execution:.2f} ms (EXPLAIN at {large['size']:,})"
            + (": planning is most of its cost. " if planning > execution else ". ")
            + f"Prepared once on the server, the bare claim takes "
            f"{large['times'][PREPARED]['p50']:.2f} ms instead of "
            f"{large['times'][key]['p50']:.2f} ms (p50; how PostgreSQL planned the prepared "
            "statements, generic or custom, is in the details below). psycopg deallocates all of a "
            "connection's prepared statements at every ROLLBACK, so any unit of work that ends "
            "without a commit resets its connection, `user_for_token` (a token lookup) among "
            "them: after 10 committed claims that each follow a token lookup, the pool's "
            f"connections keep {large['kept_with_lookups']} prepared statements; without the "
            f"lookups, {large['kept_without']}."
        )
    sizes = ", ".join(f"{r['size']:,}" for r in results)
    pre_ping = ", which pings it first (`pool_pre_ping`)" if results[0].get("pre_ping") else ""
    report.details += [
        f"Queues of {sizes} pending agent callbacks "
        f"({args.callbacks_per_customer} per customer) bulk-loaded with INSERT ... SELECT "
        f"generate_series, then VACUUM ANALYZE; customers in `{zone}` (calling window open "
        f"until {closes:%H:%M} UTC). {args.runs:,} timed runs of each variant (after 50 "
        "warm-up runs), interleaved in blocks of 100, every run rolled back. Times are wall "
        "times in this process, from the driver call to the result, on the shared 2-core "
        "machine.",
        "",
        "- *bare SQL*: the SELECT and the UPDATE exactly as `claim_next` sends them to psycopg "
        "(captured from the service with SQLAlchemy's cursor events, then replayed with psycopg "
        "on one connection; the SELECT is the compiled `claim_statement`: "
        f"{all(r['is_claim_statement'] for r in results)}), then ROLLBACK;",
        "- *service*: `claim_next` through a `UnitOfWork` whose `commit()` flushes instead (the "
        "statements are the same, the transaction ends with ROLLBACK instead of COMMIT); on its "
        f"first call it sends: {', '.join(results[0]['sent'])} (the tables below count them per "
        "claim over many calls); each unit of work checks a connection out of "
        f"the pool{pre_ping};",
        f"- *head held*: the same bare SQL after {args.held} claims were committed, so the "
        "first customers of the queue are held by live leases and the scan steps over them;",
        "- *hot path*: on PostgreSQL the API claims with one statement instead "
        "(`callcenter/callbacks/hotpath.py`: pick and lock, lease, audit), prepared once with "
        "its generic plan kept (`plan_cache_mode = force_generic_plan` on the hot path's "
        "connections); here on one such connection, each run rolled back. `claim_next` remains "
        "the claim on SQLite and the one the service-level rows above measure.",
        "",
    ]
    for r in results:
        report.details += [
            f"### {r['size']:,} pending callbacks (loaded in {r['loaded_s']:.1f} s)",
            "",
            "| variant | latency | CPU per run (this process + PostgreSQL) |",
            "|---|---|---|",
            *[
                f"| {name} | {fmt_latency(summary)} | {r['cpu_ms'][name]:.2f} ms |"
                for name, summary in r["times"].items()
            ],
            "",
            "psycopg prepares a statement on its 5th run but deallocates all of them at every "
            f"ROLLBACK: the bare connection's prepared statements at the end: "
            f"{r['plans'] or 'none'}; the PREPARE / EXECUTE connection's: {r['prepared_plans']}. "
            "Statements the pool's connections keep prepared after 10 committed claims: "
            f"{r['kept_with_lookups']} when each follows a token lookup (as in the server), "
            f"{r['kept_without']} without.",
            "",
            f"Where the service's {r['breakdown_total']:.3f} ms go (mean over up to 500 runs, "
            "each statement timed from the driver call to its result):",
            "",
            "| part of `claim_next` | mean | share |",
            "|---|---|---|",
            *r["breakdown"],
            "",
            *profile_section(r),
            "The claim SELECT, `EXPLAIN (ANALYZE, BUFFERS)` (parameters inlined; the fastest "
            "of 5 runs):",
            "",
            "```",
            r["plan"],
            "```",
            "",
            "The hot path's claim statement, its generic plan, `EXPLAIN (ANALYZE, BUFFERS) "
            "EXECUTE` (the fastest of 5 runs):",
            "",
            "```",
            r["hot_plan"],
            "```",
            "",
        ]
    report.details += [
        f"The claim UPDATE at {large['size']:,}, `EXPLAIN (ANALYZE, BUFFERS)` (the fastest of 5 "
        "runs):",
        "",
        "```",
        large["update_plan"],
        "```",
        "",
        "The claim SELECT as sent:",
        "",
        "```sql",
        large["select_sql"].strip(),
        "```",
    ]
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    p.add_argument("--runs", type=int, default=2000, help="timed runs of each variant")
    p.add_argument("--callbacks-per-customer", type=int, default=2)
    p.add_argument("--held", type=int, default=50, help="live claims for the 'head held' run")
    add_common_arguments(p)
    return p


def main() -> None:
    print_report(run(parser().parse_args()))


if __name__ == "__main__":
    main()
