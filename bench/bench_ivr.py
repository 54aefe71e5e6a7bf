"""IVR calls: the dialer's rate limit over a simulated run, and the webhooks' latency under
200 live phone calls.

    python -m bench.bench_ivr [--ivr-callbacks 5000] [--minutes 10] [--calls 200]
                              [--warmup 90] [--seconds 120] [--saturation-seconds 20]

1. The dialer. A scratch PostgreSQL database (`callcenter_bench_ivr`, created and dropped;
   the schema from the models' metadata) with 5,000 due IVR callbacks. The dialer job
   (`scheduler.jobs.ivr_dial`, the code the scheduler runs) is played for 10 minutes of a
   simulated clock, alternating between two "replicas" (two Database objects, so two
   connection pools, sharing the dial-slot row); each job run ticks every second, and its
   wait for a slot advances the simulated clock instead of sleeping. The provider records the
   simulated instant of every call it is asked to place. Run at 1 call/s (Twilio's default)
   and at 5 calls/s.
2. The webhooks: `callcenter serve --no-scheduler --workers 1` against the same database,
   and simulated callers (asyncio on uvloop, plain HTTP/1.1, in this process) playing
   Twilio's part, every request signed as Twilio signs it.
   a. The target: 200 calls live at every moment, each paced like a phone call (see `Pace`:
      the status callbacks spaced by call set-up and ringing, each TwiML answer spoken at a
      speaking rate before the customer presses a key after a human reaction time, the
      closing spoken before the hang-up). When a call ends, the next one starts, so 200 stay
      live. The calls start spread over the first 30 s; after `--warmup` seconds, every
      request started during `--seconds` is measured (latency as the caller saw it).
   b. Saturation, for information: 200 callers that send each request as soon as the
      previous answer arrives (no pause at all: 200 requests always outstanding): the
      throughput the worker reaches and the latency under a queue that never empties.

The results are appended to bench/RESULTS.md (the section is replaced when it is there).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bench.common import (
    Check,
    CpuSample,
    Profile,
    Report,
    Server,
    create_database,
    describe_cpu,
    drop_database,
    fmt_latency,
    latency_ms,
    log,
    percentile,
    print_report,
    sqlalchemy_url,
    vacuum_analyze,
)
from callcenter.callbacks.service import ingest_events
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig, Settings, TelephonyProvider, TelephonySettings
from callcenter.db import Database
from callcenter.ivr.service import plan_dials
from callcenter.models import metadata
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.questionnaires.service import sync_scripts
from callcenter.telephony.base import CallRequest, PlacedCall, ProviderCall
from callcenter.telephony.signature import HEADER, sign
from scheduler import jobs

DATABASE = "callcenter_bench_ivr"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## IVR: the dialer's rate limit and the webhooks' latency"
# Wednesday 10:00 in Shanghai: the morning window is open for the whole run.
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
P99_TARGET_MS = 20.0
KEY = "bench-signing-key"


class RecordingTelephony:
    """A provider that takes every call at once and notes the (simulated) instant."""

    provider = TelephonyProvider.SIMULATOR

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.placed: list[dt.datetime] = []

    def place_call(self, request: CallRequest) -> PlacedCall:
        self.placed.append(self.clock.now())
        return PlacedCall(sid=f"CA{len(self.placed):032d}", status="queued")

    def fetch_call(self, sid: str) -> ProviderCall:
        return ProviderCall(sid=sid, status="in-progress", answered_by=None, duration_seconds=None)


def _rules() -> RulesConfig:
    return RulesConfig.model_validate(
        {"types": {k: {"channel": "ivr"} for k in ("install", "repair", "complaint")}}
    )


def load(database: Database, callbacks: int) -> None:
    rules = _rules()
    sync_scripts(database.uow(), scripts=shipped_scripts(), now=NOW)
    kinds = ["install_completed", "repair_replied", "complaint_replied"]
    for start in range(0, callbacks, 1000):
        events = [
            {
                "event_id": f"bench-ivr-{n}",
                "type": kinds[n % 3],
                "occurred_at": (NOW - dt.timedelta(minutes=30 + n % 600)).isoformat(),
                "order_id": f"ORD-IVR-{n}",
                "customer": {"id": f"CI-{n}", "name": "王芳", "phone": f"138{n:08d}"},
            }
            for n in range(start, min(start + 1000, callbacks))
        ]
        ingest_events(database.uow(), events=events, now=NOW, config=rules)
    # The benchmark server runs without autovacuum: give the planner its statistics.
    vacuum_analyze(DATABASE, "callbacks", "customers", "known_zones", "script_versions")


def dial_run(url: str, *, callbacks: int, minutes: int, cps: float) -> dict[str, Any]:
    """Play the dialer for `minutes` of simulated time with two replicas; what it placed."""
    create_database(DATABASE)
    replicas = [Database(url), Database(url)]
    try:
        metadata.create_all(replicas[0].engine)
        load(replicas[0], callbacks)
        clock = FixedClock(NOW)
        telephony = RecordingTelephony(clock)
        settings = Settings(
            database_url=url,
            rules=_rules(),
            telephony=TelephonySettings(calls_per_second=cps, max_concurrent=10_000),
        )
        end = NOW + dt.timedelta(minutes=minutes)

        def advance(seconds: float) -> None:
            clock.advance(dt.timedelta(seconds=seconds))

        tick = 0
        runs: list[float] = []
        started = time.perf_counter()
        while clock.now() < end:
            tick_at = NOW + dt.timedelta(seconds=tick)
            clock.set(max(clock.now(), tick_at))
            begun = time.perf_counter()
            jobs.ivr_dial(replicas[tick % 2], clock, settings, telephony, sleep=advance)
            runs.append(time.perf_counter() - begun)
            tick += 1
        wall = time.perf_counter() - started
    finally:
        for replica in replicas:
            replica.dispose()
        drop_database(DATABASE)
    placed = [t for t in telephony.placed if t < end]
    gaps = [(b - a).total_seconds() for a, b in zip(placed, placed[1:], strict=False)]
    busiest = 0
    j = 0
    for i, start in enumerate(placed):  # the most calls in any one-second window
        while j < len(placed) and placed[j] < start + dt.timedelta(seconds=1):
            j += 1
        busiest = max(busiest, j - i)
    return {
        "cps": cps,
        "placed": len(placed),
        "expected": int(minutes * 60 * cps),
        "busiest": busiest,
        "min_gap": min(gaps) if gaps else float("nan"),
        "max_gap": max(gaps) if gaps else float("nan"),
        "runs": len(runs),
        "run_ms": latency_ms(runs),
        "wall": wall,
    }


# -- the webhooks --------------------------------------------------------------------------------


def _is_cjk(ch: str) -> bool:
    # CJK ideographs, CJK punctuation, full-width forms: spoken one syllable (or pause) each.
    return "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"


@dataclass(frozen=True)
class Pace:
    """How a phone call spends its time between two webhooks (seconds).

    Twilio speaks each TwiML answer before anything else happens on the line: Mandarin
    text-to-speech at 4.5 characters a second (270 a minute, a brisk reading pace; punctuation
    counts as a character, for its pause), any other text at 14 characters a second (about 150
    English words a minute), 0.3 s between two <Say>s, the whole times a jitter. The customer
    then presses the key after a reaction time; now and then during the end of the prompt
    (barge-in, which <Gather> allows), and now and then not at all (the gather times out and
    Twilio follows the <Redirect>). Before the answer: call set-up, then ringing (answering-
    machine detection included). After the closing is spoken, Twilio hangs up and reports
    "completed".
    """

    zh_chars_per_second: float = 4.5
    other_chars_per_second: float = 14.0
    between_says: float = 0.3
    jitter: float = 0.15  # speaking time × uniform(1 - jitter, 1 + jitter)
    reaction: tuple[float, float] = (0.8, 3.0)  # end of the prompt → the key, uniform
    barge_in: float = 0.15  # share of keys pressed during the last 40 % of the prompt
    per_key: float = 0.4  # each further key of a number (and its '#')
    no_input: float = 0.03  # share of questions the customer lets time out
    setup: tuple[float, float] = (0.5, 2.0)  # "initiated" → "ringing", uniform
    ring: tuple[float, float] = (4.0, 15.0)  # "ringing" → answered, uniform

    def speaking(self, texts: list[str], rng: random.Random) -> float:
        seconds = self.between_says * max(len(texts) - 1, 0)
        for text in texts:
            cjk = sum(1 for ch in text if _is_cjk(ch))
            seconds += cjk / self.zh_chars_per_second
            seconds += (len(text) - cjk) / self.other_chars_per_second
        return seconds * rng.uniform(1 - self.jitter, 1 + self.jitter)

    def describe(self) -> str:
        return (
            f"Mandarin speech {self.zh_chars_per_second:g} characters/s, other text "
            f"{self.other_chars_per_second:g} characters/s, {self.between_says:g} s between "
            f"two <Say>s, speaking time ×{1 - self.jitter:g}–{1 + self.jitter:g}; the key "
            f"{self.reaction[0]:g}–{self.reaction[1]:g} s after the prompt ends "
            f"({self.barge_in:.0%} of keys during the prompt's last 40 %, "
            f"{self.per_key:g} s per further key of a number, {self.no_input:.0%} of "
            f"questions left to time out); set-up {self.setup[0]:g}–{self.setup[1]:g} s, "
            f"ringing {self.ring[0]:g}–{self.ring[1]:g} s"
        )


PACE = Pace()
# The keys pressed at a one-key question (4 and 5 are wrong at a yes/no question: asked
# again with a hint; 0 asks for an agent and ends the call; * repeats the question).
KEYS = ["1", "2", "5", "4", "0", "*"]
KEY_WEIGHTS = [0.62, 0.2, 0.06, 0.06, 0.02, 0.04]


class Stop(Exception):
    """The measured time is over (or a webhook failed): the call is left between webhooks."""


@dataclass
class Tally:
    """What the callers saw: every request (start, kind, seconds), calls, errors."""

    requests: list[tuple[float, str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)  # of the calls played to the end
    live: int = 0
    live_seen: list[tuple[float, int]] = field(default_factory=list)
    ran_out: bool = False


class Client:
    """Form POSTs over HTTP/1.1 on asyncio streams, with kept-alive connections: far cheaper
    than a general HTTP client, so that the callers take little of the cores they share with
    the server (the server's throughput is what the saturation run is after). A connection
    idle for `idle_limit` seconds is dropped before uvicorn's keep-alive timeout (5 s) can
    close it under a request; a call paused longer opens a new one, as Twilio would."""

    def __init__(self, base_url: str, idle_limit: float = 4.0) -> None:
        split = urllib.parse.urlsplit(base_url)
        assert split.hostname is not None and split.port is not None
        self.host, self.port = split.hostname, split.port
        self.idle_limit = idle_limit
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.perf_counter()
        while self._idle:
            since, reader, writer = self._idle.pop()
            if now - since < self.idle_limit:
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False

    async def post(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str]:
        """The status and the body of the answer."""
        split = urllib.parse.urlsplit(url)
        target = split.path + (f"?{split.query}" if split.query else "")
        body = urllib.parse.urlencode(params).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        message = (
            f"POST {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        ).encode() + body
        for _ in range(2):
            reader, writer, reused = await self._connection()
            writer.write(message)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                writer.close()
                partial = getattr(exc, "partial", b"")
                if reused and not partial:
                    continue  # closed by the server while idle: nothing was read, send again
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            length = int(fields.get("content-length", "0"))
            text = (await reader.readexactly(length)).decode() if length else ""
            if fields.get("connection") == "close":
                writer.close()
            else:
                self._idle.append((time.perf_counter(), reader, writer))
            return status, text
        raise ConnectionError(f"{url}: the connection closed twice")

    async def close(self) -> None:
        for _, _, writer in self._idle:
            writer.close()
        self._idle.clear()


class Caller:
    """Plays Twilio's part in calls, one after the other, paced by `pace` (None: no pause)."""

    def __init__(self, client: Client, pace: Pace | None, tally: Tally, stop_at: float) -> None:
        self.client = client
        self.pace = pace
        self.tally = tally
        self.stop_at = stop_at

    async def post(self, kind: str, url: str, params: dict[str, str]) -> str:
        if time.perf_counter() >= self.stop_at:
            raise Stop
        headers = {HEADER: sign(KEY, url, params)}
        begun = time.perf_counter()
        try:
            status, text = await self.client.post(url, params, headers)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.tally.errors.append(f"{url}: {type(exc).__name__} {exc}")
            raise Stop from exc
        self.tally.requests.append((begun, kind, time.perf_counter() - begun))
        if status >= 300:
            self.tally.errors.append(f"{url}: {status} {text[:200]}")
            raise Stop
        return text

    async def wait(self, seconds: float) -> None:
        if self.pace is not None and seconds > 0:
            await asyncio.sleep(seconds)

    async def play(self, request: CallRequest, sid: str, rng: random.Random) -> None:
        pace = self.pace
        base = {
            "CallSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": request.from_,
            "To": request.to,
            "Direction": "outbound-api",
        }
        status = request.status_callback
        begun = time.perf_counter()
        await self.post("status", status, {**base, "CallStatus": "initiated"})
        await self.wait(rng.uniform(*pace.setup) if pace else 0.0)
        await self.post("status", status, {**base, "CallStatus": "ringing"})
        await self.wait(rng.uniform(*pace.ring) if pace else 0.0)
        answered = {**base, "CallStatus": "in-progress", "AnsweredBy": "human"}
        # Twilio reports "answered" and asks for the TwiML at the same moment.
        _, twiml = await asyncio.gather(
            self.post("status", status, answered), self.post("voice", request.url, answered)
        )
        document: str | None = twiml
        while document is not None:
            document = await self.execute(document, answered, rng)
        duration = time.perf_counter() - begun
        completed = {**answered, "CallStatus": "completed", "CallDuration": f"{duration:.0f}"}
        await self.post("status (completed)", status, completed)
        self.tally.durations.append(duration)

    async def execute(self, twiml: str, answered: dict[str, str], rng: random.Random) -> str | None:
        """Say what the document says, press keys at its <Gather>; the next document (None:
        the call hangs up)."""
        pace = self.pace
        said: list[str] = []
        for verb in ET.fromstring(twiml):
            if verb.tag == "Say":
                said.append(verb.text or "")
            elif verb.tag == "Gather":
                said += [child.text or "" for child in verb if child.tag == "Say"]
                speaking = pace.speaking(said, rng) if pace else 0.0
                said = []
                if pace and rng.random() < pace.no_input:
                    await self.wait(speaking + float(verb.get("timeout", "5")))
                    continue  # no keys: Twilio goes on to the next verb, the <Redirect>
                if verb.get("finishOnKey"):
                    digits, finished = rng.choice(["0", "1", "1", "2", "3"]), "#"
                else:
                    digits, finished = rng.choices(KEYS, KEY_WEIGHTS)[0], ""
                if pace:
                    if rng.random() < pace.barge_in:
                        delay = speaking * rng.uniform(0.6, 1.0)
                    else:
                        delay = speaking + rng.uniform(*pace.reaction)
                    await self.wait(delay + pace.per_key * (len(digits + finished) - 1))
                params = {**answered, "Digits": digits, "FinishedOnKey": finished}
                return await self.post("gather", verb.get("action", ""), params)
            elif verb.tag == "Redirect":
                return await self.post("gather", (verb.text or "").strip(), answered)
            elif verb.tag == "Hangup":
                break
        await self.wait(pace.speaking(said, rng) if pace and said else 0.0)
        return None


async def keep_live(
    client: Client,
    calls: Iterator[tuple[CallRequest, str]],
    *,
    count: int,
    pace: Pace | None,
    ramp: float,
    stop_at: float,
    tally: Tally,
) -> None:
    """`count` calls live until `stop_at`: each of `count` lines starts a call (within the
    first `ramp` seconds) and the next one as soon as it ends."""

    async def line(number: int) -> None:
        rng = random.Random(number)
        await asyncio.sleep(rng.uniform(0, ramp))
        caller = Caller(client, pace, tally, stop_at)
        while time.perf_counter() < stop_at:
            call = next(calls, None)
            if call is None:
                tally.ran_out = True
                return
            tally.live += 1
            try:
                await caller.play(*call, rng)
            except Stop:
                return
            finally:
                tally.live -= 1

    async def watch() -> None:
        while time.perf_counter() < stop_at:
            tally.live_seen.append((time.perf_counter(), tally.live))
            await asyncio.sleep(0.5)

    await asyncio.gather(watch(), *(line(n) for n in range(count)))


def summary(values: list[float]) -> dict[str, float]:
    """Seconds in; n, mean, p50, p95, p99 and max in milliseconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": sum(values) / len(values) * 1000,
        **{f"p{q}": percentile(values, q) * 1000 for q in (50, 95, 99)},
        "max": max(values) * 1000,
    }


def fmt_summary(s: dict[str, float]) -> str:
    if not s.get("n"):
        return "no requests"
    return (
        f"p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, p99 {s['p99']:.1f} ms, "
        f"max {s['max']:.0f} ms (n={s['n']:,.0f})"
    )


def window(
    tally: Tally, begin: float, end: float, *, by_end: bool = False
) -> dict[str, list[float]]:
    """The latencies of the requests started (or, with `by_end`, answered) in [begin, end),
    by kind; "status" includes "status (completed)"."""
    kinds: dict[str, list[float]] = {}
    for start, kind, spent in tally.requests:
        at = start + spent if by_end else start
        if begin <= at < end:
            kinds.setdefault(kind, []).append(spent)
            if kind == "status (completed)":
                kinds.setdefault("status", []).append(spent)
    kinds["all"] = [
        spent for kind, values in kinds.items() if kind != "status (completed)" for spent in values
    ]
    return kinds


def per_second(tally: Tally, begin: float, end: float) -> tuple[int, int]:
    """The fewest and the most requests started in one second of [begin, end)."""
    seconds = int(end - begin)
    counts = [0] * max(seconds, 1)
    for start, _, _ in tally.requests:
        if begin <= start < begin + seconds:
            counts[int(start - begin)] += 1
    return min(counts), max(counts)


async def paced_run(
    client: Client,
    calls: Iterator[tuple[CallRequest, str]],
    server: Server,
    args: argparse.Namespace,
) -> dict[str, Any]:
    tally = Tally()
    started = time.perf_counter()
    measure_from = started + args.warmup
    measure_to = measure_from + args.seconds
    usage: dict[str, float] = {}

    async def cpu() -> None:
        await asyncio.sleep(measure_from - time.perf_counter())
        before = await asyncio.to_thread(CpuSample.take, server.pid, DATABASE)
        await asyncio.sleep(measure_to - time.perf_counter())
        after = await asyncio.to_thread(CpuSample.take, server.pid, DATABASE)
        usage.update(before.until(after))

    await asyncio.gather(
        keep_live(
            client,
            calls,
            count=args.calls,
            pace=PACE,
            ramp=args.ramp,
            stop_at=measure_to,
            tally=tally,
        ),
        cpu(),
    )
    kinds = window(tally, measure_from, measure_to)
    live = [n for at, n in tally.live_seen if measure_from <= at < measure_to]
    n = len(kinds["all"])
    return {
        "kinds": {kind: summary(values) for kind, values in sorted(kinds.items())},
        "requests": n,
        "rate": n / args.seconds,
        "rate_range": per_second(tally, measure_from, measure_to),
        "live": (min(live), max(live)) if live else (0, 0),
        "calls": len(tally.durations),
        "duration": summary(tally.durations),
        "errors": tally.errors,
        "ran_out": tally.ran_out,
        "usage": usage,
        "server_ms": usage.get("server_cpu_s", 0.0) / n * 1000 if n else float("nan"),
        "postgres_ms": usage.get("postgres_cpu_s", 0.0) / n * 1000 if n else float("nan"),
    }


async def saturation_run(
    client: Client,
    calls: Iterator[tuple[CallRequest, str]],
    server: Server,
    args: argparse.Namespace,
) -> dict[str, Any]:
    tally = Tally()
    settle = 3.0
    measure_from = time.perf_counter() + settle
    measure_to = measure_from + args.saturation_seconds
    profile = Profile(server.pid, args.profile, what="the API server at saturation")

    usage: dict[str, float] = {}

    async def profiled() -> None:
        await asyncio.sleep(settle)
        before = await asyncio.to_thread(CpuSample.take, server.pid, DATABASE)
        await asyncio.to_thread(profile.__enter__)
        await asyncio.sleep(max(measure_to - time.perf_counter() - 0.5, 0.0))
        await asyncio.to_thread(profile.__exit__)
        after = await asyncio.to_thread(CpuSample.take, server.pid, DATABASE)
        usage.update(before.until(after))

    await asyncio.gather(
        keep_live(
            client, calls, count=args.calls, pace=None, ramp=0.0, stop_at=measure_to, tally=tally
        ),
        profiled(),
    )
    kinds = window(tally, measure_from, measure_to, by_end=True)
    answered = len(window(tally, measure_from, measure_from + usage["wall_s"], by_end=True)["all"])
    return {
        "kinds": {kind: summary(values) for kind, values in sorted(kinds.items())},
        "rate": len(kinds["all"]) / args.saturation_seconds,
        "server_ms": usage["server_cpu_s"] / answered * 1000 if answered else float("nan"),
        "postgres_ms": usage["postgres_cpu_s"] / answered * 1000 if answered else float("nan"),
        "usage": usage,
        "errors": tally.errors,
        "ran_out": tally.ran_out,
        "profile": profile.summary() if args.profile else "",
    }


def webhook_run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    create_database(DATABASE)
    database = Database(url)
    server = Server(url)
    public = server.base_url
    env = {
        "CALLCENTER_TELEPHONY__PUBLIC_BASE_URL": public,
        "CALLCENTER_TELEPHONY__ACCOUNT_SID": "AC" + "0" * 32,
        "CALLCENTER_TELEPHONY__AUTH_TOKEN": KEY,
        "CALLCENTER_TELEPHONY__FROM_NUMBER": "+865918000000",
        "CALLCENTER_LOG_LEVEL": "WARNING",
    }
    # Enough calls for every line through the run (no call is shorter than 30 s here) and
    # for the saturation run (up to 1,500 requests/s, nine or ten requests a call).
    paced = args.calls * (int((args.warmup + args.seconds) / 30) + 2)
    needed = paced + int(args.saturation_seconds * 160) + args.calls
    saved = {name: os.environ.get(name) for name in env}
    try:
        metadata.create_all(database.engine)
        load(database, needed)
        telephony = TelephonySettings(
            public_base_url=public, calls_per_second=100, max_concurrent=10_000
        )
        planned = plan_dials(
            database.uow(),
            now=NOW,
            config=_rules(),
            telephony=telephony,
            provider="twilio",
            horizon=dt.timedelta(seconds=needed / 100 + 1),
        )
        assert len(planned) == needed, len(planned)
        vacuum_analyze(DATABASE, "callbacks", "ivr_calls")
        calls = [(p.request, f"CA{i:032d}") for i, p in enumerate(planned)]
        os.environ.update(env)
        load_before = os.getloadavg()
        with server:

            async def both() -> tuple[dict[str, Any], dict[str, Any]]:
                client = Client(public)
                log(
                    f"webhooks: {args.calls} live paced calls, {args.warmup:g} s warm-up, "
                    f"{args.seconds:g} s measured"
                )
                first = await paced_run(client, iter(calls[:paced]), server, args)
                await client.close()
                # A client of its own: no connection left idle by the paced calls.
                client = Client(public)
                log(f"webhooks: saturation, {args.saturation_seconds:g} s")
                second = await saturation_run(client, iter(calls[paced:]), server, args)
                await client.close()
                return first, second

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                paced_result, saturation = runner.run(both())
            errors = server.errors_in_log()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        database.dispose()
        drop_database(DATABASE)
    return {
        "paced": paced_result,
        "saturation": saturation,
        "server_errors": errors,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def run(args: argparse.Namespace) -> Report:
    report = Report(SECTION.removeprefix("## "))
    url = sqlalchemy_url(DATABASE)
    dials = []
    if not args.no_dialer:
        for cps in (1.0, 5.0):
            count = args.ivr_callbacks
            log(f"dialer: {count:,} due IVR callbacks, {args.minutes} simulated min, {cps}/s")
            dials.append(dial_run(url, callbacks=args.ivr_callbacks, minutes=args.minutes, cps=cps))
    for result in dials:
        exact = result["placed"] == result["expected"] and result["busiest"] <= result["cps"]
        report.checks.append(
            Check(
                f"IVR dialer, {args.ivr_callbacks:,} due callbacks, {args.minutes} simulated min "
                f"at {result['cps']:g} call/s, two replicas",
                f"{result['placed']:,} calls; at most {result['busiest']} in any second; "
                f"gaps {result['min_gap']:.3f}-{result['max_gap']:.3f} s",
                f"exactly {result['expected']:,}, never more than {result['cps']:g} in a second",
                exact,
            )
        )
    hooks = webhook_run(url, args)
    paced, saturation = hooks["paced"], hooks["saturation"]
    for run_name, failures in (("paced", paced["errors"]), ("saturation", saturation["errors"])):
        for failure in failures[:5]:
            log(f"failed webhook ({run_name}): {failure}")
    every = paced["kinds"]["all"]
    held = paced["live"][0] == args.calls and not paced["ran_out"]
    failed = paced["errors"] or hooks["server_errors"]
    report.checks.append(
        Check(
            f"IVR webhooks p99, {args.calls} live calls paced like phone calls (one API worker)",
            f"{every['p99']:.1f} ms (p50 {every['p50']:.1f} ms, p95 {every['p95']:.1f} ms; "
            f"{paced['requests']:,} requests in {args.seconds:g} s, {paced['rate']:.0f}/s)",
            f"< {P99_TARGET_MS:.0f} ms",
            every["p99"] < P99_TARGET_MS and held and not failed,
        )
    )
    sat = saturation["kinds"]["all"]
    report.checks.append(
        Check(
            f"IVR webhooks at saturation, {args.calls} callers without any pause (one API "
            "worker; information)",
            f"{saturation['rate']:.0f} requests/s (p50 {sat.get('p50', float('nan')):.0f} ms, "
            f"p99 {sat.get('p99', float('nan')):.0f} ms)",
            "—",
            None,
        )
    )
    if dials:
        report.details += [
            "Dialer: the scheduler's `ivr_dial` job on a simulated clock (a job run per "
            "simulated second, alternating between two replicas with their own connection "
            "pools; the wait for a slot advances the clock). Slots come from one shared row "
            "locked `FOR UPDATE`, so the limit holds across replicas; the concurrency limit "
            "was set out of reach here.",
            "",
            "| calls/s | placed | expected | busiest second | gap min / max | job runs | "
            "job run (wall) |",
            "|---|---|---|---|---|---|---|",
            *[
                f"| {r['cps']:g} | {r['placed']:,} | {r['expected']:,} | {r['busiest']} | "
                f"{r['min_gap']:.3f} / {r['max_gap']:.3f} s | {r['runs']:,} | "
                f"{fmt_latency(r['run_ms'])} |"
                for r in dials
            ],
            "",
        ]
    cores = os.cpu_count() or 1
    usage = paced["usage"]
    ours = usage["server_cpu_s"] + usage["client_cpu_s"] + usage["postgres_cpu_s"]
    others = max(usage["machine_busy_s"] - ours, 0.0) / usage["wall_s"]
    before, after = hooks["load_before"], hooks["load_after"]
    duration = paced["duration"]
    report.details += [
        f"Webhooks: `callcenter serve --workers 1` on PostgreSQL; the simulated callers (asyncio "
        "on uvloop, plain HTTP/1.1 with kept-alive connections, in the benchmark's process) "
        f"share the machine's {cores} cores with it and "
        "with PostgreSQL. Every request is signed as Twilio signs it and verified by the server.",
        "",
        f"**The target run: {args.calls} live calls, paced like phone calls.** Each call is "
        "what Twilio does: status callbacks `initiated`, `ringing`, then `in-progress` with the "
        "voice webhook at the same moment, a gather per key pressed, `completed` after the "
        f"closing. The pace ({PACE.describe()}) is that of the machine speaking the prompts "
        "and a person answering them; every call is answered by a person (no busy line, no "
        "answering machine: more webhooks per minute than a real mix). When a call ends the "
        f"next one starts, so {args.calls} are live at every moment (the calls start spread "
        f"over the first {args.ramp:g} s; measured from {args.warmup:g} s on, for "
        f"{args.seconds:g} s: every request started then).",
        "",
        f"- calls live while measured: {paced['live'][0]}–{paced['live'][1]}; calls played to "
        f"the end: {paced['calls']:,}, lasting p50 {duration.get('p50', 0) / 1000:.0f} s "
        f"(p95 {duration.get('p95', 0) / 1000:.0f} s)",
        f"- requests: {paced['requests']:,} in {args.seconds:g} s, {paced['rate']:.1f}/s "
        f"(fewest {paced['rate_range'][0]}, most {paced['rate_range'][1]} in one second)",
        "",
        "| webhook | p50 | p95 | p99 | max | n |",
        "|---|---|---|---|---|---|",
        *[
            f"| {kind} | {s['p50']:.1f} ms | {s['p95']:.1f} ms | {s['p99']:.1f} ms | "
            f"{s['max']:.0f} ms | {s['n']:,.0f} |"
            for kind in ("voice", "gather", "status", "status (completed)", "all")
            if (s := paced["kinds"].get(kind, {})).get("n")
        ],
        "",
        f"- CPU while measured: {describe_cpu(usage)}; per request: API server "
        f"{paced['server_ms']:.2f} ms, PostgreSQL {paced['postgres_ms']:.2f} ms",
        f"- machine: load average {before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f} (1 / 5 / "
        f"15 min) before the webhook runs, {after[0]:.2f} after; other processes used "
        f"{others:.2f} cores while measured",
        f"- errors: {len(paced['errors'])} failed webhooks, "
        f"{len(hooks['server_errors'])} server errors in its log"
        + ("; **the calls ran out**" if paced["ran_out"] else ""),
        "",
        f"**Saturation (information, not the target):** {args.calls} callers that send each "
        "request as soon as the previous answer arrives, with no pause at all "
        f"({args.calls} requests outstanding at every moment: a queue that never empties), "
        f"{args.saturation_seconds:g} s after 3 s of ramp: "
        f"{saturation['rate']:.0f} requests/s answered; latency "
        f"{fmt_summary(saturation['kinds']['all'])}"
        + ("; **the calls ran out**" if saturation["ran_out"] else "")
        + f"; {len(saturation['errors'])} failed webhooks. CPU per request: API server "
        f"{saturation['server_ms']:.2f} ms, PostgreSQL {saturation['postgres_ms']:.2f} ms; "
        f"{describe_cpu(saturation['usage'])}.",
        "",
        "Run: `python -m bench.bench_ivr` (replaces this section of bench/RESULTS.md).",
    ]
    if saturation["profile"]:
        report.findings.append(saturation["profile"])
    return report


def append_results(report: Report) -> None:
    from bench.common import checks_table, replace_section

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            SECTION,
            "",
            f"Measured {stamp} by `python -m bench.bench_ivr`.",
            "",
            checks_table(report.checks),
            "",
            *report.details,
            "",
        ]
    )
    replace_section(RESULTS, SECTION, section)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--ivr-callbacks", dest="ivr_callbacks", type=int, default=5000, help="due IVR callbacks"
    )
    p.add_argument("--minutes", type=int, default=10, help="simulated minutes of dialling")
    p.add_argument("--calls", type=int, default=200, help="live simulated calls")
    p.add_argument("--ramp", type=float, default=30.0, help="seconds over which calls start")
    p.add_argument("--warmup", type=float, default=90.0, help="seconds before measuring")
    p.add_argument("--seconds", type=float, default=120.0, help="seconds measured")
    p.add_argument(
        "--saturation-seconds",
        dest="saturation_seconds",
        type=float,
        default=20.0,
        help="seconds of the saturation run",
    )
    p.add_argument("--no-dialer", action="store_true", help="skip the dialer runs")
    p.add_argument("--profile", action="store_true", help="py-spy the server at saturation")
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    return p


def main() -> None:
    args = parser().parse_args()
    report = run(args)
    print_report(report)
    if not args.no_write:
        append_results(report)


if __name__ == "__main__":
    main()
