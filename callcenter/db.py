"""Engine, session factory and the unit of work (one transaction per service call).

SQLite (the embedded default) runs in WAL mode and opens every transaction with
`BEGIN IMMEDIATE`, so a claim's read and write happen under the write lock: claims are
serialised without any in-process lock. PostgreSQL claims use `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Connections each process keeps to PostgreSQL; the API runs at most this many requests
# database work at once (api/app.py limits its worker threads to it).
DB_POOL_SIZE = 20
# Seconds to wait for a new PostgreSQL connection.
PG_CONNECT_TIMEOUT_SECONDS = 5


def is_sqlite(url: str) -> bool:
    return sa.engine.make_url(url).get_backend_name() == "sqlite"


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, configured for safe concurrent claims on its backend."""
    if is_sqlite(url):
        connect_args = {"check_same_thread": False, "timeout": 30}
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # A database host that does not answer fails the request within seconds (503), instead
    # of after the operating system's TCP timeout of minutes (unless the URL sets its own).
    if "connect_timeout" not in sa.engine.make_url(url).query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS} | dict(
            kwargs.get("connect_args", {})
        )
    # As many connections as the API's worker threads use at once (see api/app.py): a pool
    # smaller than that opens and closes connections all the time, and each costs a fork.
    kwargs.setdefault("pool_size", DB_POOL_SIZE)
    kwargs.setdefault("max_overflow", 5)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (the driver's would be DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


SessionFactory = Callable[[], Session]


def make_session_factory(engine: Engine) -> SessionFactory:
    factory = sessionmaker(bind=engine, class_=Session, expire_on_commit=False)
    return factory


class UnitOfWork:
    """One transaction. Rolled back unless `commit()` was called; services own it.

    Usage: `with uow: ...; uow.commit()`.
    """

    def __init__(self, session_factory: SessionFactory) -> None:
        self._factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use it in a `with` block")
        return self._session

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("the unit of work is already open")
        self._session = self._factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() ends any uncommitted transaction with a rollback, and detaches what was
        # loaded without expiring it, so services may return the rows they read.
        try:
            self.session.close()
        finally:
            self._session = None

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    @property
    def dialect(self) -> str:
        bind = self.session.get_bind()
        return bind.dialect.name


UnitOfWorkFactory = Callable[[], UnitOfWork]


class Database:
    """The engine and how to open units of work on it."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_db_engine(url, **engine_kwargs)
        self.session_factory = make_session_factory(self.engine)
        self._connect_args: dict[str, Any] = dict(engine_kwargs.get("connect_args", {}))

    def psycopg_connect_args(self) -> dict[str, Any]:
        """How to open a psycopg connection to this PostgreSQL database as the engine does
        (the URL's parameters with the engine's own connect arguments)."""
        if self.engine.dialect.name != "postgresql":
            raise ValueError(f"{self.engine.dialect.name} is not PostgreSQL")
        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        params.pop("context", None)  # SQLAlchemy's own adapters: these connections use psycopg's
        params.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_SECONDS)
        return {**params, **self._connect_args}

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def dispose(self) -> None:
        self.engine.dispose()


class AsyncConnections:
    """A few asyncio connections to PostgreSQL (autocommit), opened on first use in the event
    loop that uses them, at most `size` at once: the agents' hot requests run on them without a
    worker thread (`callcenter.callbacks.hotpath`). A connection an error went through is
    closed, not used again."""

    def __init__(
        self, database: Database, size: int, *, settings: Mapping[str, str] | None = None
    ) -> None:
        self._params = database.psycopg_connect_args()
        # PostgreSQL settings for these connections' sessions, after the engine's own options.
        options = [self._params.get("options", "")]
        options += [f"-c {name}={value}" for name, value in (settings or {}).items()]
        self._params["options"] = " ".join(option for option in options if option)
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)

    async def acquire(self) -> Any:
        """A connection, once one of the `size` is free; give it back with `release` or, after
        an error, `discard`."""
        import psycopg

        await self._slots.acquire()
        try:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(autocommit=True, **self._params)
        except BaseException:
            self._slots.release()
            raise
        return conn

    def release(self, conn: Any) -> None:
        """Give back a connection whose work went through (autocommit: nothing left open)."""
        self._idle.append(conn)
        self._slots.release()

    async def discard(self, conn: Any) -> None:
        """Close a connection whose work failed, whatever state that left it in."""
        try:
            await conn.close()
        finally:
            self._slots.release()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


def upkeep_warnings(engine: Engine) -> list[str]:
    """What an operator should hear at start-up about the database's upkeep. On PostgreSQL with
    autovacuum off, tables are never analyzed: without statistics the claim sorts every open
    callback instead of walking the queue's index (measured: 200 ms of PostgreSQL's CPU per
    claim at 5,000 open callbacks, against well under 1 ms)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        return autovacuum_warnings(str(connection.exec_driver_sql("SHOW autovacuum").scalar()))


def autovacuum_warnings(setting: str) -> list[str]:
    """The warning for PostgreSQL's `autovacuum` setting, if it needs one."""
    if setting == "on":
        return []
    return [
        "PostgreSQL's autovacuum is off: the tables' statistics go stale and the claim's query "
        "plan with them; turn it on, or run ANALYZE (callbacks, customers) after every large "
        "load and at least daily"
    ]


def upsert_into(session: Session, table: Any) -> Any:
    """`INSERT` for `table` with the backend's `ON CONFLICT` clauses (PostgreSQL, SQLite)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def enum_type(enum_cls: type[Any]) -> sa.Enum:
    """A portable enum column stored as its values (VARCHAR, no native type to migrate)."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
