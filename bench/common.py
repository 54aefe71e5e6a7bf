"""What the benchmarks share: the database they create and drop, the API server they start,
bulk loading of a queue, users and tokens, CPU accounting, statistics and the report rows.

Settings (environment):
  CALLCENTER_BENCH_PG  server URL without a database (default postgresql://postgres@127.0.0.1:5432)
  CALLCENTER_BENCH_DB  the database the benchmarks create and drop (default
                       callcenter_bench_<process id>)
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import inspect
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from callcenter.config import RulesConfig
from callcenter.db import Database
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_token, create_user
from callcenter.windows.rules import is_open, next_close

PROJECT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("CALLCENTER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432").rstrip(
    "/"
)
# One database per benchmark process, so that runs started side by side do not drop each
# other's database.
BENCH_DB = os.environ.get("CALLCENTER_BENCH_DB", f"callcenter_bench_{os.getpid()}")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# The database
# ---------------------------------------------------------------------------------------


def dsn(database: str = BENCH_DB) -> str:
    """A libpq URL for psycopg."""
    return f"{PG_SERVER}/{database}"


def sqlalchemy_url(database: str = BENCH_DB) -> str:
    """The CALLCENTER_DATABASE_URL of the application (psycopg 3 driver)."""
    scheme, rest = PG_SERVER.split("://", 1)
    return f"{scheme}+psycopg://{rest}/{database}"


def drop_database(name: str = BENCH_DB) -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def create_database(name: str = BENCH_DB) -> None:
    drop_database(name)
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def callcenter_command() -> list[str]:
    beside = Path(sys.executable).parent / "callcenter"
    found = str(beside) if beside.exists() else shutil.which("callcenter")
    if found is None:
        raise RuntimeError("the `callcenter` command is not installed (pip install -e .)")
    return [found]


def app_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CALLCENTER_DATABASE_URL"] = url
    env["CALLCENTER_SCHEDULER_ENABLED"] = "false"
    return env


def migrate(url: str) -> None:
    """`callcenter db upgrade` against `url`."""
    done = subprocess.run(
        [*callcenter_command(), "db", "upgrade"],
        env=app_env(url),
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"callcenter db upgrade failed:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def bench_database(name: str = BENCH_DB, *, keep: bool = False) -> Iterator[str]:
    """A fresh, migrated database; its SQLAlchemy URL. Dropped afterwards unless `keep`."""
    log(f"creating database {name}")
    create_database(name)
    try:
        url = sqlalchemy_url(name)
        migrate(url)
        yield url
    finally:
        if not keep:
            log(f"dropping database {name}")
            drop_database(name)


def vacuum_analyze(database: str, *tables: str) -> None:
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")


# ---------------------------------------------------------------------------------------
# The API server
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`callcenter serve --no-scheduler --workers 1` on a free localhost port, on the
    database at `url`; or, given `app` ("module:attribute") instead, that ASGI app served by
    uvicorn as `callcenter serve` serves the product (uvloop, httptools, proxy headers,
    access log at INFO)."""

    def __init__(self, url: str | None = None, *, app: str | None = None) -> None:
        if (url is None) == (app is None):
            raise ValueError("give a database URL or an app, not both")
        self.url = url
        self.app = app
        self.host = "127.0.0.1"
        self.port = free_port()
        self.base_url = f"http://{self.host}:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="callcenter-bench-server-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        listen = ["--host", self.host, "--port", str(self.port)]
        if self.app is not None:
            command = [sys.executable, "-m", "uvicorn", self.app, *listen]
            command += ["--proxy-headers", "--log-level", "info"]
            env = dict(os.environ)
        else:
            assert self.url is not None
            command = [*callcenter_command(), "serve", "--no-scheduler", "--workers", "1", *listen]
            env = app_env(self.url)
        self.process = subprocess.Popen(
            command, env=env, cwd=PROJECT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log_tail()}")
            try:
                # An app has no health check of its own: any answer means it is up.
                status = httpx.get(f"{self.base_url}/healthz", timeout=2).status_code
                if status == 200 or self.app is not None:
                    log(f"server up on port {self.port} (pid {self.pid})")
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not become healthy:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def errors_in_log(self) -> list[str]:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace").splitlines()
        return [line for line in text if "Traceback" in line or " 500 " in line]

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


# ---------------------------------------------------------------------------------------
# CPU accounting (from /proc: the server, this process, every postgres process, the machine)
# ---------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int | str) -> tuple[str, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
    return comm, (int(fields[11]) + int(fields[12])) / _TICK


def process_cpu(pid: int) -> float:
    found = _proc_stat(pid)
    return found[1] if found else 0.0


def postgres_state(database: str) -> tuple[list[int], float, float]:
    """The backends connected to `database` with the WAL writer, checkpointer and background
    writer (which work for every database of the server); and, from pg_stat_database, the
    sessions ever opened on `database` and the milliseconds its backends spent executing."""
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type IN "
            "('walwriter', 'checkpointer', 'background writer')",
            (database,),
        ).fetchall()
        conn.execute("SELECT pg_stat_clear_snapshot()")
        stats = conn.execute(
            "SELECT sessions, active_time FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    sessions, active = (float(stats[0]), float(stats[1])) if stats else (0.0, 0.0)
    return [int(row[0]) for row in rows], sessions, active


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    values = [int(v) for v in first[:8]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


@dataclass
class CpuSample:
    """CPU seconds so far of the server, this process, the PostgreSQL processes that work for
    the benchmark's database, and the whole machine."""

    wall: float
    server: float
    client: float
    postgres: dict[int, float]
    busy: float
    sessions: float
    active_ms: float

    @classmethod
    def take(cls, server_pid: int | None, database: str) -> CpuSample:
        pids, sessions, active = postgres_state(database)
        return cls(
            wall=time.perf_counter(),
            server=process_cpu(server_pid) if server_pid else 0.0,
            client=time.process_time(),
            postgres={pid: process_cpu(pid) for pid in pids},
            busy=machine_busy()[0],
            sessions=sessions,
            active_ms=active,
        )

    def until(self, later: CpuSample) -> dict[str, float]:
        """CPU seconds used by each party between two samples, and the wall time."""
        postgres = sum(
            cpu - self.postgres.get(pid, 0.0) for pid, cpu in later.postgres.items() if cpu
        )
        return {
            "wall_s": later.wall - self.wall,
            "server_cpu_s": later.server - self.server,
            "client_cpu_s": later.client - self.client,
            "postgres_cpu_s": postgres,
            "machine_busy_s": later.busy - self.busy,
            "pg_sessions_opened": later.sessions - self.sessions,
            "pg_active_s": (later.active_ms - self.active_ms) / 1000,
        }


class ActivitySampler:
    """What the benchmark database's client backends are doing, sampled from pg_stat_activity
    every `interval` seconds in a thread while the context is open."""

    def __init__(self, database: str, interval: float = 0.1) -> None:
        self.database = database
        self.interval = interval
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock_waits: collections.Counter[str] = collections.Counter()  # by statement
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, left(query, 200) "
                    "FROM pg_stat_activity "
                    "WHERE datname = %s AND backend_type = 'client backend'",
                    (self.database,),
                ).fetchall()
                self.samples += 1
                for state, wait_type, wait, query in rows:
                    if state == "active" and wait_type == "Lock":
                        self.lock_waits[" ".join((query or "").split()[:3])] += 1
                    if state == "active" and wait_type:
                        self.counts[f"active, waiting: {wait_type} {wait}"] += 1
                    elif state == "active":
                        self.counts["active, running"] += 1
                    else:
                        self.counts[state or "unknown"] += 1

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def share(self, prefix: str) -> float:
        """The average number of backends in states starting with `prefix`."""
        if not self.samples:
            return 0.0
        return sum(n for key, n in self.counts.items() if key.startswith(prefix)) / self.samples

    def waiting_in(self) -> str:
        """The statements that waited for locks, as "`INSERT INTO customers` (share)"."""
        total = sum(self.lock_waits.values())
        return ", ".join(
            f"`{query}` ({count / total:.0%})" for query, count in self.lock_waits.most_common(3)
        )

    def describe(self, top: int = 6) -> str:
        if not self.samples:
            return "no samples"
        parts = [f"{key} {count / self.samples:.1f}" for key, count in self.counts.most_common(top)]
        text = (
            f"average number of the database's backends in each state ({self.samples} samples "
            f"of pg_stat_activity): " + ", ".join(parts)
        )
        if self.lock_waits:
            text += f"; the statements waiting for locks: {self.waiting_in()}"
        return text


def cpu_ceiling(usage: dict[str, float], operations: int) -> dict[str, float]:
    """CPU per operation, and the rate the machine could reach if nothing else ran on it:
    one API worker uses at most one core (the GIL), all three parties share the cores."""
    cores = os.cpu_count() or 1
    if operations <= 0:
        return {}
    server = usage["server_cpu_s"] / operations
    total = (usage["server_cpu_s"] + usage["client_cpu_s"] + usage["postgres_cpu_s"]) / operations
    return {
        "server_ms": server * 1000,
        "postgres_ms": usage["postgres_cpu_s"] / operations * 1000,
        "client_ms": usage["client_cpu_s"] / operations * 1000,
        "ceiling": min(1 / server if server else float("inf"), cores / total),
    }


def describe_cpu(usage: dict[str, float]) -> str:
    wall = usage["wall_s"] or 1.0
    cores = os.cpu_count() or 1
    ours = usage["server_cpu_s"] + usage["client_cpu_s"] + usage["postgres_cpu_s"]
    others = usage["machine_busy_s"] - ours

    def share(key: str) -> str:
        return f"{usage[key]:.1f} s ({usage[key] / wall:.2f} cores)"

    return (
        f"over {wall:.1f} s of wall time on {cores} cores: API server {share('server_cpu_s')}, "
        f"load generator {share('client_cpu_s')}, PostgreSQL (the benchmark's backends, WAL "
        f"writer, checkpointer) {share('postgres_cpu_s')}, "
        f"other processes on the machine {max(others, 0.0):.1f} s; "
        f"machine busy {usage['machine_busy_s'] / (wall * cores):.0%}. PostgreSQL sessions "
        f"opened meanwhile: {usage['pg_sessions_opened']:.0f} (backends that exit are not in "
        f"the CPU figure); time its backends spent executing: {usage['pg_active_s']:.1f} s"
    )


# ---------------------------------------------------------------------------------------
# Profiling the server (optional: needs py-spy, which is not a project dependency)
# ---------------------------------------------------------------------------------------


class Profile:
    """`py-spy record --gil` of a process (the server, or this one) while the context is open;
    nothing if py-spy is missing. `summary()` aggregates the sampled stacks."""

    def __init__(
        self,
        pid: int,
        enabled: bool,
        rate: int = 200,
        what: str = "the server",
        blocking: bool = False,
    ) -> None:
        # Pausing a process with dozens of threads at every sample perturbs it (the server's
        # thread hand-offs grow); without pausing, a few stacks are read only partly.
        self.pid = pid
        self.what = what
        self.blocking = blocking
        exe = Path(sys.executable).parent / "py-spy"
        self.exe = str(exe) if exe.exists() else shutil.which("py-spy")
        self.enabled = enabled and self.exe is not None
        self.rate = rate
        self.out: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stacks = ""
        if enabled and self.exe is None:
            log("profiling asked for, but py-spy is not installed: skipped")

    def __enter__(self) -> Profile:
        if self.enabled:
            assert self.exe is not None
            self.out = Path(tempfile.mkdtemp(prefix="callcenter-bench-prof-")) / "stacks.txt"
            self.process = subprocess.Popen(
                [
                    self.exe,
                    "record",
                    "--pid",
                    str(self.pid),
                    "--rate",
                    str(self.rate),
                    "--format",
                    "raw",
                    "--threads",
                    "--output",
                    str(self.out),
                    "--gil",
                    *([] if self.blocking else ["--nonblocking"]),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.out is not None:
            with contextlib.suppress(OSError):
                self.stacks = self.out.read_text(errors="replace")
            shutil.rmtree(self.out.parent, ignore_errors=True)

    def analyse(
        self,
        groups: Sequence[tuple[str, Matcher]] = (),
        functions: Sequence[FunctionSource] = (),
    ) -> None:
        """Count the samples by stage (`groups`: label and a substring of a frame or a
        predicate on the frames; a sample counts in the first group it matches), by library
        (the innermost frame that belongs to a known library), and by function."""
        self.groups = [label for label, _ in groups]
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.own: collections.Counter[str] = collections.Counter()
        self.staged: collections.Counter[str] = collections.Counter()
        self.libraries: collections.Counter[str] = collections.Counter()
        self.functions = list(functions)
        self.lines: dict[str, collections.Counter[int]] = {
            f.name: collections.Counter() for f in functions
        }
        self.total = 0
        for line in self.stacks.splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = stack.split(";")
            if any(idle in frames[-1] for idle in _IDLE_FRAMES):
                continue  # a thread waiting for work, not working
            count = int(count_text)
            self.total += count
            self.own[_short(frames[-1])] += count
            for name in {_short(f) for f in frames[1:]}:
                if not any(wrapper in name for wrapper in _WRAPPER_FRAMES):
                    self.inclusive[name] += count
            stage = next((label for label, match in groups if _matches(match, frames)), "other")
            self.staged[stage] += count
            library = next(
                (
                    label
                    for frame in reversed(frames)
                    for label, prefix in LIBRARIES
                    if _location(frame).startswith(prefix)
                ),
                "other (standard library, interpreter)",
            )
            self.libraries[library] += count
            for function in self.functions:
                number = function.line_in(frames)
                if number is not None:
                    self.lines[function.name][number] += count

    def top_lines(self, name: str, count: int = 3) -> str:
        """The `count` lines of a function with the most samples, as "`code` (share)"."""
        function = next((f for f in self.functions if f.name == name), None)
        if function is None or not self.total:
            return ""
        return "; ".join(
            f"`{function.text(line)}` ({n / self.total:.0%})"
            for line, n in self.lines[name].most_common(count)
        )

    def top(self, kind: str, count: int = 3) -> str:
        """The `count` biggest stages or libraries, as "label (share)", joined."""
        if not self.stacks or not getattr(self, "total", 0):
            return ""
        counter = self.staged if kind == "stages" else self.libraries
        return "; ".join(
            f"{label} ({n / self.total:.0%})" for label, n in counter.most_common(count)
        )

    def summary(
        self,
        groups: Sequence[tuple[str, Matcher]] = (),
        top: int = 20,
        functions: Sequence[FunctionSource] = (),
    ) -> str:
        """Markdown tables of the samples (see `analyse`)."""
        if not self.stacks:
            return ""
        self.analyse(groups, functions)
        total = self.total
        if total == 0:
            return ""

        def table(title: str, counts: collections.Counter[str], order: Sequence[str]) -> list[str]:
            rows = [f"| {title} | share of GIL samples |", "|---|---|"]
            rows += [f"| {key} | {counts[key] / total:.1%} |" for key in order if counts[key]]
            return [*rows, ""]

        how = (
            "pausing the process for each sample"
            if self.blocking
            else "without pausing the process, so a few stacks are read only partly and land in "
            "*other*"
        )
        lines = [
            f"{total} samples of {self.what} holding the GIL (py-spy `--gil`, {self.rate} Hz, "
            f"{how}): its Python work, which one process can do on one core at most.",
            "",
        ]
        if groups:
            lines += table(
                "stage (first match, top to bottom)", self.staged, [*self.groups, "other"]
            )
        for function in self.functions:
            counts = self.lines[function.name]
            if not counts:
                continue
            inside = sum(counts.values())
            stale = (
                " — the file changed during the run, the code shown may not be what ran"
                if function.changed()
                else ""
            )
            lines += [
                f"| line of `{function.name}` ({inside / total:.0%} of the samples in all"
                f"{stale}) | share |",
                "|---|---|",
            ]
            lines += [
                f"| {line}: `{function.text(line)}` | {n / total:.1%} |"
                for line, n in counts.most_common(12)
            ]
            lines += [""]
        lines += table(
            "library (innermost known frame)",
            self.libraries,
            [key for key, _ in self.libraries.most_common()],
        )
        lines += ["| function (inclusive) | share |", "|---|---|"]
        lines += [f"| `{k}` | {c / total:.1%} |" for k, c in self.inclusive.most_common(top)]
        lines += ["", "| function (self) | share |", "|---|---|"]
        lines += [f"| `{k}` | {c / total:.1%} |" for k, c in self.own.most_common(15)]
        return "\n".join(lines)


LIBRARIES = [  # (label, start of the file's location as `_location` gives it)
    ("psycopg: SQL text → PostgreSQL query (`_queries.py`)", "psycopg/_queries.py"),
    ("psycopg: adapt, send, receive", "psycopg"),
    (
        "SQLAlchemy: build and compile SQL (`sql/c*.py`: compiler, crud, coercions, cache key)",
        "sqlalchemy/sql/c",
    ),
    ("SQLAlchemy: ORM", "sqlalchemy/orm/"),
    ("SQLAlchemy: core, engine, pool", "sqlalchemy/"),
    ("SQLModel", "sqlmodel/"),
    ("pydantic", "pydantic"),
    ("phonenumbers", "phonenumbers/"),
    ("FastAPI", "fastapi/"),
    ("Starlette", "starlette/"),
    ("uvicorn, httptools, uvloop", "uvicorn/"),
    ("anyio (thread hand-off)", "anyio/"),
    ("application (`callcenter/`, `api/`)", "callcenter/"),
    ("application (`callcenter/`, `api/`)", "api/"),
    ("json", "json/"),
    ("logging", "logging/"),
    ("zoneinfo", "zoneinfo/"),
]


Matcher = str | Callable[[Sequence[str]], bool]


def _matches(match: Matcher, frames: Sequence[str]) -> bool:
    if isinstance(match, str):
        return any(match in frame for frame in frames)
    return match(frames)


@dataclass
class FunctionSource:
    """A function of the code under test with its file's lines as they were when it was
    loaded (others may be editing the file): to name the lines a profile samples."""

    name: str
    path: str
    lines: list[str]

    @classmethod
    def of(cls, func: Callable[..., Any]) -> FunctionSource:
        path = str(Path(inspect.getsourcefile(func) or "").resolve())
        # py-spy names a method with its class (`HotPath.claim`), as `__qualname__` does.
        return cls(func.__qualname__, path, Path(path).read_text().splitlines())

    def line_in(self, frames: Sequence[str]) -> int | None:
        """The line this function is executing in a sampled stack (innermost call), if any."""
        for frame in reversed(frames):
            name, _, where = frame.partition(" (")
            if name != self.name:
                continue
            file, _, line = where.rstrip(")").rpartition(":")
            # py-spy names files relative to the profiled process's working directory.
            if (file == self.path or self.path.endswith("/" + file.lstrip("./"))) and (
                line.isdigit()
            ):
                return int(line)
        return None

    def text(self, line: int) -> str:
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else "?"
        return code if len(code) <= 80 else code[:77] + "..."

    def changed(self) -> bool:
        """Has the file changed since it was read (so the code shown may not be what ran)?"""
        try:
            return Path(self.path).read_text().splitlines() != self.lines
        except OSError:
            return True


_WRAPPER_FRAMES = (
    "threading.py",
    "typer/",
    "click/",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/",
    "callcenter/cli.py",
    "<module>",
    "WorkerThread.run",
    "uvloop",
    "runpy",
    "bench/",
)

_IDLE_FRAMES = (
    "wait (threading.py",
    "_worker (concurrent",
    "select (selectors.py",
    "run_forever",
    "_run_once",
    "get (queue.py",
    "(idle)",
)


_INTERPRETER = re.compile(r"^.*?lib/python3\.\d+/(?:site-packages/)?")


def _location(frame: str) -> str:
    """The file of a py-spy frame ("function (path/to/file.py:123)") without its line:
    relative to the project, to site-packages, or to the standard library."""
    where = frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    stripped = _INTERPRETER.sub("", where)
    if stripped != where:
        return stripped
    with contextlib.suppress(ValueError):
        return str(Path(where).resolve().relative_to(PROJECT))
    return where


def _short(frame: str) -> str:
    return f"{frame.partition(' (')[0]} ({_location(frame)})"


# ---------------------------------------------------------------------------------------
# Calling windows, users, the queue
# ---------------------------------------------------------------------------------------

OFFSET_ZONES = [f"Etc/GMT{offset:+d}" if offset else "Etc/GMT" for offset in range(-14, 13)]


def open_zone(
    now: dt.datetime, minimum: dt.timedelta = dt.timedelta(minutes=15)
) -> tuple[str, dt.datetime]:
    """The fixed-offset zone whose calling window stays open longest from `now`, and when it
    closes. The benchmarks use the real clock, so their customers live there."""
    windows = RulesConfig().windows
    best: tuple[str, dt.datetime] | None = None
    for name in OFFSET_ZONES:
        zone = ZoneInfo(name)
        if is_open(now, zone, windows):
            closes = next_close(now, zone, windows)
            if best is None or closes > best[1]:
                best = (name, closes)
    if best is None or best[1] - now < minimum:
        raise RuntimeError(f"no zone among {OFFSET_ZONES[0]}..{OFFSET_ZONES[-1]} stays open")
    return best


def make_users(
    database: Database, prefix: str, count: int, role: UserRole
) -> list[tuple[User, str]]:
    """`count` users with one API token each (no password: no slow hashing)."""
    now = dt.datetime.now(dt.UTC)
    made = []
    for i in range(1, count + 1):
        name = f"{prefix}{i:03d}"
        user = create_user(database.uow(), username=name, role=role, now=now)
        made.append((user, create_token(database.uow(), username=name, now=now)))
    return made


def load_queue(
    database: str,
    *,
    callbacks: int,
    customers: int,
    zone: str,
    now: dt.datetime,
    seed: float = 0.42,
) -> float:
    """Bulk-load `callbacks` pending agent callbacks for `customers` customers in `zone`
    (INSERT ... SELECT generate_series), all available now, hard limits spread over the next
    one to three days; then VACUUM ANALYZE. The seconds it took."""
    started = time.perf_counter()
    with psycopg.connect(dsn(database)) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(%s)", (seed,))
        base_customer = conn.execute("SELECT coalesce(max(id), 0) FROM customers").fetchone()
        base_callback = conn.execute("SELECT coalesce(max(id), 0) FROM callbacks").fetchone()
        assert base_customer is not None and base_callback is not None
        c0, b0 = int(base_customer[0]), int(base_callback[0])
        conn.execute(
            """
            INSERT INTO customers (id, external_id, name, phone, timezone, region,
                                   info_as_of, created_at)
            SELECT %(c0)s + g, 'BC-' || (%(c0)s + g), 'Customer ' || (%(c0)s + g),
                   '+86138' || lpad((%(c0)s + g)::text, 8, '0'), %(zone)s, NULL,
                   %(now)s, %(now)s
            FROM generate_series(1, %(n)s) AS g
            """,
            {"c0": c0, "n": customers, "zone": zone, "now": now},
        )
        conn.execute("INSERT INTO known_zones (name) VALUES (%s) ON CONFLICT DO NOTHING", (zone,))
        # Three agent callback types with their handbook deadlines (CB-1..CB-3): install
        # 24 h / 72 h, repair 24 h / 48 h, complaint 48 h / 48 h; anchors in the last 36 hours.
        conn.execute(
            """
            INSERT INTO callbacks (id, type, status, channel, customer_id, order_id, event_id,
                                   anchor_at, available_at, due_at, hard_due_at,
                                   attempt_count, unreached_count, created_at, updated_at)
            SELECT %(b0)s + g, kind, 'pending', 'agent', %(c0)s + 1 + (g - 1) %% %(nc)s,
                   'BO-' || (%(b0)s + g), 'bevt-' || (%(b0)s + g),
                   anchor, anchor,
                   anchor + CASE kind WHEN 'complaint' THEN interval '48 hours'
                                      ELSE interval '24 hours' END,
                   anchor + CASE kind WHEN 'install' THEN interval '72 hours'
                                      ELSE interval '48 hours' END,
                   0, 0, %(now)s, %(now)s
            FROM (
                SELECT g,
                       (ARRAY['install', 'repair', 'complaint'])[1 + (g %% 3)] AS kind,
                       %(now)s - random() * interval '36 hours' AS anchor
                FROM generate_series(1, %(n)s) AS g
            ) AS s
            """,
            {"b0": b0, "c0": c0, "nc": customers, "n": callbacks, "now": now},
        )
        conn.execute("SELECT setval('customers_id_seq', (SELECT max(id) FROM customers))")
        conn.execute("SELECT setval('callbacks_id_seq', (SELECT max(id) FROM callbacks))")
        conn.commit()
    vacuum_analyze(database, "customers", "callbacks", "known_zones")
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------
# Statistics and the report
# ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_ms(values: Sequence[float]) -> dict[str, float]:
    """Seconds in; a summary in milliseconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": statistics.fmean(values) * 1000,
        "p50": percentile(values, 50) * 1000,
        "p90": percentile(values, 90) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": max(values) * 1000,
    }


def fmt_ms(value: float) -> str:
    digits = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:,.{digits}f} ms"


def fmt_latency(summary: dict[str, float]) -> str:
    if not summary.get("n"):
        return "no samples"
    parts = [f"{key} {fmt_ms(summary[key])}" for key in ("mean", "p50", "p90", "p99", "max")]
    return ", ".join(parts) + f" (n={summary['n']:,.0f})"


@dataclass
class Check:
    """One row of the results table."""

    what: str
    measured: str
    target: str
    passed: bool | None  # None: informational, no target


@dataclass
class Report:
    title: str
    checks: list[Check] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # where the time goes, for misses

    def markdown(self) -> str:
        return "\n".join([f"## {self.title}", "", *self.details, ""])


def checks_table(checks: Sequence[Check]) -> str:
    lines = ["| what | measured | target | result |", "|---|---|---|---|"]
    for check in checks:
        verdict = "—" if check.passed is None else ("pass" if check.passed else "**FAIL**")
        lines.append(f"| {check.what} | {check.measured} | {check.target} | {verdict} |")
    return "\n".join(lines)


def print_report(report: Report) -> None:
    print(checks_table(report.checks))
    print()
    if report.findings:
        print("\n".join(f"- {finding}" for finding in report.findings))
        print()
    print(report.markdown())


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    with psycopg.connect(dsn("postgres")) as conn:
        version_row = conn.execute("SHOW server_version").fetchone()
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
                "('shared_buffers', 'synchronous_commit', 'fsync', 'autovacuum', 'work_mem', "
                "'jit', 'max_connections') ORDER BY name"
            ).fetchall()
        )
    loops, best = 1000, float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(loops):
            sum(range(10_000))
        best = min(best, (time.perf_counter() - started) / loops)
    packages = []
    for name in ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "psycopg", "httpx"):
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            packages.append(f"{name} {importlib_metadata.version(name)}")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python speed": f"`sum(range(10000))` {best * 1e6:.0f} µs (best of 5; under the "
        "machine's load at that moment)",
        "postgresql": version_row[0] if version_row else "unknown",
        "postgresql settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
        "packages": ", ".join(packages),
    }


def add_common_arguments(parser: Any, *, profile: bool = True) -> None:
    parser.add_argument("--database", default=BENCH_DB, help="database to create and drop")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    if profile:
        parser.add_argument(
            "--profile", action="store_true", help="record the server with py-spy (if installed)"
        )


EARLIER_RUNS = "### Earlier runs"  # notes kept when a benchmark writes its section again


def replace_section(path: Path, heading: str, section: str) -> None:
    """Put `section` (which starts with `heading`) in the results file in place of the one
    there, keeping that one's notes on earlier runs; at the end of the file if there is none."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(heading) + r".*?(?=\n## |\Z)", re.DOTALL)
    found = pattern.search(text)
    if found:
        earlier = found.group(0).find(EARLIER_RUNS)
        if earlier >= 0:
            section = section.rstrip("\n") + "\n\n" + found.group(0)[earlier:].strip("\n") + "\n"
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
