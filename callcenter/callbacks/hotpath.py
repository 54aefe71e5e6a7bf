"""The agents' two hot requests on PostgreSQL, the claim and the attempt, on an asyncio
connection: no worker thread, no ORM.

At hundreds of claims a second, the ORM, the hand-off to a worker thread and the round trips
cost the API worker more than PostgreSQL spends on the claim itself (bench/RESULTS.md). Here:

- the claim is one statement: pick and lock the customer, lease their callable callbacks and
  audit the phone number shown (rule SV-4), built from the same clauses as `claim_next`;
- the attempt is two statements, each its own transaction: read the callback, then write its
  change, the attempt and the audit row only if the callback is still as it was read. It takes
  the plain case only. Anything else goes back to `record_attempt` (the caller's `None`) with
  nothing written: an error to report, a whole-call outcome on a claim of several callbacks,
  an answered callback whose questionnaire must be checked, a churn callback (its retention
  case), do-not-call, a callback changed between the read and the write.

The rules are the functions `claim_next` and `record_attempt` call; the statements are
compiled once for psycopg. SQLite has no such path.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from psycopg import AsyncRawCursor
from psycopg.rows import dict_row
from psycopg.types.json import Json
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from callcenter.audit.models import AUDIT_TABLE
from callcenter.audit.rules import Actor, AuditAction, SubjectType
from callcenter.audit.service import audit_row
from callcenter.callbacks import rules
from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus, CallBackTimeRefused
from callcenter.callbacks.schemas import AttemptCreate, AttemptRecorded, ClaimRead
from callcenter.callbacks.service import (
    ATTEMPT_CHANGES,
    MAX_CLAIM_RACES,
    UPDATE_AFTER_ATTEMPT,
    attempt_audit_detail,
    attempt_changes,
    attempt_read,
    attempt_row,
    build_claim_select,
    callback_read,
    check_holder,
    claim_read,
    claim_update,
    effect_for,
    sibling_conditions,
)
from callcenter.config import CallbackType, Channel, RulesConfig
from callcenter.customers.models import Customer
from callcenter.customers.service import KNOWN_ZONES, cached_zones, remember_zones
from callcenter.db import AsyncConnections, Database
from callcenter.errors import Conflict
from callcenter.users.models import User
from callcenter.windows.rules import open_zones

_T = TypeVar("_T")

# Connections each API process keeps for the hot path, beside the engine's pool.
HOT_PATH_CONNECTIONS = 4

_CB = Callback.__table__  # type: ignore[attr-defined]
_CU = Customer.__table__  # type: ignore[attr-defined]
_NOW: sa.BindParameter[datetime] = sa.bindparam("now")  # the name the shared clauses use
# PostgreSQL's own `$1` placeholders: psycopg sends the text as it is (a raw cursor), instead
# of rewriting the claim's 6 kB of SQL on every request (it caches that only below 4 kB).
_DIALECT = psycopg_dialect.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


class _Statement:
    """A statement compiled once for psycopg, with the values SQLAlchemy bound in it."""

    def __init__(self, statement: sa.ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(getattr(compiled, "positiontup", None) or ())
        self.defaults = {name: _plain(value) for name, value in compiled.params.items()}

    def params(self, values: Mapping[str, Any]) -> list[Any]:
        """The values in the order of the placeholders: `values`, else those bound in it."""
        bound = {**self.defaults, **{name: _plain(value) for name, value in values.items()}}
        return [bound[name] for name in self.names]

    async def rows(self, conn: Any, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor = AsyncRawCursor(conn, row_factory=dict_row)
        await cursor.execute(self.sql, self.params(values), prepare=True)
        return await cursor.fetchall()


def _plain(value: Any) -> Any:
    """A value as the engine would send it: an enum as its value, a mapping as JSON."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return Json(value, dumps=json.dumps)
    return value


def _typed(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


# --- the claim: one statement ----------------------------------------------------------

_IN_ZONES = _CU.c.timezone == sa.any_(sa.bindparam("zones", type_=postgresql.ARRAY(sa.String)))
# A callback a customer asked this agent for comes first (as in `claim_next`); the general
# branch runs only when the personal one finds nothing.
_PICK = (
    sa.union_all(
        # (PostgreSQL locks rows in a UNION's branches only inside subqueries.)
        sa.select(build_claim_select(personal=True, in_zones=_IN_ZONES).subquery("mine")),
        sa.select(build_claim_select(False, in_zones=_IN_ZONES, asks=False).subquery("any")),
    )
    .limit(1)
    .cte("pick")
)
_TAKEN = claim_update(sa.select(_PICK.c.customer_id).scalar_subquery()).cte("taken")
_AUDIT_COLUMNS = ("at", "actor_user_id", "actor_username", "actor_role", "address", "action")
# rule SV-4: the full phone number shown, as `record_phone_view` records it.
_PHONE_VIEWED = (
    sa.insert(AUDIT_TABLE)
    .from_select(
        [*_AUDIT_COLUMNS, "subject_type", "subject_id", "detail"],
        sa.select(
            *[_typed(f"a_{name}", AUDIT_TABLE.c[name]) for name in _AUDIT_COLUMNS],
            _typed("a_subject_type", AUDIT_TABLE.c.subject_type),
            sa.select(_PICK.c.external_id).scalar_subquery(),
            sa.func.json_build_object(
                sa.literal_column("'via'"),
                sa.literal_column("'claim'"),
                sa.literal_column("'claim_id'"),
                sa.bindparam("b_claim_id", type_=sa.String),
                sa.literal_column("'callbacks'"),
                sa.func.json_agg(_TAKEN.c.id),
            ),
        )
        .select_from(_TAKEN)
        .having(sa.func.count() > 0),
    )
    .cte("phone_viewed")
)
_CUSTOMER_COLUMNS = ("customer_id", "external_id", "name", "title", "phone", "timezone", "region")
_CLAIM = _Statement(
    sa.select(
        *[_PICK.c[name] for name in _CUSTOMER_COLUMNS],
        *[_TAKEN.c[column.name].label(f"cb_{column.name}") for column in _CB.c],
    )
    .select_from(_PICK.outerjoin(_TAKEN, sa.true()))
    .add_cte(_PHONE_VIEWED)
)
_ZONES = _Statement(KNOWN_ZONES)

# --- the attempt: read, then write if nothing changed meanwhile ---------------------------

_SIBLING = _CB.alias("sibling")
_READ = _Statement(
    sa.select(
        *[column.label(f"cb_{column.name}") for column in _CB.c],
        *[column.label(f"cu_{column.name}") for column in _CU.c],
        sa.exists().where(*sibling_conditions(_SIBLING, _CB.c, _NOW)).label("siblings"),
        # The attempt's id now: the audit row that names it goes in the same round trip.
        sa.literal_column("nextval('attempts_id_seq')").label("attempt_id"),
    )
    .join(_CU, _CU.c.id == _CB.c.customer_id)
    .where(_CB.c.id == sa.bindparam("callback_id"))
)
_AT = Attempt.__table__  # type: ignore[attr-defined]
# Written only if the callback is as it was read (the lease, its holder, the counts, the
# deadlines): else nothing is written and `record_attempt` takes the attempt, under its lock.
_AS_READ_COLUMNS = (
    "status",
    "claim_id",
    "claimed_by_id",
    "lease_expires_at",
    "attempt_count",
    "unreached_count",
    "assigned_agent_id",
    "due_at",
    "hard_due_at",
    "script_version_id",
)
_AS_READ = [
    _CB.c[name].is_not_distinct_from(sa.bindparam(f"was_{name}", type_=_CB.c[name].type))
    for name in _AS_READ_COLUMNS
]
_CHANGED = UPDATE_AFTER_ATTEMPT.where(*_AS_READ).returning(_CB.c.id).cte("changed")
_WRITES: dict[tuple[tuple[str, ...], tuple[str, ...]], _Statement] = {}


def _write(attempt: Mapping[str, Any], audit: Mapping[str, Any]) -> _Statement:
    """One statement: the callback's change, its attempt and the audit row (rule SV-4), the
    latter two only with the change. Compiled once per set of columns."""
    key = (tuple(attempt), tuple(audit))
    statement = _WRITES.get(key)
    if statement is None:

        def insert(table: sa.Table, prefix: str, row: Mapping[str, Any]) -> sa.Insert:
            values = [_typed(f"{prefix}_{name}", table.c[name]) for name in row]
            return sa.insert(table).from_select(list(row), sa.select(*values).select_from(_CHANGED))

        recorded = insert(_AT, "v", attempt).returning(_AT.c.id).cte("recorded")
        audited = insert(AUDIT_TABLE, "a", audit).cte("audited")
        statement = _WRITES[key] = _Statement(sa.select(recorded.c.id).add_cte(audited))
    return statement


# The errors `record_attempt` reports: the hot path leaves them to it.
_REPORTED = (Conflict, rules.IllegalTransition, CallBackTimeRefused)


def _callback(row: Mapping[str, Any]) -> SimpleNamespace:
    """A callback from a row's `cb_` columns, typed as the ORM would load it."""
    fields = {column.name: row[f"cb_{column.name}"] for column in _CB.c}
    fields["type"] = CallbackType(fields["type"])
    fields["status"] = CallbackStatus(fields["status"])
    fields["channel"] = Channel(fields["channel"])
    return SimpleNamespace(**fields)


class HotPathUnavailable(Exception):
    """The database connection failed (PostgreSQL restarting, a connection dropped): the
    caller runs the service instead, whose pool checks its connections and which answers 503
    if the database is still away. If the statement committed before the connection broke, a
    claim's lease lapses unused and an attempt is found recorded (409)."""


class _HandOver(Exception):
    """Not the plain case: `record_attempt` takes the attempt (nothing was written)."""


class HotPath:
    """The claim and the plain attempt on PostgreSQL for one event loop's requests; `counts`
    says how many each took and how many attempts went back to `record_attempt`."""

    def __init__(self, database: Database, *, connections: int = HOT_PATH_CONNECTIONS) -> None:
        self.engine = database.engine
        # The claim's statement costs PostgreSQL more to plan than to run (measured: 1.9 ms
        # a claim with a plan each time, 0.9 ms with the prepared statement's generic plan,
        # which still walks the queue's index): these statements are prepared once and their
        # generic plans kept.
        self.connections = AsyncConnections(
            database,
            connections,
            # Instants come back in UTC, as the engine's `UTCDateTime` gives them.
            settings={"plan_cache_mode": "force_generic_plan", "TimeZone": "UTC"},
        )
        self.counts: Counter[str] = Counter()

    async def close(self) -> None:
        await self.connections.close()

    async def _on_connection(self, work: Callable[[Any], Awaitable[_T]]) -> _T:
        """`work` on one of the hot path's connections; HotPathUnavailable if the connection
        failed (the connection is closed after any error)."""
        try:
            conn = await self.connections.acquire()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.counts["unavailable"] += 1
            raise HotPathUnavailable(str(exc)) from exc
        try:
            done = await work(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            await self.connections.discard(conn)
            self.counts["unavailable"] += 1
            raise HotPathUnavailable(str(exc)) from exc
        except BaseException:
            await self.connections.discard(conn)
            raise
        self.connections.release(conn)
        return done

    async def _zones(self, conn: Any) -> list[str]:
        names = cached_zones(self.engine)
        if names is None:
            names = [row["name"] for row in await _ZONES.rows(conn, {})]
            remember_zones(self.engine, names)
        return names

    async def claim(
        self, *, agent: User, now: datetime, config: RulesConfig, actor: Actor
    ) -> ClaimRead | None:
        """As `claim_next` (with the phone number shown): the customer with the most urgent
        callable callback, with all their callable callbacks, leased to `agent`."""
        assert agent.id is not None
        claim_id = str(uuid.uuid4())
        lease_end = now + config.attempts.lease
        audit = audit_row(
            actor=actor,
            action=AuditAction.PHONE_VIEWED,
            subject_type=SubjectType.CUSTOMER,
            subject_id="",
            now=now,
        )

        async def take(conn: Any) -> list[dict[str, Any]]:
            zones = open_zones(now, await self._zones(conn), config.windows)
            if not zones:
                return []
            values = {
                "now": now,
                "agent_id": agent.id,
                "zones": zones,
                "b_claim_id": claim_id,
                "b_lease_end": lease_end,
                **{f"a_{name}": audit[name] for name in (*_AUDIT_COLUMNS, "subject_type")},
            }
            for _ in range(MAX_CLAIM_RACES):
                rows = await _CLAIM.rows(conn, values)
                if not rows or rows[0]["cb_id"] is not None:
                    return rows
                # Another claimer leased this customer's callbacks between our snapshot and
                # our lock: the next customer.
            return []

        rows = await self._on_connection(take)
        if not rows:
            return None
        self.counts["claims"] += 1
        customer = SimpleNamespace(**{name: rows[0][name] for name in _CUSTOMER_COLUMNS})
        taken = [_callback(row) for row in rows]
        return claim_read(claim_id, lease_end, customer, taken, agent, now=now)

    async def record_attempt(
        self,
        *,
        callback_id: int,
        agent: User,
        attempt: AttemptCreate,
        now: datetime,
        config: RulesConfig,
        actor: Actor,
    ) -> AttemptRecorded | None:
        """As `record_attempt` without answers, for the plain case; None when it is not the
        plain case, with nothing written: `record_attempt` takes it."""
        if attempt.outcome is AttemptOutcome.DO_NOT_CALL:
            self.counts["attempts_handed_over"] += 1
            return None

        async def record(conn: Any) -> AttemptRecorded | None:
            rows = await _READ.rows(conn, {"callback_id": callback_id, "now": now})
            try:
                if not rows:
                    raise _HandOver
                recorded = self._plain_attempt(rows[0], agent, attempt, now, config, actor)
                statement = _write(recorded.attempt, recorded.audit)
                if not await statement.rows(conn, recorded.values):
                    raise _HandOver  # changed since it was read
            except _HandOver:
                return None
            return recorded.answer

        answer = await self._on_connection(record)
        self.counts["attempts" if answer is not None else "attempts_handed_over"] += 1
        return answer

    def _plain_attempt(
        self,
        row: Mapping[str, Any],
        agent: User,
        attempt: AttemptCreate,
        now: datetime,
        config: RulesConfig,
        actor: Actor,
    ) -> _Recorded:
        target = _callback(row)
        was = {name: getattr(target, name) for name in _AS_READ_COLUMNS}
        outcome = attempt.outcome
        whole_call = outcome in rules.WHOLE_CALL_OUTCOMES
        if (
            target.type is CallbackType.CHURN  # its retention case moves with it
            or (whole_call and row["siblings"])  # recorded on every callback of the claim
            # not closed half-asked: the questionnaire's answers are checked
            or (outcome is AttemptOutcome.ANSWERED and target.script_version_id is not None)
        ):
            raise _HandOver
        try:
            check_holder(target, agent, now)  # type: ignore[arg-type]
            effect = effect_for(
                outcome,
                now=now,
                unreached_so_far=target.unreached_count,
                hard_due_at=target.hard_due_at,
                zone=ZoneInfo(row["cu_timezone"]),
                rules=config,
                call_back_at=attempt.call_back_at,
            )
            rules.check_transition(target.status, effect.status)
        except _REPORTED as exc:
            raise _HandOver from exc
        values = attempt_row(target, attempt, agent, now)  # type: ignore[arg-type]
        changes = attempt_changes(target, effect, outcome, now, agent)  # type: ignore[arg-type]
        vars(target).update(changes)
        names = {None: None, agent.id: agent.username}
        if target.assigned_agent_id not in names:
            raise _HandOver  # its view names another agent: `record_attempt` reads them
        values["id"] = row["attempt_id"]
        # Its columns, as `attempt_read` reads them: an ORM object costs more to make.
        recorded: Attempt = SimpleNamespace(**values)  # type: ignore[assignment]
        audit = audit_row(
            actor=actor,
            action=AuditAction.ATTEMPT_RECORDED,
            subject_type=SubjectType.CALLBACK,
            subject_id=target.id,
            now=now,
            detail=attempt_audit_detail(outcome, [(recorded, target)]),  # type: ignore[list-item]
        )
        customer = SimpleNamespace(**{column.name: row[f"cu_{column.name}"] for column in _CU.c})
        view = callback_read(
            target,  # type: ignore[arg-type]
            customer,  # type: ignore[arg-type]
            names[target.claimed_by_id],
            names[target.assigned_agent_id],
            now=now,
        )
        return _Recorded(
            attempt=values,
            audit=audit,
            values={
                "now": now,
                "b_id": target.id,
                **{f"b_{name}": getattr(target, name) for name in ATTEMPT_CHANGES},
                **{f"was_{name}": value for name, value in was.items()},
                **{f"v_{name}": value for name, value in values.items()},
                **{f"a_{name}": value for name, value in audit.items()},
            },
            answer=AttemptRecorded(
                attempts=[attempt_read(recorded, agent.username)], callbacks=[view]
            ),
        )


@dataclass(frozen=True, slots=True)
class _Recorded:
    attempt: Mapping[str, Any]
    audit: Mapping[str, Any]
    values: Mapping[str, Any]
    answer: AttemptRecorded
