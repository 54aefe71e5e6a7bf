"""The soak: a working day's load held for minutes against the whole service, looking for
errors, latency that drifts and memory that grows.

    python -m bench.bench_soak [--minutes 10] [--agents 200] [--events-per-second 50]
                               [--workers 4] [--database-url postgresql://…/callcenter_soak]
                               [--hot-path on|off] [--keep] [--json results.json] [--no-write]

What runs, each in its own process, sharing the machine's cores:
- `callcenter serve --workers 4 --no-scheduler` on a free localhost port;
- `callcenter scheduler`, with repair callbacks made by the IVR
  (`CALLCENTER_RULES__TYPES__REPAIR__CHANNEL=ivr`, as `make run` does) and no Twilio account,
  so that its dialer places calls through the local call simulator, which plays them against
  the API's webhooks; the lease sweep and the SLA watch run as configured;
- the load generator (this module with `--generator`; asyncio on uvloop, httpx):
  - the order system posts events at a steady rate (`POST /api/v1/events`, a mix of every
    type, a few duplicates, closing events for earlier proactive contacts) and every
    `--batch-every` seconds a batch (`POST /api/v1/events/batch`) that is part of the rate;
  - every agent loops like a person at the desk: claim, read the script of each callback
    taken, talk (the talk time is scaled so that an agent makes a call every 10-20 s), then
    record the call: answered (the questionnaire's answers, then the attempt; a churn call
    records its level-1 retention step, which records the attempt), no answer, busy, refused,
    or call back later at a time inside a calling window (now and then a time outside first:
    the 422 lists the valid windows and the agent picks one); now and then it reads a
    callback or the customer's other callbacks;
  - supervisors poll the lists a board shows (overdue, claimed, work orders, IVR calls, the
    level-2 retention queue, the metrics); a manager reads the KPI and churn reports and the
    forecast.
- this process: sets up the database and the users, starts and stops the others, samples
  the memory (RSS) of every process every 10 s, reads the server's access log and the
  scheduler's log, and writes the report. When the PostgreSQL server has autovacuum off, it
  also stands in for it (see `Upkeep`: every 20 s, the tables past autovacuum's default
  thresholds are analyzed or vacuumed), and the report says so.

The time of day: the service runs on the real clock, and the calling windows are the
handbook's (08:30-12:00, 14:30-20:30 in the customer's zone). The rules are left as they are;
instead every customer of the run lives in the fixed-offset zone (`Etc/GMT±N`) whose window
stays open longest from now (at least the run and 10 minutes), so that claims and the IVR
dialer find open windows whatever the hour here.

What counts as an error (the run exits 1 when there is any): a transport error or a timeout;
any 5xx; any 4xx an endpoint is not expected to answer (see `EXPECTED`); a batch whose results
report a conflict or an invalid event; a traceback or a 5xx in the server's log; a webhook the
server refused (the simulator's requests are all valid); an error in the scheduler's log; an
API worker that died or was replaced. Expected, and counted: 204 from a claim (nothing may
be called now), 200 from a duplicate event, 422 `call_back_time_refused` when the agent asked
for a time outside the windows on purpose, 409 on an agent's write (the lease lapsed or the
callback closed under the agent: a race; listed with its message).

Memory: VmRSS of every process every 10 s; the growth of each is the mean of the last
minute less the mean of the first minute after a minute of warm-up (shorter runs scale the
warm-up to a fifth of the run and the windows to a third of what is left).

The results replace the soak section of bench/RESULTS.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from bench.bench_intake import EVENT_MIX  # the event types, weighted like a day's
from bench.common import (
    PROJECT,
    Check,
    Report,
    callcenter_command,
    checks_table,
    free_port,
    log,
    machine_busy,
    machine_info,
    open_zone,
    percentile,
    process_cpu,
    replace_section,
)
from callcenter.config import Settings

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Soak: the whole service under a working day's load"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SAMPLE_SECONDS = 10.0
# Autovacuum looks every minute for tables past its thresholds; the soak's tables start empty
# and grow by thousands of rows a minute, so its stand-in looks more often.
UPKEEP_SECONDS = 20.0
GROWTH_NOTE_PERCENT = 10.0  # growth above this is called out in the report (not a gate)

# rule CB-7: the reply that closes a proactive contact made for the same order.
CLOSING_EVENT = {
    "install_accepted": "install_completed",
    "fault_accepted": "repair_replied",
    "complaint_accepted": "complaint_replied",
}
# What an agent records for a call, weighted.
OUTCOMES = {"answered": 60, "no_answer": 14, "busy": 8, "call_back_later": 14, "refused": 4}
# The churn questionnaire's reasons → the retention catalogue's reason codes.
CHURN_REASONS = {
    "moving": "moving_house",
    "price": "price",
    "quality": "network_quality",
    "service": "service_attitude",
    "other_operator": "competitor_offer",
    "not_needed": "no_longer_needed",
    "other": "other",
}
LEVEL_1_OFFERS = ["discount_10_6m", "speed_up_6m"]
TEXTS = [
    "一切正常，谢谢。",
    "希望上门前能提前电话联系。",
    "网速有时候慢。",
    "没有其他意见。",
    "服务很好。",
]

# Per endpoint, the statuses that are not errors. 409 on an agent's writes is a race (the
# lease lapsed, or the callback closed under the agent), counted apart; 422 on an attempt is
# expected only where the agent asked for an outside time on purpose (checked where sent).
EXPECTED: dict[str, frozenset[int]] = {
    "POST /api/v1/events": frozenset({200, 201}),
    "POST /api/v1/events/batch": frozenset({200}),
    "POST /api/v1/callbacks/claim": frozenset({200, 204}),
    "GET /api/v1/callbacks/{id}/script": frozenset({200, 409}),
    "POST /api/v1/callbacks/{id}/answers": frozenset({201, 409}),
    "POST /api/v1/callbacks/{id}/attempts": frozenset({201, 409}),
    "POST /api/v1/callbacks/{id}/attempts (outside time)": frozenset({422, 409}),
    "POST /api/v1/retention/cases/{id}/steps": frozenset({201, 409}),
}
RACE_STATUS = 409


# ---------------------------------------------------------------------------------------
# The load generator (its own process)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
    """What the orchestrator hands the load generator (as JSON)."""

    base_url: str
    seconds: float
    events_per_second: float
    batch_every: float
    batch_size: int
    duplicate_share: float
    customers: int
    zone: str
    agent_tokens: list[str]
    system_token: str
    supervisor_tokens: list[str]
    manager_token: str
    ramp: float
    talk: tuple[float, float]
    seed: int
    out: str


class Recorder:
    """Every request's latency and status, by endpoint, in compact arrays (the generator's own
    memory is measured too: it must not grow by what it keeps)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.latency: dict[str, array.array[float]] = collections.defaultdict(
            lambda: array.array("d")
        )
        self.at: dict[str, array.array[float]] = collections.defaultdict(lambda: array.array("f"))
        self.statuses: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.errors: collections.Counter[str] = collections.Counter()
        self.error_samples: list[str] = []
        self.races: collections.Counter[str] = collections.Counter()
        self.race_samples: list[str] = []
        self.notes: collections.Counter[str] = collections.Counter()
        self.loop_lag: array.array[float] = array.array("d")

    def record(self, endpoint: str, status: str, seconds: float, sent_at: float) -> None:
        self.latency[endpoint].append(seconds)
        self.at[endpoint].append(sent_at - self.started)
        self.statuses[endpoint][status] += 1

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 40:
            self.error_samples.append(f"{kind}: {detail[:300]}")

    def race(self, endpoint: str, detail: str) -> None:
        self.races[endpoint] += 1
        if len(self.race_samples) < 10:
            self.race_samples.append(f"{endpoint}: {detail[:200]}")

    def summary(self, seconds: float) -> dict[str, Any]:
        """Latencies of the requests sent during the run. Those sent after it, when every agent
        mid-call records the call at once (`pause`), are the wrap-up: a burst no working day
        has, counted in the statuses and the errors and timed apart."""
        endpoints = {}
        for name in sorted(self.latency):
            starts = self.at[name]
            during = [v for t, v in zip(starts, self.latency[name], strict=True) if t < seconds]
            values = during or self.latency[name]
            minutes = collections.Counter(int(t // 60) for t in starts)
            endpoints[name] = {
                "n": len(self.latency[name]),
                "per_s": len(values) / seconds,
                "statuses": dict(self.statuses[name]),
                "p50": percentile(values, 50) * 1000,
                "p95": percentile(values, 95) * 1000,
                "p99": percentile(values, 99) * 1000,
                "max": max(values) * 1000,
                "mean": statistics.fmean(values) * 1000,
                "per_minute": [minutes.get(m, 0) for m in range(int(seconds // 60) + 1)],
            }
        everything = [
            (t, v)
            for name in self.latency
            for t, v in zip(self.at[name], self.latency[name], strict=True)
        ]
        # Latency drift: every request of the first and of the last measured minute.
        window = min(60.0, seconds / 3)
        first = [v for t, v in everything if window <= t < 2 * window] or [0.0]
        last = [v for t, v in everything if seconds - window <= t < seconds] or [0.0]
        wrap_up = [v for t, v in everything if t >= seconds]
        return {
            "wrap_up_requests": {
                "n": len(wrap_up),
                "p50": percentile(wrap_up or [0.0], 50) * 1000,
                "p99": percentile(wrap_up or [0.0], 99) * 1000,
            },
            "endpoints": endpoints,
            "errors": dict(self.errors),
            "error_samples": self.error_samples,
            "races": dict(self.races),
            "race_samples": self.race_samples,
            "notes": dict(self.notes),
            "drift": {
                "window_s": window,
                "first_p99": percentile(first, 99) * 1000,
                "last_p99": percentile(last, 99) * 1000,
            },
            "loop_lag_ms": {
                "p99": percentile(self.loop_lag, 99) * 1000 if self.loop_lag else 0.0,
                "max": max(self.loop_lag, default=0.0) * 1000,
            },
        }


class Load:
    """The simulated people and the order system."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.stop_at = self.started + plan.seconds
        self.rec = Recorder(self.started)
        self.rng = random.Random(plan.seed)
        self.zone = ZoneInfo(plan.zone)
        self.sent: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        self.accepted: dict[str, collections.deque[tuple[str, int]]] = {
            kind: collections.deque(maxlen=2000) for kind in CLOSING_EVENT
        }
        self.serial = 0

    def running(self) -> bool:
        return time.perf_counter() < self.stop_at

    async def pause(self, seconds: float) -> None:
        """Sleep, but not past the end of the run: whoever is mid-call then wraps it up at once
        (the leases it holds are released by recording, not left to lapse)."""
        await asyncio.sleep(max(min(seconds, self.stop_at - time.perf_counter()), 0))

    def client(self, token: str, connections: int = 1) -> httpx.AsyncClient:
        # One small client per simulated person: httpx's pool costs much CPU per request when
        # many connections share one client. A connection idle for a second is dropped: the
        # requests of one step of a call reuse it, a pause to talk opens a new one. Idle time
        # is counted from when this loop read the answer, which may be late by the loop's own
        # lag (seconds when the cores are busy): with a longer expiry, uvicorn's keep-alive
        # timeout (5 s) would close connections under requests being sent.
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=1.0,
        )
        return httpx.AsyncClient(
            base_url=self.plan.base_url,
            headers={"Authorization": f"Bearer {token}"},
            limits=limits,
            timeout=60.0,
        )

    async def call(
        self,
        client: httpx.AsyncClient,
        endpoint: str,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        expect: frozenset[int] = frozenset({200}),
    ) -> httpx.Response | None:
        """One request, recorded under `endpoint`; None when it failed (recorded as an error
        or a race)."""
        expect = EXPECTED.get(endpoint, expect)
        sent = time.perf_counter()
        try:
            response = await client.request(method, url, json=body, params=params)
        except httpx.HTTPError as exc:
            self.rec.record(endpoint, type(exc).__name__, time.perf_counter() - sent, sent)
            self.rec.error(f"{endpoint} {type(exc).__name__}", repr(exc))
            return None
        self.rec.record(endpoint, str(response.status_code), time.perf_counter() - sent, sent)
        status = response.status_code
        if status == RACE_STATUS and status in expect:
            self.rec.race(endpoint, response.text)
            return None
        if status not in expect:
            self.rec.error(f"{endpoint} {status}", response.text)
            return None
        return response

    # -- the order system ------------------------------------------------------------------

    def event(self) -> dict[str, Any]:
        """A new, valid event; a reply closes an earlier proactive contact now and then."""
        rng = self.rng
        kind = rng.choices(list(EVENT_MIX), list(EVENT_MIX.values()))[0]
        self.serial += 1
        order = f"SOAK-ORD-{self.serial:07d}"
        customer = rng.randrange(self.plan.customers)
        opener = next((k for k, v in CLOSING_EVENT.items() if v == kind), None)
        if opener and self.accepted[opener] and rng.random() < 0.3:
            order, customer = self.accepted[opener].popleft()
        elif kind in CLOSING_EVENT:
            self.accepted[kind].append((order, customer))
        # Most events arrive within two hours of what they report; one in ten comes late (up
        # to 20 h), some of those past their hard limit already (the SLA watch expires them).
        late = rng.random() < 0.1
        age = rng.uniform(2 * 3600, 20 * 3600) if late else rng.uniform(60, 2 * 3600)
        occurred = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
        return {
            "event_id": f"soak-{self.plan.seed}-{self.serial:07d}",
            "type": kind,
            "occurred_at": occurred.astimezone(SHANGHAI).isoformat(timespec="seconds"),
            "order_id": order,
            "customer": {
                "id": f"SC-{customer:06d}",
                "name": f"客户{customer}",
                "phone": f"139{customer:08d}",
                "timezone": self.plan.zone,
            },
        }

    def next_event(self) -> dict[str, Any]:
        if self.sent and self.rng.random() < self.plan.duplicate_share:
            self.rec.notes["duplicate events sent"] += 1
            return self.rng.choice(self.sent)  # the same event again: answered 200
        made = self.event()
        self.sent.append(made)
        return made

    async def intake(self) -> None:
        """Events at a steady rate, open loop: a pacer queues them on time, senders post them;
        a batch every `batch_every` seconds takes its share of the rate."""
        plan = self.plan
        batch_rate = plan.batch_size / plan.batch_every if plan.batch_every > 0 else 0.0
        singles_rate = max(plan.events_per_second - batch_rate, 0.1)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        senders = 32  # enough to keep the rate while the server answers slowly

        async def sender() -> None:
            async with self.client(plan.system_token) as client:
                while (item := await queue.get()) is not None:
                    await self.call(
                        client, "POST /api/v1/events", "POST", "/api/v1/events", body=item
                    )

        async def batches() -> None:
            async with self.client(plan.system_token) as client:
                next_at = self.started + plan.batch_every / 2
                while True:
                    await asyncio.sleep(max(next_at - time.perf_counter(), 0))
                    if not self.running():
                        return
                    next_at += plan.batch_every
                    body = [self.next_event() for _ in range(plan.batch_size)]
                    response = await self.call(
                        client,
                        "POST /api/v1/events/batch",
                        "POST",
                        "/api/v1/events/batch",
                        body=body,
                    )
                    if response is None:
                        continue
                    result = response.json()
                    if result["conflict"] or result["invalid"]:
                        bad = [
                            r for r in result["results"] if r["status"] in ("conflict", "invalid")
                        ]
                        self.rec.error("batch result not created/duplicate", json.dumps(bad[:2]))
                    self.rec.notes["batch events created"] += result["created"]
                    self.rec.notes["batch events duplicate"] += result["duplicate"]

        tasks = [asyncio.create_task(sender()) for _ in range(senders)]
        if batch_rate:
            tasks.append(asyncio.create_task(batches()))
        interval = 1.0 / singles_rate
        due = self.started
        backlog = 0
        while self.running():
            due += interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(self.next_event())
            self.rec.notes["single events queued"] += 1
            backlog = max(backlog, queue.qsize())
        for _ in range(senders):
            queue.put_nowait(None)
        await asyncio.gather(*tasks)
        self.rec.notes["intake backlog, most events waiting for a sender"] = backlog

    # -- the agents ------------------------------------------------------------------------

    async def agent(self, token: str, seed: int) -> None:
        rng = random.Random(seed)
        await self.pause(rng.uniform(0, self.plan.ramp))  # people log in over a while
        async with self.client(token) as client:
            while self.running():
                response = await self.call(
                    client,
                    "POST /api/v1/callbacks/claim",
                    "POST",
                    "/api/v1/callbacks/claim",
                )
                if response is None or response.status_code == 204:
                    if response is not None:
                        self.rec.notes["claims with nothing to call (204)"] += 1
                    await self.pause(rng.uniform(2, 5))
                    continue
                await self.make_call(client, response.json(), rng)

    async def make_call(
        self, client: httpx.AsyncClient, claim: dict[str, Any], rng: random.Random
    ) -> None:
        callbacks = claim["callbacks"]
        talk = rng.uniform(*self.plan.talk)
        scripts = {}
        for callback in callbacks:
            response = await self.call(
                client,
                "GET /api/v1/callbacks/{id}/script",
                "GET",
                f"/api/v1/callbacks/{callback['id']}/script",
            )
            if response is None:
                return
            scripts[callback["id"]] = response.json()
        roll = rng.random()
        if roll < 0.15:
            await self.call(
                client,
                "GET /api/v1/callbacks/{id}",
                "GET",
                f"/api/v1/callbacks/{callbacks[0]['id']}",
            )
        elif roll < 0.25:
            await self.call(
                client,
                "GET /api/v1/callbacks?customer_id=",
                "GET",
                "/api/v1/callbacks",
                params={"customer_id": claim["customer"]["id"], "limit": 20},
            )
        await self.pause(talk * 0.7)  # the conversation
        outcome = rng.choices(list(OUTCOMES), list(OUTCOMES.values()))[0]
        self.rec.notes[f"calls: {outcome}"] += 1
        if outcome in ("no_answer", "busy"):
            # A whole-call outcome: recorded once, on every callback of the claim.
            await self.attempt(client, callbacks[0]["id"], {"outcome": outcome})
            return
        for callback in callbacks:
            if outcome == "answered":
                await self.answered(client, callback, scripts[callback["id"]], rng)
            elif outcome == "call_back_later":
                await self.call_back_later(client, callback, rng)
            else:
                await self.attempt(client, callback["id"], {"outcome": outcome})
            await self.pause(talk * 0.3 / len(callbacks))  # wrapping up

    async def attempt(
        self, client: httpx.AsyncClient, callback_id: int, body: dict[str, Any]
    ) -> httpx.Response | None:
        return await self.call(
            client,
            "POST /api/v1/callbacks/{id}/attempts",
            "POST",
            f"/api/v1/callbacks/{callback_id}/attempts",
            body=body,
        )

    async def answered(
        self,
        client: httpx.AsyncClient,
        callback: dict[str, Any],
        script: dict[str, Any],
        rng: random.Random,
    ) -> None:
        recorded = {
            answer["question_id"]: answer["value"]
            for answer in script["answers"]
            if answer["corrected_by_id"] is None
        }
        answers = fill_in(script["questions"], rng, recorded)
        if answers:
            saved = await self.call(
                client,
                "POST /api/v1/callbacks/{id}/answers",
                "POST",
                f"/api/v1/callbacks/{callback['id']}/answers",
                body={"answers": answers},
            )
            if saved is None:
                return
        if callback["type"] != "churn":
            await self.attempt(client, callback["id"], {"outcome": "answered"})
            return
        # rules CB-6, RT-1: an answered churn call is recorded with its level-1 step.
        cases = await self.call(
            client,
            "GET /api/v1/retention/cases?callback_id=",
            "GET",
            "/api/v1/retention/cases",
            params={"callback_id": callback["id"], "state": "open"},
        )
        if cases is None:
            return
        items = cases.json()["items"]
        if not items:
            self.rec.error("churn callback without an open retention case", str(callback["id"]))
            return
        answers |= recorded
        reason = answers.get("reason")
        choice = reason["choice"] if isinstance(reason, dict) else reason
        step: dict[str, Any] = {
            "level": items[0]["level"],
            "reason_code": CHURN_REASONS.get(str(choice), "price"),
        }
        if step["reason_code"] == "other":
            step["reason_text"] = reason["text"] if isinstance(reason, dict) else TEXTS[0]
        if answers.get("retained") is True:
            step |= {
                "outcome": "retained",
                "offer_code": rng.choice(LEVEL_1_OFFERS),
                "offer_accepted": True,
            }
        else:
            step |= {"outcome": "escalated"}
        await self.call(
            client,
            "POST /api/v1/retention/cases/{id}/steps",
            "POST",
            f"/api/v1/retention/cases/{items[0]['id']}/steps",
            body=step,
        )

    async def call_back_later(
        self, client: httpx.AsyncClient, callback: dict[str, Any], rng: random.Random
    ) -> None:
        """A time inside a calling window before the hard limit; one call in five the
        customer first names a time outside, and the agent picks from the windows the 422
        lists."""
        now = dt.datetime.now(dt.UTC)
        hard = dt.datetime.fromisoformat(callback["hard_due_at"])
        wanted = (now + dt.timedelta(minutes=rng.uniform(20, 90))).replace(second=0, microsecond=0)
        if rng.random() >= 0.2 and self.valid_call_back(wanted, hard, now):
            await self.attempt(
                client,
                callback["id"],
                {"outcome": "call_back_later", "call_back_at": wanted.isoformat()},
            )
            return
        outside = outside_windows(now, self.zone)
        refused = await self.call(
            client,
            "POST /api/v1/callbacks/{id}/attempts (outside time)",
            "POST",
            f"/api/v1/callbacks/{callback['id']}/attempts",
            body={"outcome": "call_back_later", "call_back_at": outside.isoformat()},
        )
        if refused is None:
            return
        detail = refused.json()["detail"][0]
        if detail.get("type") != "call_back_time_refused":
            self.rec.error("call_back_later 422 of another kind", refused.text)
            return
        windows = detail.get("next_valid_windows", [])
        if not windows:
            # No window left before the hard limit: the customer is told so and the call is
            # recorded as refused instead.
            self.rec.notes["call back later: no window left, recorded refused"] += 1
            await self.attempt(client, callback["id"], {"outcome": "refused"})
            return
        opens = dt.datetime.fromisoformat(windows[0]["opens"])
        closes = dt.datetime.fromisoformat(windows[0]["closes"])
        chosen = max(opens, now + dt.timedelta(minutes=5)) + dt.timedelta(minutes=1)
        chosen = min(chosen, closes - dt.timedelta(seconds=30))
        self.rec.notes["call back later: outside time refused, picked from the 422"] += 1
        await self.attempt(
            client,
            callback["id"],
            {"outcome": "call_back_later", "call_back_at": chosen.isoformat()},
        )

    def valid_call_back(self, when: dt.datetime, hard: dt.datetime, now: dt.datetime) -> bool:
        from callcenter.config import RulesConfig
        from callcenter.windows.rules import is_open

        return now < when < hard - dt.timedelta(minutes=1) and is_open(
            when, self.zone, RulesConfig().windows
        )

    # -- supervisors and the manager -------------------------------------------------------

    async def supervisor(self, token: str, seed: int) -> None:
        rng = random.Random(seed)
        reads: list[tuple[str, str, dict[str, Any]]] = [
            (
                "GET /api/v1/callbacks?overdue=true",
                "/api/v1/callbacks",
                {"overdue": "true", "limit": 50},
            ),
            (
                "GET /api/v1/callbacks?status=claimed",
                "/api/v1/callbacks",
                {"status": "claimed", "limit": 100},
            ),
            (
                "GET /api/v1/callbacks?status=pending&type=",
                "/api/v1/callbacks",
                {"status": "pending", "type": "complaint", "limit": 50},
            ),
            ("GET /api/v1/workorders", "/api/v1/workorders", {"status": "open", "limit": 50}),
            ("GET /api/v1/ivr/calls", "/api/v1/ivr/calls", {"limit": 100}),
            ("GET /api/v1/retention/queues/2", "/api/v1/retention/queues/2", {"limit": 50}),
            ("GET /metrics", "/metrics", {}),
        ]
        await self.pause(rng.uniform(0, 5))
        async with self.client(token) as client:
            while self.running():
                for endpoint, url, params in reads:
                    await self.call(client, endpoint, "GET", url, params=params or None)
                await self.pause(rng.uniform(4, 8))  # the board refreshes itself

    async def manager(self, token: str) -> None:
        reads = [
            ("GET /api/v1/reports/kpis", "/api/v1/reports/kpis"),
            ("GET /api/v1/reports/churn", "/api/v1/reports/churn"),
            ("GET /api/v1/forecast", "/api/v1/forecast"),
        ]
        await self.pause(10)
        async with self.client(token) as client:
            while self.running():
                for endpoint, url in reads:
                    await self.call(client, endpoint, "GET", url)
                    await self.pause(5)
                await self.pause(20)

    async def watch_loop(self) -> None:
        """How late the event loop wakes up: the generator's own saturation, which inflates
        every latency it measures."""
        while self.running():
            before = time.perf_counter()
            await asyncio.sleep(0.1)
            self.rec.loop_lag.append(time.perf_counter() - before - 0.1)

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        tasks = [asyncio.create_task(self.intake()), asyncio.create_task(self.watch_loop())]
        tasks += [
            asyncio.create_task(self.agent(token, plan.seed * 1000 + i))
            for i, token in enumerate(plan.agent_tokens)
        ]
        tasks += [
            asyncio.create_task(self.supervisor(token, plan.seed * 7 + i))
            for i, token in enumerate(plan.supervisor_tokens)
        ]
        tasks.append(asyncio.create_task(self.manager(plan.manager_token)))
        await asyncio.gather(*tasks)
        # Rates are over the run's seconds; the calls under way at the end finish after it.
        result = self.rec.summary(plan.seconds)
        result["seconds"] = plan.seconds
        result["wrap_up_seconds"] = time.perf_counter() - self.stop_at
        return result


def fill_in(
    questions: list[dict[str, Any]], rng: random.Random, recorded: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The customer's answers: every required question on the path the answers take, some of
    the optional ones; a question whose condition is false is not asked, nor one answered
    already (`recorded`: on an earlier IVR call that the customer left half-way, before the
    callback went to an agent)."""
    recorded = recorded or {}
    answers: dict[str, Any] = dict(recorded)
    for question in questions:
        if question["id"] in recorded:
            continue
        parent = question.get("depends_on")
        if parent is not None:
            if parent not in answers:
                continue
            given = answers[parent]
            value = given["choice"] if isinstance(given, dict) else given
            if not any(type(value) is type(w) and value == w for w in question["shown_when"]):
                continue
        if not question["required"] and rng.random() < 0.4:
            continue
        answers[question["id"]] = answer_for(question, rng)
    return {key: value for key, value in answers.items() if key not in recorded}


def answer_for(question: dict[str, Any], rng: random.Random) -> Any:
    kind = question["kind"]
    if kind == "yes_no":
        return rng.random() < 0.8
    if kind == "rating":
        return rng.choices([5, 4, 3, 2, 1], [50, 30, 10, 6, 4])[0]
    if kind == "count":
        return rng.randrange(4)
    if kind == "choice":
        choice = rng.choice(question["choices"])
        if choice["other"]:
            return {"choice": choice["value"], "text": rng.choice(TEXTS)}
        return choice["value"]
    return rng.choice(TEXTS)


def outside_windows(now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """22:00 in the customer's zone, the next one to come: after the evening window (which
    closes at 20:30) and before the morning one."""
    local = now.astimezone(zone)
    at = local.replace(hour=22, minute=0, second=0, microsecond=0)
    if at <= local:
        at += dt.timedelta(days=1)
    return at.astimezone(dt.UTC)


def generator_main(plan_path: str) -> None:
    import uvloop

    raw = json.loads(Path(plan_path).read_text())
    raw["talk"] = tuple(raw["talk"])
    plan = Plan(**raw)
    result = uvloop.run(Load(plan).run())
    Path(plan.out).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------
# The orchestrator: database, users, processes, memory, logs, the report
# ---------------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str]:
    """`postgresql://user@host:port/db` → (the server URL, the database name)."""
    server, _, name = url.rstrip("/").rpartition("/")
    if not name or "://" not in server or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"--database-url must name a scratch database to create: {url}")
    return server.replace("postgresql+psycopg://", "postgresql://"), name


def recreate_database(server: str, name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def app_url(server: str, name: str) -> str:
    scheme, rest = server.split("://", 1)
    return f"{scheme}+psycopg://{rest}/{name}"


def make_people(url: str, agents: int, supervisors: int) -> dict[str, Any]:
    """The users and their API tokens, through the services (faster than one CLI process per
    user; the same code `callcenter users create` and `tokens create` run)."""
    from callcenter.db import Database
    from callcenter.users.models import UserRole
    from callcenter.users.service import create_token, create_user

    database = Database(url)
    now = dt.datetime.now(dt.UTC)

    def person(name: str, role: UserRole, **extra: Any) -> str:
        create_user(database.uow(), username=name, role=role, now=now, **extra)
        return create_token(database.uow(), username=name, now=now)

    try:
        return {
            "agent_tokens": [
                person(f"agent{i:03d}", UserRole.AGENT, employee_number=f"{20000 + i}")
                for i in range(1, agents + 1)
            ],
            "supervisor_tokens": [
                person(f"sup{i}", UserRole.SUPERVISOR) for i in range(1, supervisors + 1)
            ],
            "manager_token": person("manager1", UserRole.MANAGER),
            "system_token": person("ordersystem", UserRole.SYSTEM),
        }
    finally:
        database.dispose()


class Child:
    """A subprocess of the run with its log in a temporary file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"callcenter-soak-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, cwd=PROJECT, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
            parents[ppid].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def api_workers(server_pid: int) -> list[int]:
    """uvicorn's worker processes (spawned by multiprocessing), not its resource tracker."""
    return sorted(
        pid
        for pid in children_of(server_pid)
        if "spawn_main" in cmdline(pid) and "resource_tracker" not in cmdline(pid)
    )


class Upkeep:
    """Autovacuum's stand-in, in a thread, when the server has autovacuum off (as benchmark
    servers often do): every `interval` seconds, each table of the run's database that
    autovacuum would see to by its default thresholds is analyzed (changes since the last
    analyze above 50 rows + 10 %) or vacuumed and analyzed (dead rows above 50 + 20 %).
    Production runs with autovacuum on (the service warns at start-up otherwise). Without it a
    database that starts empty never gets statistics, and the claim keeps the plan of an empty
    queue: measured in a 2-minute soak with the hot path, the claim's p50 went from 8 ms to
    880 ms and every other request slowed with PostgreSQL."""

    DUE = """
        SELECT relname, to_vacuum FROM (
            SELECT s.relname,
                   n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0) AS to_vacuum,
                   n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0) AS to_analyze
              FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        ) AS tables
         WHERE to_vacuum OR to_analyze
    """

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
        self.needed = not row or row[0] != "on"
        self.runs: list[float] = []  # seconds each round took that did something
        self.tables: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                started = time.monotonic()
                due = conn.execute(self.DUE).fetchall()
                for table, vacuum in due:
                    conn.execute(f'{"VACUUM (ANALYZE)" if vacuum else "ANALYZE"} "{table}"')
                    self.tables[table] += 1
                if due:
                    self.runs.append(time.monotonic() - started)

    def __enter__(self) -> Upkeep:
        if self.needed:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.needed:
            self._thread.join(timeout=60)

    def summary(self) -> dict[str, Any]:
        return {
            "autovacuum": not self.needed,
            "interval_s": self.interval,
            "runs": len(self.runs),
            "longest_s": max(self.runs, default=0.0),
            "tables": dict(self.tables.most_common()),
        }


class MemorySampler:
    """VmRSS of every process of the run every `interval` seconds, in a thread."""

    def __init__(self, server: Child, scheduler: Child, generator: Child, interval: float) -> None:
        self.server, self.scheduler, self.generator = server, scheduler, generator
        self.interval = interval
        self.started = time.monotonic()
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.cpu: dict[str, tuple[float, float, float, float]] = {}  # first/last (t, seconds)
        self.labels: dict[int, str] = {}
        self.worker_pids_seen: list[int] = []
        self.machine = (machine_busy(), machine_busy())  # (busy, total) at start and end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _label(self, pid: int, kind: str) -> str:
        if pid not in self.labels:
            if kind == "worker":
                self.worker_pids_seen.append(pid)
                self.labels[pid] = f"API worker {len(self.worker_pids_seen)} (pid {pid})"
            else:
                self.labels[pid] = f"{kind} (pid {pid})"
        return self.labels[pid]

    def sample(self) -> None:
        pids: list[tuple[int, str]] = [
            (self.server.pid, "API supervisor (uvicorn's main process)"),
            (self.scheduler.pid, "scheduler (with the IVR dialer and the call simulator)"),
            (self.generator.pid, "load generator"),
        ]
        pids += [(pid, "worker") for pid in api_workers(self.server.pid)]
        row = {}
        at = time.monotonic() - self.started
        for pid, kind in pids:
            value = rss_mb(pid)
            if value is not None:
                label = self._label(pid, kind)
                row[label] = value
                used = process_cpu(pid)
                first = self.cpu.get(label, (at, used, at, used))
                self.cpu[label] = (first[0], first[1], at, used)
        self.samples.append((at, row))
        self.machine = (self.machine[0], machine_busy())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def growth(self, seconds: float) -> list[dict[str, Any]]:
        """Per process: mean RSS of the first measured window (after the warm-up) and of the
        last window, and the growth between them."""
        warmup = min(60.0, seconds / 5)
        window = min(60.0, (seconds - warmup) / 3)
        rows = []
        for label in dict.fromkeys(k for _, row in self.samples for k in row):
            series = [(t, row[label]) for t, row in self.samples if label in row]
            first = [v for t, v in series if warmup <= t < warmup + window]
            last = [v for t, v in series if t >= seconds - window]
            if not first or not last:
                rows.append({"process": label, "samples": len(series), "incomplete": True})
                continue
            a, b = statistics.fmean(first), statistics.fmean(last)
            t0, cpu0, t1, cpu1 = self.cpu[label]
            rows.append(
                {
                    "process": label,
                    "cores": (cpu1 - cpu0) / (t1 - t0) if t1 > t0 else 0.0,
                    "samples": len(series),
                    "first_mb": a,
                    "last_mb": b,
                    "growth_mb": b - a,
                    "growth_pct": (b - a) / a * 100 if a else 0.0,
                    "peak_mb": max(v for _, v in series),
                }
            )
        return rows


_ACCESS = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def endpoint_of(method: str, path: str) -> str:
    """The path as a template: ids and call references replaced, the query dropped."""
    path = path.split("?", 1)[0]
    path = re.sub(r"^/twilio/ivr/[^/]+/", "/twilio/ivr/{ref}/", path)
    path = re.sub(r"/\d+(?=/|$)", "/{id}", path)
    return f"{method} {path}"


def read_server_log(text: str) -> dict[str, Any]:
    """The access log by endpoint and status; tracebacks and 5xx."""
    by_endpoint: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    problems: list[str] = []
    restarts: list[str] = []
    warnings: list[str] = []
    for line in text.splitlines():
        # uvicorn's supervisor kills and replaces a worker that misses its health check (or
        # that exited): the requests it was serving are lost.
        if re.search(r"Child process \[\d+\] died|was not ready in time", line):
            restarts.append(line.strip())
        found = _ACCESS.search(line)
        if found:
            method, path, status = found.groups()
            by_endpoint[endpoint_of(method, path)][status] += 1
            refused_webhook = path.startswith("/twilio/") and not status.startswith("2")
            if status.startswith("5") or refused_webhook:
                problems.append(line.strip())
        elif "Traceback" in line or " ERROR " in line or line.startswith("ERROR"):
            problems.append(line.strip())
        elif " WARNING " in line or line.startswith("WARNING"):
            warnings.append(line.strip())
    return {
        "access": {k: dict(v) for k, v in sorted(by_endpoint.items())},
        "problems": problems,
        "worker_restarts": restarts,
        "warnings": warnings,
    }


def read_scheduler_log(text: str) -> dict[str, Any]:
    jobs: collections.Counter[str] = collections.Counter()
    rows: collections.Counter[str] = collections.Counter()
    problems = []
    for line in text.splitlines():
        found = re.search(r"job=(\w+) rows=(\d+)", line)
        if found:
            jobs[found.group(1)] += 1
            rows[found.group(1)] += int(found.group(2))
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
            problems.append(line.strip())
    return {"job_runs": dict(jobs), "job_rows": dict(rows), "problems": problems}


def database_state(server: str, name: str) -> dict[str, Any]:
    """What the run left in the database."""
    with psycopg.connect(f"{server}/{name}") as conn:

        def grouped(sql: str) -> dict[str, int]:
            return {str(k): int(v) for k, v in conn.execute(sql).fetchall()}

        def one(sql: str) -> int:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0

        return {
            "callbacks by status": grouped(
                "SELECT status, count(*) FROM callbacks GROUP BY status ORDER BY 2 DESC"
            ),
            "callbacks by channel": grouped(
                "SELECT channel, count(*) FROM callbacks GROUP BY channel ORDER BY 2 DESC"
            ),
            "attempts by outcome": grouped(
                "SELECT outcome, count(*) FROM attempts GROUP BY outcome ORDER BY 2 DESC"
            ),
            "IVR calls by status": grouped(
                "SELECT status, count(*) FROM ivr_calls GROUP BY status ORDER BY 2 DESC"
            ),
            "IVR calls active for more than 2 minutes": one(
                "SELECT count(*) FROM ivr_calls WHERE status IN "
                "('queued', 'initiated', 'ringing', 'in_progress') "
                "AND created_at < now() - interval '2 minutes'"
            ),
            "answers": one("SELECT count(*) FROM answers"),
            "work orders by kind": grouped(
                "SELECT kind, count(*) FROM work_orders GROUP BY kind ORDER BY 2 DESC"
            ),
            "retention cases by state and level": grouped(
                "SELECT state || ' L' || level, count(*) FROM retention_cases "
                "GROUP BY 1 ORDER BY 2 DESC"
            ),
        }


def wait_healthy(base_url: str, server: Child, workers: int, timeout: float = 180.0) -> None:
    """Until every worker has started (uvicorn may replace a worker that is slow to start
    on busy cores: the set of workers must then stay the same for 5 s) and one answers."""
    deadline = time.monotonic() + timeout
    stable_since, seen = time.monotonic(), api_workers(server.pid)
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"the server exited early:\n{server.tail()}")
        now, current = time.monotonic(), api_workers(server.pid)
        if current != seen:
            stable_since, seen = now, current
        started = server.text().count("Application startup complete")
        if len(current) >= workers and started >= workers and now - stable_since >= 5:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"the server did not become healthy:\n{server.tail()}")


def run(args: argparse.Namespace) -> tuple[Report, dict[str, Any]]:
    seconds = args.minutes * 60.0
    server_url, name = split_url(args.database_url)
    now = dt.datetime.now(dt.UTC)
    zone, closes = open_zone(now, dt.timedelta(seconds=seconds + 600))
    log(f"customers live in {zone}: its calling window is open until {closes:%H:%M} UTC")
    machine = machine_info()
    log(f"creating database {name}")
    recreate_database(server_url, name)
    url = app_url(server_url, name)
    children: list[Child] = []
    try:
        from bench.common import migrate

        migrate(url)
        people = make_people(url, args.agents, args.supervisors)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.update(
            {
                "CALLCENTER_DATABASE_URL": url,
                "CALLCENTER_RULES__TYPES__REPAIR__CHANNEL": "ivr",
                # The simulator plays each call against our webhooks at this address, and
                # the webhooks check the signature over it.
                "CALLCENTER_TELEPHONY__PUBLIC_BASE_URL": base_url,
                "CALLCENTER_LOG_LEVEL": "INFO",
            }
        )
        env["CALLCENTER_HOT_PATH"] = "true" if args.hot_path == "on" else "false"
        env.pop("CALLCENTER_SCHEDULER_ENABLED", None)
        env.pop("CALLCENTER_CLOCK_FILE", None)
        server = Child(
            "server",
            [
                *callcenter_command(),
                "serve",
                "--no-scheduler",
                "--workers",
                str(args.workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env,
        )
        children.append(server)
        wait_healthy(base_url, server, args.workers)
        log(f"server up on port {port} with {args.workers} workers (pid {server.pid})")
        scheduler = Child("scheduler", [*callcenter_command(), "scheduler"], env)
        children.append(scheduler)
        out = Path(tempfile.mkstemp(prefix="callcenter-soak-load-", suffix=".json")[1])
        plan = Plan(
            base_url=base_url,
            seconds=seconds,
            events_per_second=args.events_per_second,
            batch_every=args.batch_every,
            batch_size=min(args.batch_size, int(args.events_per_second * args.batch_every / 2)),
            duplicate_share=0.04,
            customers=args.customers,
            zone=zone,
            ramp=min(30.0, seconds / 4),
            talk=(args.talk_min, args.talk_max),
            seed=args.seed,
            out=str(out),
            **people,
        )
        plan_path = Path(tempfile.mkstemp(prefix="callcenter-soak-plan-", suffix=".json")[1])
        plan_path.write_text(json.dumps(dataclasses.asdict(plan)))
        generator = Child(
            "generator",
            [sys.executable, "-m", "bench.bench_soak", "--generator", str(plan_path)],
            env,
        )
        children.append(generator)
        # Workers that uvicorn replaces from here on count as errors; before, as start-up.
        startup_log = len(server.text())
        log(
            f"soak: {args.minutes:g} min, {args.agents} agents, {args.events_per_second:g} "
            f"events/s, {args.workers} API workers, hot path {args.hot_path}"
        )
        started = time.monotonic()
        upkeep = Upkeep(f"{server_url}/{name}", UPKEEP_SECONDS)
        with (
            upkeep,
            MemorySampler(server, scheduler, generator, SAMPLE_SECONDS) as memory,
        ):
            while generator.alive():
                time.sleep(1)
                elapsed = time.monotonic() - started
                if int(elapsed) % 60 == 0 and int(elapsed):
                    log(f"{elapsed / 60:.0f} min")
                    time.sleep(1)
                if elapsed > seconds + 300:
                    log("the load generator did not stop: killed")
                    generator.process.kill()
                for child in (server, scheduler):
                    if not child.alive():
                        log(f"{child.name} exited early:\n{child.tail()}")
                        generator.process.send_signal(signal.SIGINT)
        plan_path.unlink(missing_ok=True)
        if generator.process.returncode != 0 or not out.read_text():
            raise RuntimeError(f"the load generator failed:\n{generator.tail(40)}")
        load = json.loads(out.read_text())
        out.unlink(missing_ok=True)
        workers_at_end = api_workers(server.pid)
        # Let the calls the simulator is still playing finish before stopping it.
        time.sleep(3)
        state = database_state(server_url, name)
        scheduler.stop()
        server.stop()
        server_text = server.text()
        server_log = read_server_log(server_text[startup_log:])
        server_log["startup_restarts"] = read_server_log(server_text[:startup_log])[
            "worker_restarts"
        ]
        scheduler_log = read_scheduler_log(scheduler.text())
        generator_problems = [
            line for line in generator.text().splitlines() if "Traceback" in line or "Error" in line
        ]
        growth = memory.growth(seconds)
        (busy0, total0), (busy1, total1) = memory.machine
        machine_cores = (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)
        replaced = sorted(set(memory.worker_pids_seen) - set(workers_at_end))
        restarted_at_start = len(server_log["startup_restarts"])
    finally:
        for child in reversed(children):
            child.stop()
        if not args.keep:
            log(f"dropping database {name}")
            recreate_database(server_url, name, drop_only=True)
    results = {
        "parameters": {
            "minutes": args.minutes,
            "agents": args.agents,
            "events_per_second": args.events_per_second,
            "workers": args.workers,
            "supervisors": args.supervisors,
            "batch_every_s": args.batch_every,
            "batch_size": plan.batch_size,
            "talk_s": [args.talk_min, args.talk_max],
            "zone": zone,
            "hot_path": args.hot_path,
        },
        "machine": machine,
        "load": load,
        "server_log": server_log,
        "scheduler_log": scheduler_log,
        "generator_problems": generator_problems[:20],
        "database": state,
        "memory": growth,
        "workers_replaced": replaced,
        "workers_at_end": len(workers_at_end),
        "workers_restarted_at_start": restarted_at_start,
        "machine_busy_cores": machine_cores if total1 > total0 else 0.0,
        "upkeep": upkeep.summary(),
    }
    if sum(count_errors(results).values()):
        # The logs explain the errors (a deadlock's detail, a worker's death): kept.
        for child in children:
            log(f"{child.name}'s log kept: {child.log_path}")
    else:
        for child in children:
            child.remove_log()
    return report(results), results


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def count_errors(results: dict[str, Any]) -> dict[str, int]:
    load = results["load"]
    return {
        "load generator: requests that failed": sum(load["errors"].values()),
        "server log: 5xx, refused webhooks, tracebacks": len(results["server_log"]["problems"]),
        "scheduler log: errors": len(results["scheduler_log"]["problems"]),
        "load generator: crashed tasks": len(results["generator_problems"]),
        "API workers replaced or missing": max(
            len(results["workers_replaced"]), len(results["server_log"]["worker_restarts"])
        )
        + max(results["parameters"]["workers"] - results["workers_at_end"], 0),
    }


def report(results: dict[str, Any]) -> Report:
    p = results["parameters"]
    load = results["load"]
    machine = results["machine"]
    errors = count_errors(results)
    total_errors = sum(errors.values())
    requests = sum(e["n"] for e in load["endpoints"].values())
    report = Report(SECTION.removeprefix("## "))
    report.checks.append(
        Check(
            f"soak, {p['minutes']:g} min, {p['agents']} agents, {p['events_per_second']:g} "
            f"events/s, {p['workers']} workers, hot path {p['hot_path']}: errors",
            f"{total_errors}",
            "0",
            total_errors == 0,
        )
    )
    worst = max(
        (row for row in results["memory"] if "growth_pct" in row),
        key=lambda row: row["growth_pct"],
        default=None,
    )
    if worst is not None:
        report.checks.append(
            Check(
                "soak: largest memory growth of one process (last minute − first minute)",
                f"{worst['growth_mb']:+.1f} MB ({worst['growth_pct']:+.1f} %), {worst['process']}",
                f"flat (reported; noted above {GROWTH_NOTE_PERCENT:g} %)",
                None,
            )
        )
    d = report.details
    d += [
        f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu']}, "
        f"{machine['memory']}), PostgreSQL {machine['postgresql'].split()[0]}, Python "
        f"{machine['python']}; the cores are shared with whatever else ran meanwhile, so the "
        "latencies are noisy.",
        "",
        f"Parameters: {p['minutes']:g} minutes, {p['agents']} agents (talk time "
        f"{p['talk_s'][0]:g}–{p['talk_s'][1]:g} s per call), {p['supervisors']} supervisors and "
        f"a manager, intake {p['events_per_second']:g} events/s (a batch of {p['batch_size']} "
        f"every {p['batch_every_s']:g} s within it), `callcenter serve --workers {p['workers']} "
        "--no-scheduler` and `callcenter scheduler` (repair callbacks by IVR through the local "
        f"call simulator), on PostgreSQL. Customers in `{p['zone']}`, where a calling window "
        "is open for the whole run (the rules' windows unchanged).",
        "",
        f"**Errors: {total_errors}** — " + ", ".join(f"{k} {v}" for k, v in errors.items()) + ".",
    ]
    if load["error_samples"]:
        d += ["", "Errors seen (first ones):", ""]
        d += [f"- `{line}`" for line in load["error_samples"][:10]]
    logged = (
        results["server_log"]["worker_restarts"]
        + results["server_log"]["problems"]
        + results["scheduler_log"]["problems"]
    )
    for problem in logged[:10]:
        d.append(f"- log: `{problem[:300]}`")
    if results["workers_restarted_at_start"]:
        d += [
            "",
            f"During start-up, before the load, uvicorn's supervisor replaced "
            f"{results['workers_restarted_at_start']} worker(s) that missed its 5 s health check "
            "while still starting on the busy cores (not counted as errors).",
        ]
    warned = results["server_log"]["warnings"]
    if warned:
        d += ["", f"Warnings in the server's log ({len(warned)}; first ones):", ""]
        d += [f"- `{line[:300]}`" for line in warned[:5]]
    races = sum(load["races"].values())
    d += [
        "",
        f"{requests:,} requests from the load generator in {load['seconds']:.0f} s "
        f"({requests / load['seconds']:.0f}/s). Expected answers counted: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(load["notes"].items()))
        + f"; races (409 on an agent's write): {races}"
        + (f" ({'; '.join(load['race_samples'][:3])})" if races else "")
        + ".",
        "",
        "| endpoint (load generator) | n | /s | statuses | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in load["endpoints"].items():
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(e["statuses"].items()))
        d.append(
            f"| `{name}` | {e['n']:,} | {e['per_s']:.1f} | {statuses} | {fmt(e['p50'])} ms | "
            f"{fmt(e['p95'])} ms | **{fmt(e['p99'])} ms** | {fmt(e['max'])} ms |"
        )
    drift = load["drift"]
    lag = load["loop_lag_ms"]
    d += [
        "",
        f"Latency drift, every request: p99 {fmt(drift['first_p99'])} ms in the first measured "
        f"{drift['window_s']:.0f} s (after as long a warm-up), {fmt(drift['last_p99'])} ms in "
        f"the last. The load generator's event loop woke up late by p99 {lag['p99']:.0f} ms "
        f"(max {lag['max']:.0f} ms): that much of any latency above is the generator's own.",
    ]
    wrap = load["wrap_up_requests"]
    if wrap["n"]:
        d += [
            "",
            f"Wrap-up: when the time was up, every agent mid-call recorded the call at once: "
            f"{wrap['n']:,} requests in {load['wrap_up_seconds']:.1f} s, p50 {fmt(wrap['p50'])} "
            f"ms, p99 {fmt(wrap['p99'])} ms. They count in the statuses and the errors above, "
            "not in the latencies (no working day sends them all at once).",
        ]
    d += [
        "",
        "The IVR's webhooks, requested by the call simulator in the scheduler's process, from "
        "the server's access log (statuses only: the simulator does not time them):",
        "",
        "| webhook | statuses |",
        "|---|---|",
    ]
    access = results["server_log"]["access"]
    for name, statuses in access.items():
        if name.startswith("POST /twilio"):
            listed = ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))
            d.append(f"| `{name}` | {listed} |")
    logged = sum(
        n
        for name, statuses in access.items()
        if not name.startswith("POST /twilio") and name != "GET /healthz"
        for n in statuses.values()
    )
    d += [
        "",
        f"The access log holds {logged:,} requests besides the webhooks; the load generator "
        f"sent {requests:,} (those under way when the server stopped are missing from the log).",
    ]
    jobs = results["scheduler_log"]
    d += [
        "",
        "Scheduler job runs (rows touched): "
        + ", ".join(
            f"{k} {v:,} ({jobs['job_rows'].get(k, 0):,})"
            for k, v in sorted(jobs["job_runs"].items())
        )
        + ".",
        "",
        "Memory (VmRSS every 10 s; growth = mean of the last window − mean of the first window "
        "after the warm-up):",
        "",
        "| process | first window | last window | growth | peak | samples | CPU (cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["memory"]:
        if row.get("incomplete"):
            d.append(f"| {row['process']} | — | — | too few samples | — | {row['samples']} | — |")
            continue
        mark = " ⚠" if row["growth_pct"] > GROWTH_NOTE_PERCENT else ""
        d.append(
            f"| {row['process']} | {row['first_mb']:.1f} MB | {row['last_mb']:.1f} MB | "
            f"{row['growth_mb']:+.1f} MB ({row['growth_pct']:+.1f} %){mark} | "
            f"{row['peak_mb']:.1f} MB | {row['samples']} | {row['cores']:.2f} |"
        )
    ours = sum(row.get("cores", 0.0) for row in results["memory"])
    d += [
        "",
        f"CPU: the run's processes above used {ours:.2f} cores on average; the machine was busy "
        f"{results['machine_busy_cores']:.2f} cores of {machine['cores']} (PostgreSQL and "
        "every other process included).",
    ]
    upkeep = results["upkeep"]
    if not upkeep["autovacuum"]:
        tables = ", ".join(f"{name} {n}" for name, n in upkeep["tables"].items())
        d += [
            "",
            f"Upkeep: this PostgreSQL server has autovacuum off, so the soak stood in for it: "
            f"every {upkeep['interval_s']:g} s, `ANALYZE` (or `VACUUM (ANALYZE)`) of each table "
            f"past autovacuum's default thresholds ({upkeep['runs']} rounds, the longest "
            f"{upkeep['longest_s']:.1f} s; tables: {tables or 'none'}).",
        ]
    d += ["", "What the run left in the database:", ""]
    for key, value in results["database"].items():
        shown = (
            ", ".join(f"{k} {v:,}" for k, v in value.items())
            if isinstance(value, dict)
            else f"{value:,}"
        )
        d.append(f"- {key}: {shown or 'none'}")
    d += [
        "",
        f"Run: `python -m bench.bench_soak --minutes {p['minutes']:g} --agents {p['agents']} "
        f"--events-per-second {p['events_per_second']:g} --workers {p['workers']} "
        f"--hot-path {p['hot_path']}` (replaces "
        "this section of bench/RESULTS.md; exits 1 on any error).",
    ]
    return report


def write_section(rep: Report) -> None:
    section = "\n".join([SECTION, "", checks_table(rep.checks), "", *rep.details, ""])
    replace_section(RESULTS, SECTION, section)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    p.add_argument("--agents", type=int, default=200, help="simulated agents")
    p.add_argument("--supervisors", type=int, default=2, help="supervisors polling lists")
    p.add_argument("--events-per-second", type=float, default=50.0, help="intake rate")
    p.add_argument("--batch-every", type=float, default=20.0, help="seconds between batches")
    p.add_argument("--batch-size", type=int, default=200, help="events in a batch")
    p.add_argument("--workers", type=int, default=4, help="API worker processes")
    p.add_argument("--customers", type=int, default=20_000, help="the customers events name")
    p.add_argument("--talk-min", type=float, default=8.0, help="shortest talk time, seconds")
    p.add_argument("--talk-max", type=float, default=16.0, help="longest talk time, seconds")
    p.add_argument("--seed", type=int, default=10)
    p.add_argument(
        "--hot-path",
        choices=["on", "off"],
        default="on" if Settings.model_fields["hot_path"].default else "off",
        help="the agents' hot path on PostgreSQL (CALLCENTER_HOT_PATH); default: the "
        "service's default",
    )
    p.add_argument(
        "--database-url",
        default=f"{os.environ.get('CALLCENTER_BENCH_PG', DEFAULT_SERVER).rstrip('/')}"
        f"/callcenter_soak_{os.getpid()}",
        help="a scratch database: created afresh, dropped at the end unless --keep",
    )
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    p.add_argument("--generator", help=argparse.SUPPRESS)  # the load generator's own process
    return p


def main() -> None:
    args = parser().parse_args()
    if args.generator:
        generator_main(args.generator)
        return
    rep, results = run(args)
    print(checks_table(rep.checks))
    print()
    print(rep.markdown())
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    if not args.no_write:
        write_section(rep)
    errors = sum(count_errors(results).values())
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
