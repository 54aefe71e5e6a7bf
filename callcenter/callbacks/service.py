"""Callback use cases: intake, claiming, attempts, listing. Each call owns one transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from callcenter.audit import service as audit
from callcenter.audit.rules import Actor, AuditAction, SubjectType, actor_for
from callcenter.callbacks import bulk, rules
from callcenter.callbacks.models import Attempt, Callback, IntakeEvent
from callcenter.callbacks.rules import (
    CALLBACK_FOR_EVENT,
    CLOSED_BY,
    CLOSES_PROACTIVE,
    AttemptOutcome,
    CallbackStatus,
)
from callcenter.callbacks.schemas import (
    AttemptCreate,
    AttemptRead,
    AttemptRecorded,
    BatchResult,
    CallbackDetail,
    CallbackFilters,
    CallbackPage,
    CallbackRead,
    ClaimRead,
    CustomerContact,
    CustomerRead,
    EventIn,
    FieldError,
    IntakeResult,
    IntakeStatus,
)
from callcenter.config import CallbackType, Channel, RulesConfig
from callcenter.customers.models import Customer, DoNotCall, DoNotCallSource, KnownZone
from callcenter.customers.rules import InvalidPhone, mask_phone, normalize_phone
from callcenter.customers.service import forget_zones, known_zones, put_on_list
from callcenter.db import UnitOfWork, upsert_into
from callcenter.errors import Conflict, InvalidField, NotFound
from callcenter.questionnaires.service import add_answers, check_complete, current_versions
from callcenter.retention.models import RetentionCase
from callcenter.retention.rules import FIRST_LEVEL, CaseState
from callcenter.retention.schemas import StepCreate
from callcenter.sla.rules import late_by
from callcenter.users.models import User
from callcenter.windows.rules import open_zones
from callcenter.workdays import UnknownYear, WorkdayCalendar, log_unknown

# Events may arrive a little ahead of our clock (clock skew), never from the future.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_OPEN_SQL = "callbacks.status IN ('pending', 'claimed')"


def is_open_status() -> sa.ColumnElement[bool]:
    # Written as literal SQL so that PostgreSQL matches it to the partial queue index.
    return sa.literal_column(_OPEN_SQL, sa.Boolean()).self_group()


class EventConflict(Conflict):
    def __init__(self, event_id: str) -> None:
        super().__init__(
            f"event {event_id!r} was already received with a different body; "
            "an event_id must not be reused for another event"
        )


class NotYourClaim(Conflict):
    pass


class LeaseExpired(Conflict):
    pass


# ---------------------------------------------------------------------------------------
# Intake
# ---------------------------------------------------------------------------------------

_EVENT_ADAPTER: TypeAdapter[EventIn] = TypeAdapter(EventIn)
_EVENTS_ADAPTER: TypeAdapter[list[EventIn]] = TypeAdapter(list[EventIn])


@dataclass
class _Prepared:
    index: int
    event: EventIn
    phone: str
    zone: str
    body_hash: str


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"]) or "body"
        errors.append(FieldError(field=loc, message=error["msg"]))
    return errors


def _hash(event: EventIn, phone: str) -> str:
    body = event.canonical()
    body["customer"]["phone"] = phone
    encoded = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def _prepare(
    index: int, event: EventIn, *, now: datetime, config: RulesConfig
) -> _Prepared | IntakeResult:
    errors: list[FieldError] = []
    phone = ""
    try:
        phone = normalize_phone(event.customer.phone, config.default_phone_region)
    except InvalidPhone as exc:
        errors.append(FieldError(field="customer.phone", message=str(exc)))
    if event.occurred_at > now + MAX_CLOCK_SKEW:
        errors.append(FieldError(field="occurred_at", message="occurred_at is in the future"))
    if errors:
        return IntakeResult(
            index=index, event_id=event.event_id, status=IntakeStatus.INVALID, errors=errors
        )
    zone = event.customer.timezone or config.default_timezone
    return _Prepared(index, event, phone, zone, _hash(event, phone))


def ingest_event(
    uow: UnitOfWork, *, event: EventIn, now: datetime, config: RulesConfig
) -> tuple[bool, CallbackRead]:
    """Take one event; `(created, callback)`. Raises `InvalidField` or `EventConflict`."""
    result = ingest_events(uow, events=[event], now=now, config=config).results[0]
    if result.status is IntakeStatus.INVALID:
        first = result.errors[0]
        raise InvalidField(first.field, first.message)
    if result.status is IntakeStatus.CONFLICT:
        raise EventConflict(event.event_id)
    assert result.callback is not None
    return result.status is IntakeStatus.CREATED, result.callback


def ingest_events(
    uow: UnitOfWork,
    *,
    events: Sequence[EventIn | Mapping[str, Any]],
    now: datetime,
    config: RulesConfig,
) -> BatchResult:
    """Take a batch of events, each with its own result; idempotent by `event_id`.

    One transaction for the batch. The events are claimed by inserting their ids with
    ON CONFLICT DO NOTHING, so concurrent deliveries of the same event create one callback.
    """
    results: dict[int, IntakeResult] = {}
    prepared: list[_Prepared] = []
    # Usually every event is valid: one validation of the whole batch is much cheaper than a
    # thousand; when some are not, each is validated on its own to report its errors.
    whole: list[EventIn] | None = None
    try:
        whole = _EVENTS_ADAPTER.validate_python(list(events))
    except ValidationError:
        whole = None
    for index, raw in enumerate(events):
        try:
            if whole is not None:
                event = whole[index]
            else:
                event = raw if isinstance(raw, EventIn) else _EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            event_id = raw.get("event_id") if isinstance(raw, Mapping) else None
            results[index] = IntakeResult(
                index=index,
                event_id=event_id if isinstance(event_id, str) else None,
                status=IntakeStatus.INVALID,
                errors=_field_errors(exc),
            )
            continue
        outcome = _prepare(index, event, now=now, config=config)
        if isinstance(outcome, IntakeResult):
            results[index] = outcome
        else:
            prepared.append(outcome)

    # The first occurrence of an event_id in the batch is the one that counts.
    first_by_id: dict[str, _Prepared] = {}
    repeats: list[_Prepared] = []
    for item in prepared:
        if item.event.event_id in first_by_id:
            repeats.append(item)
        else:
            first_by_id[item.event.event_id] = item

    callback_of_event: dict[str, int] = {}
    views: dict[int, CallbackRead] = {}
    customer_ids: dict[str, int] = {}
    if first_by_id:
        # Customers first, in a short transaction of their own (the upsert is idempotent):
        # concurrent batches that share customers then wait for each other only this long.
        with uow:
            customer_ids = _upsert_customers(uow.session, list(first_by_id.values()), now)
            uow.commit()
            if uow.session.info.pop("zones_added", False):
                forget_zones(uow.session)
    with uow:
        session = uow.session
        owned = _claim_event_ids(session, list(first_by_id.values()), now)
        mine = [first_by_id[event_id] for event_id in sorted(owned)]
        if mine:
            callback_of_event, views = _create_callbacks(
                session, mine, customer_ids, now=now, config=config
            )
        others = [item for eid, item in first_by_id.items() if eid not in owned]
        stored = _stored_events(session, [item.event.event_id for item in others + repeats])
        for event_id, (_, callback_id) in stored.items():
            if callback_id is not None:
                callback_of_event.setdefault(event_id, callback_id)
        missing = [i for i in callback_of_event.values() if i not in views]
        views.update(callback_views(session, missing, now=now))
        uow.commit()

    for item in first_by_id.values():
        event_id = item.event.event_id
        if event_id in owned:
            results[item.index] = IntakeResult(
                index=item.index,
                event_id=event_id,
                status=IntakeStatus.CREATED,
                callback=views[callback_of_event[event_id]],
            )
        else:
            results[item.index] = _repeat_result(item, stored, callback_of_event, views)
    for item in repeats:
        if item.event.event_id in owned:
            same = first_by_id[item.event.event_id].body_hash == item.body_hash
            results[item.index] = IntakeResult(
                index=item.index,
                event_id=item.event.event_id,
                status=IntakeStatus.DUPLICATE if same else IntakeStatus.CONFLICT,
                callback=views[callback_of_event[item.event.event_id]] if same else None,
            )
        else:
            results[item.index] = _repeat_result(item, stored, callback_of_event, views)

    ordered = [results[i] for i in range(len(events))]
    counts = dict.fromkeys(IntakeStatus, 0)
    for result in ordered:
        counts[result.status] += 1
    return BatchResult(
        created=counts[IntakeStatus.CREATED],
        duplicate=counts[IntakeStatus.DUPLICATE],
        conflict=counts[IntakeStatus.CONFLICT],
        invalid=counts[IntakeStatus.INVALID],
        results=ordered,
    )


def _repeat_result(
    item: _Prepared,
    stored: dict[str, tuple[str, int | None]],
    callback_of_event: dict[str, int],
    views: dict[int, CallbackRead],
) -> IntakeResult:
    event_id = item.event.event_id
    body_hash, _ = stored[event_id]
    if body_hash != item.body_hash:
        return IntakeResult(
            index=item.index,
            event_id=event_id,
            status=IntakeStatus.CONFLICT,
            errors=[
                FieldError(
                    field="event_id",
                    message="this event_id was already received with a different body",
                )
            ],
        )
    return IntakeResult(
        index=item.index,
        event_id=event_id,
        status=IntakeStatus.DUPLICATE,
        callback=views[callback_of_event[event_id]],
    )


def _claim_event_ids(session: Session, items: list[_Prepared], now: datetime) -> set[str]:
    if not items:
        return set()
    rows = [
        {
            "event_id": item.event.event_id,
            "type": item.event.type,
            "body_hash": item.body_hash,
            "order_id": item.event.order_id,
            "occurred_at": item.event.occurred_at,
            "received_at": now,
        }
        # A fixed order keeps concurrent batches from deadlocking on each other's keys.
        for item in sorted(items, key=lambda i: i.event.event_id)
    ]
    if _on_postgresql(session):
        claimed = bulk.insert_rows(
            session,
            "events",
            _EVENT_COLUMNS,
            rows,
            suffix="ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        )
        return set(claimed)
    table = IntakeEvent.__table__  # type: ignore[attr-defined]
    stmt = (
        upsert_into(session, table)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.event_id)
    )
    return set(session.execute(stmt, rows).scalars())


def _stored_events(session: Session, event_ids: list[str]) -> dict[str, tuple[str, int | None]]:
    if not event_ids:
        return {}
    stmt = sa.select(
        col(IntakeEvent.event_id), col(IntakeEvent.body_hash), col(IntakeEvent.callback_id)
    ).where(col(IntakeEvent.event_id).in_(event_ids))
    return {row[0]: (row[1], row[2]) for row in session.execute(stmt)}


def _upsert_customers(session: Session, items: list[_Prepared], now: datetime) -> dict[str, int]:
    newest: dict[str, _Prepared] = {}
    for item in items:
        key = item.event.customer.id
        if key not in newest or item.event.occurred_at >= newest[key].event.occurred_at:
            newest[key] = item
    rows = [
        {
            "external_id": key,
            "name": item.event.customer.name,
            "title": item.event.customer.title,
            "phone": item.phone,
            "timezone": item.zone,
            "region": item.event.customer.region,
            "info_as_of": item.event.occurred_at,
            "created_at": now,
        }
        for key, item in sorted(newest.items())
    ]
    if _on_postgresql(session):
        bulk.insert_rows(session, "customers", _CUSTOMER_COLUMNS, rows, suffix=_CUSTOMER_UPSERT)
    else:
        _upsert_customer_rows(session, rows)
    zones = sorted({item.zone for item in newest.values()})
    zone_table = KnownZone.__table__  # type: ignore[attr-defined]
    added = session.execute(
        upsert_into(session, zone_table)
        .values([{"name": zone} for zone in zones])
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(zone_table.c.name)
    ).all()
    if added:
        session.info["zones_added"] = True  # forgotten by the cache once committed
    if _on_postgresql(session):
        return bulk.select_ids(session, "customers", "external_id", list(newest))
    ids = sa.select(col(Customer.external_id), col(Customer.id)).where(
        col(Customer.external_id).in_(list(newest))
    )
    return {row[0]: row[1] for row in session.execute(ids)}


def _upsert_customer_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    table = Customer.__table__  # type: ignore[attr-defined]
    stmt = upsert_into(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["external_id"],
        set_={name: stmt.excluded[name] for name in _CUSTOMER_DETAILS},
        # An older event delivered late must not overwrite newer details.
        where=table.c.info_as_of <= stmt.excluded.info_as_of,
    )
    session.execute(stmt, rows)


def _create_callbacks(
    session: Session,
    items: list[_Prepared],
    customer_ids: Mapping[str, int],
    *,
    now: datetime,
    config: RulesConfig,
) -> tuple[dict[str, int], dict[int, CallbackRead]]:
    """Insert the callbacks of newly received events; their ids by event, and their views
    (built from what was inserted, without reading it back)."""
    _lock_contact_orders(session, items)
    closed_orders = _orders_with_closing_events(session, items)
    scripts = current_versions(session)
    calendar = WorkdayCalendar(config.workdays)
    rows: list[dict[str, Any]] = []
    for item in items:
        kind = CALLBACK_FOR_EVENT[item.event.type]
        deadlines = rules.deadlines_for(kind, item.event.occurred_at, ZoneInfo(item.zone), config)
        status = CallbackStatus.PENDING
        reason = None
        closer = CLOSED_BY.get(kind)
        if closer is not None and (item.event.order_id, closer) in closed_orders:
            # rule CB-7: the closing event came first; the contact is not needed.
            status, reason = CallbackStatus.CANCELLED, f"{closer} already received"
        due_on = latest_on = None
        if kind is CallbackType.INSTALL_DELAY:
            try:  # chapter 4 §1: installs are due in ≤3 working days, at most 7
                due_on, latest_on = calendar.install_due_dates(
                    item.event.occurred_at, ZoneInfo(item.zone)
                )
            except UnknownYear as exc:
                log_unknown(exc)  # loud, never a weekday guess; the dates stay empty
        rows.append(
            {
                "install_due_on": due_on,
                "install_latest_on": latest_on,
                "type": kind,
                "status": status,
                "channel": config.rule_for(kind).channel,
                "customer_id": customer_ids[item.event.customer.id],
                "order_id": item.event.order_id,
                "event_id": item.event.event_id,
                "script_version_id": scripts.get(kind),
                "anchor_at": deadlines.anchor_at,
                "available_at": deadlines.available_at,
                "due_at": deadlines.due_at,
                "hard_due_at": deadlines.hard_due_at,
                "attempt_count": 0,
                "unreached_count": 0,
                "closed_at": now if reason else None,
                "close_reason": reason,
                "created_at": now,
                "updated_at": now,
            }
        )
    ids = _insert_callbacks(session, rows)
    _open_retention_cases(session, rows, ids, now)
    callback_of_event = {
        item.event.event_id: callback_id for item, callback_id in zip(items, ids, strict=True)
    }
    cancelled = _cancel_closed_contacts(session, items, now)
    views = {
        callback_id: callback_read(
            SimpleNamespace(id=callback_id, **_UNSET_ON_CREATE, **row),  # type: ignore[arg-type]
            CustomerRead(
                id=item.event.customer.id,
                name=item.event.customer.name,
                title=item.event.customer.title,
                phone_masked=mask_phone(item.phone),
                timezone=item.zone,
                region=item.event.customer.region,
            ),
            None,
            now=now,
        )
        for item, row, callback_id in zip(items, rows, ids, strict=True)
        if callback_id not in cancelled  # changed since: read back
    }
    links = [
        {
            "event_id": item.event.event_id,
            "callback_id": callback_of_event[item.event.event_id],
            "customer_id": customer_ids[item.event.customer.id],
        }
        for item in items
    ]
    if _on_postgresql(session):
        linked = [("callback_id", int), ("customer_id", int)]
        bulk.update_rows(session, "events", ("event_id", str), linked, links)
        return callback_of_event, views
    event_table = IntakeEvent.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(event_table)
        .where(event_table.c.event_id == sa.bindparam("b_event_id"))
        .values(callback_id=sa.bindparam("b_callback_id"), customer_id=sa.bindparam("b_cust")),
        [
            {
                "b_event_id": link["event_id"],
                "b_callback_id": link["callback_id"],
                "b_cust": link["customer_id"],
            }
            for link in links
        ],
        execution_options={"synchronize_session": False},
    )
    return callback_of_event, views


# What a callback just created has not got yet (the columns its insert leaves to defaults).
_UNSET_ON_CREATE: dict[str, Any] = {
    "at_risk_since": None,
    "overdue_since": None,
    "lease_expires_at": None,
    "assigned_agent_id": None,
}


def _open_retention_cases(
    session: Session, rows: list[dict[str, Any]], ids: list[int], now: datetime
) -> None:
    """rules CB-4, CB-6: each churn callback opens its retention case in the same transaction,
    at level 1 and due with it (at once, in the first window). One executemany insert."""
    cases = [
        {
            "callback_id": callback_id,
            "customer_id": row["customer_id"],
            "order_id": row["order_id"],
            "state": CaseState.OPEN,
            "level": FIRST_LEVEL,
            "level_since": now,
            "due_at": row["due_at"],
            "created_at": now,
            "updated_at": now,
        }
        for row, callback_id in zip(rows, ids, strict=True)
        if row["type"] is CallbackType.CHURN and row["status"] is CallbackStatus.PENDING
    ]
    if cases:
        session.execute(sa.insert(RetentionCase.__table__), cases)  # type: ignore[attr-defined]


def _insert_callbacks(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the callbacks and return their new ids, in order. On PostgreSQL the ids are
    drawn from the sequence first and the rows go in as one array statement (bulk.py)."""
    if not _on_postgresql(session):
        table = Callback.__table__  # type: ignore[attr-defined]
        inserted = session.execute(
            sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        return [int(row[0]) for row in inserted]
    ids = bulk.next_ids(session, "callbacks", len(rows))
    with_ids = [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
    bulk.insert_rows(session, "callbacks", _CALLBACK_COLUMNS, with_ids)
    return ids


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# The columns the intake writes on PostgreSQL (callcenter/callbacks/bulk.py), with their kind.
_EVENT_COLUMNS = [
    ("event_id", str),
    ("type", str),
    ("body_hash", str),
    ("order_id", str),
    ("occurred_at", datetime),
    ("received_at", datetime),
]
_CUSTOMER_COLUMNS = [
    ("external_id", str),
    ("name", str),
    ("title", str),
    ("phone", str),
    ("timezone", str),
    ("region", str),
    ("info_as_of", datetime),
    ("created_at", datetime),
]
# What a later event updates of a known customer (on both backends); an older event
# delivered late must not overwrite newer details.
_CUSTOMER_DETAILS = ("name", "title", "phone", "timezone", "region", "info_as_of")
_CUSTOMER_UPSERT = (
    "ON CONFLICT (external_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _CUSTOMER_DETAILS)
    + " WHERE customers.info_as_of <= excluded.info_as_of"
)
_CALLBACK_COLUMNS = [
    ("id", int),
    ("type", str),
    ("status", str),
    ("channel", str),
    ("customer_id", int),
    ("order_id", str),
    ("event_id", str),
    ("script_version_id", int),
    ("anchor_at", datetime),
    ("available_at", datetime),
    ("due_at", datetime),
    ("hard_due_at", datetime),
    ("attempt_count", int),
    ("unreached_count", int),
    ("closed_at", datetime),
    ("close_reason", str),
    ("created_at", datetime),
    ("updated_at", datetime),
    ("install_due_on", date),
    ("install_latest_on", date),
]


# The PostgreSQL advisory lock that makes the intake of a CB-7 contact and of its closing event
# for one order wait for each other: this number with the hash of the schema and the order.
CONTACT_ORDER_LOCK = 10050_0003
_CONTACT_ORDER_LOCK_SQL = sa.text(
    "SELECT pg_advisory_xact_lock(:key, h) FROM ("
    " SELECT DISTINCT hashtext(current_schema() || ':' || o) AS h"
    " FROM unnest(CAST(:orders AS text[])) AS t(o) ORDER BY h) AS s"
)


def _lock_contact_orders(session: Session, items: list[_Prepared]) -> None:
    """rule CB-7: without this, a contact and its closing event taken by two transactions at
    once each miss the other (neither is committed yet) and the contact stays open. SQLite
    needs nothing: its immediate transactions already run one at a time."""
    orders = sorted(
        {
            item.event.order_id
            for item in items
            if item.event.type in CLOSES_PROACTIVE
            or CALLBACK_FOR_EVENT[item.event.type] in CLOSED_BY
        }
    )
    if orders and _on_postgresql(session):
        # In hash order: two batches that share orders take their locks in the same order.
        session.execute(_CONTACT_ORDER_LOCK_SQL, {"key": CONTACT_ORDER_LOCK, "orders": orders})


def _orders_with_closing_events(session: Session, items: list[_Prepared]) -> set[tuple[str, str]]:
    wanted = {
        item.event.order_id for item in items if CALLBACK_FOR_EVENT[item.event.type] in CLOSED_BY
    }
    if not wanted:
        return set()
    stmt = sa.select(col(IntakeEvent.order_id), col(IntakeEvent.type)).where(
        col(IntakeEvent.order_id).in_(wanted),
        col(IntakeEvent.type).in_(list(CLOSES_PROACTIVE)),
    )
    return {(row[0], str(row[1])) for row in session.execute(stmt)}


def _cancel_closed_contacts(session: Session, items: list[_Prepared], now: datetime) -> set[int]:
    # rule CB-7: the closing event cancels the proactive contact that has not been made yet.
    cancelled: set[int] = set()
    for event_type, kind in CLOSES_PROACTIVE.items():
        orders = sorted({i.event.order_id for i in items if i.event.type is event_type})
        if not orders:
            continue
        result = session.execute(
            sa.update(Callback)
            .where(
                col(Callback.order_id).in_(orders),
                col(Callback.type) == kind,
                col(Callback.status) == CallbackStatus.PENDING,
            )
            .values(
                status=CallbackStatus.CANCELLED,
                closed_at=now,
                close_reason=f"{event_type} received before the contact was made",
                updated_at=now,
            )
            .returning(col(Callback.id))
            .execution_options(synchronize_session=False)
        )
        cancelled.update(int(i) for i in result.scalars())
    return cancelled


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def customer_read(customer: Customer) -> CustomerRead:
    """The customer as the API shows them (the phone number masked); `customer` may be a row
    with the customer's columns."""
    return CustomerRead(
        id=customer.external_id,
        name=customer.name,
        title=customer.title,
        phone_masked=mask_phone(customer.phone),
        timezone=customer.timezone,
        region=customer.region,
    )


def callback_read(
    callback: Callback,
    customer: Customer | CustomerRead,
    claimed_by: str | None,
    assigned_to: str | None = None,
    *,
    now: datetime,
) -> CallbackRead:
    assert callback.id is not None
    is_open = callback.status in (CallbackStatus.PENDING, CallbackStatus.CLAIMED)
    # Built from rows already typed (enums, aware instants): not validated again, which was a
    # tenth of a thousand-event batch's time.
    return CallbackRead.model_construct(
        id=callback.id,
        type=callback.type,
        status=callback.status,
        channel=callback.channel,
        order_id=callback.order_id,
        event_id=callback.event_id,
        customer=customer if isinstance(customer, CustomerRead) else customer_read(customer),
        anchor_at=callback.anchor_at,
        available_at=callback.available_at,
        due_at=callback.due_at,
        hard_due_at=callback.hard_due_at,
        overdue=is_open and now > callback.due_at,
        install_due_on=callback.install_due_on,
        install_latest_on=callback.install_latest_on,
        at_risk_since=callback.at_risk_since,
        overdue_since=callback.overdue_since,
        attempt_count=callback.attempt_count,
        claimed_by=claimed_by,
        assigned_to=assigned_to,
        lease_expires_at=callback.lease_expires_at,
        closed_at=callback.closed_at,
        close_reason=callback.close_reason,
        created_at=callback.created_at,
    )


_ASSIGNEE = User.__table__.alias("assignee")  # type: ignore[attr-defined]


def _select_views() -> sa.Select[*tuple[Any, ...]]:
    return (
        sa.select(Callback, Customer, col(User.username), _ASSIGNEE.c.username)
        .join(Customer, col(Customer.id) == col(Callback.customer_id))
        .outerjoin(User, col(User.id) == col(Callback.claimed_by_id))
        .outerjoin(_ASSIGNEE, _ASSIGNEE.c.id == col(Callback.assigned_agent_id))
    )


def callback_views(
    session: Session, ids: Iterable[int], *, now: datetime
) -> dict[int, CallbackRead]:
    wanted = sorted(set(ids))
    views: dict[int, CallbackRead] = {}
    for start in range(0, len(wanted), 900):  # keep under every backend's parameter limit
        chunk = wanted[start : start + 900]
        stmt = _select_views().where(col(Callback.id).in_(chunk))
        for callback, customer, username, assignee in session.execute(stmt):
            assert callback.id is not None
            views[callback.id] = callback_read(callback, customer, username, assignee, now=now)
    return views


def attempt_read(attempt: Attempt, agent: str | None) -> AttemptRead:
    assert attempt.id is not None
    return AttemptRead(
        id=attempt.id,
        number=attempt.number,
        outcome=attempt.outcome,
        channel=attempt.channel,
        agent=agent,
        call_back_at=attempt.call_back_at,
        note=attempt.note,
        recorded_at=attempt.recorded_at,
        late_by_seconds=attempt.late_by_seconds,
    )


def get_callback(uow: UnitOfWork, *, callback_id: int, now: datetime) -> CallbackDetail:
    with uow:
        session = uow.session
        views = callback_views(session, [callback_id], now=now)
        if callback_id not in views:
            raise NotFound(f"callback {callback_id} does not exist")
        stmt = (
            sa.select(Attempt, col(User.username))
            .outerjoin(User, col(User.id) == col(Attempt.agent_id))
            .where(col(Attempt.callback_id) == callback_id)
            .order_by(col(Attempt.number), col(Attempt.id))
        )
        attempts = [attempt_read(a, name) for a, name in session.execute(stmt)]
        return CallbackDetail(**views[callback_id].model_dump(), attempts=attempts)


def list_callbacks(
    uow: UnitOfWork, *, filters: CallbackFilters, limit: int, offset: int, now: datetime
) -> CallbackPage:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.status:
        conditions.append(col(Callback.status).in_(filters.status))
    if filters.type:
        conditions.append(col(Callback.type).in_(filters.type))
    if filters.due_before is not None:
        conditions.append(col(Callback.due_at) < filters.due_before)
    if filters.overdue is not None:
        still_open = is_open_status()
        late = col(Callback.due_at) < now
        conditions.append(
            sa.and_(still_open, late) if filters.overdue else sa.not_(sa.and_(still_open, late))
        )
    if filters.order_id is not None:
        conditions.append(col(Callback.order_id) == filters.order_id)
    if filters.customer_id is not None:
        conditions.append(col(Customer.external_id) == filters.customer_id)
    with uow:
        session = uow.session
        count = (
            sa.select(sa.func.count())
            .select_from(Callback)
            .join(Customer, col(Customer.id) == col(Callback.customer_id))
            .where(*conditions)
        )
        total = session.execute(count).scalar_one()
        stmt = (
            _select_views()
            .where(*conditions)
            .order_by(col(Callback.hard_due_at), col(Callback.due_at), col(Callback.id))
            .limit(limit)
            .offset(offset)
        )
        items = [
            callback_read(cb, cu, name, assignee, now=now)
            for cb, cu, name, assignee in session.execute(stmt)
        ]
    return CallbackPage(items=items, total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------------------------------
# Claiming
# ---------------------------------------------------------------------------------------

MAX_CLAIM_RACES = 8

# The claim's statements are built once, with bind parameters: SQLAlchemy then reuses their
# compiled form, and a claim costs little more than its SQL.
_CB = Callback.__table__  # type: ignore[attr-defined]
_CU = Customer.__table__  # type: ignore[attr-defined]
_HELD = _CB.alias("held")
_DNC = DoNotCall.__table__  # type: ignore[attr-defined]
_NOW: sa.BindParameter[datetime] = sa.bindparam("now")
_AGENT: sa.BindParameter[int] = sa.bindparam("agent_id")


def _callable(now: Any, agent_id: Any) -> list[sa.ColumnElement[bool]]:
    """Conditions for a callback an agent may take now (its customer's window aside)."""
    return [
        is_open_status(),  # pending, or claimed with a lapsed lease
        _CB.c.available_at <= now,
        _CB.c.channel == Channel.AGENT,
        # another agent's personal callback stays with that agent until the SLA watch moves it
        sa.or_(_CB.c.assigned_agent_id.is_(None), _CB.c.assigned_agent_id == agent_id),
    ]


def _no_live_claim(now: Any) -> sa.ColumnElement[bool]:
    # The customer is called once: nobody else may be on the phone with them right now.
    return ~(
        sa.select(sa.literal(1))
        .where(
            _HELD.c.customer_id == _CB.c.customer_id,
            _HELD.c.status == CallbackStatus.CLAIMED,
            _HELD.c.lease_expires_at > now,
        )
        .exists()
    )


_MINE = _CB.alias("mine")
_HAS_PERSONAL = sa.select(_MINE.c.id).where(
    _MINE.c.assigned_agent_id == _AGENT,
    _MINE.c.status == CallbackStatus.PENDING,
    _MINE.c.available_at <= _NOW,
)


def build_claim_select(
    personal: bool, *, in_zones: sa.ColumnElement[bool] | None = None, asks: bool = True
) -> sa.Select[*tuple[Any, ...]]:
    """The statement that picks and locks the next customer; `in_zones` says how the open
    zones are bound (default: an expanding IN, for every backend), and `asks` whether the
    general statement also says if a personal callback may be due."""
    on_list = sa.select(sa.literal(1)).where(_DNC.c.phone == _CU.c.phone)
    mine = [_CB.c.assigned_agent_id == _AGENT] if personal else []
    # The general statement also says whether a callback a customer asked this agent for may
    # be due (then the personal statement runs too): no round trip of its own to find out.
    asked_for = [] if personal or not asks else [sa.exists(_HAS_PERSONAL).label("has_personal")]
    if in_zones is None:
        in_zones = _CU.c.timezone.in_(sa.bindparam("zones", expanding=True))
    return (
        sa.select(
            _CB.c.id,
            _CB.c.customer_id,
            _CU.c.external_id,
            _CU.c.name,
            _CU.c.title,
            _CU.c.phone,
            _CU.c.timezone,
            _CU.c.region,
            *asked_for,
        )
        .join(_CU, _CU.c.id == _CB.c.customer_id)
        .where(
            *mine,
            *_callable(_NOW, _AGENT),
            in_zones,  # rule CB-5: the customer's window is open
            ~on_list.exists(),  # the do-not-call list, checked now, not at intake
            _no_live_claim(_NOW),
        )
        .order_by(_CB.c.hard_due_at, _CB.c.due_at, _CB.c.id)
        .limit(1)
        # FOR NO KEY UPDATE: two claimers still exclude each other on the customer, but a
        # foreign-key check on it (the SLA watch inserting an urging order for one of its
        # callbacks) no longer waits for the claim, which waits for that callback: a deadlock.
        .with_for_update(of=_CU, skip_locked=True, key_share=True)
    )


_CLAIM_SELECT = build_claim_select(personal=False)
_CLAIM_SELECT_PERSONAL = build_claim_select(personal=True)


def claim_update(customer_id: Any) -> sa.Update:
    """The statement that leases the callable callbacks of the customer picked."""
    return (
        sa.update(_CB)
        .where(
            _CB.c.customer_id == customer_id,
            *_callable(_NOW, _AGENT),
            _no_live_claim(_NOW),
        )
        .values(
            status=CallbackStatus.CLAIMED,
            claim_id=sa.bindparam("b_claim_id"),
            claimed_by_id=_AGENT,
            claimed_at=_NOW,
            lease_expires_at=sa.bindparam("b_lease_end"),
            available_at=sa.bindparam("b_lease_end"),
            updated_at=_NOW,
        )
        .returning(*_CB.c)
    )


_CLAIM_UPDATE = claim_update(sa.bindparam("b_customer_id"))


def claim_statement(
    now: datetime, zones: Sequence[str], agent_id: int, *, personal: bool = False
) -> sa.Select[*tuple[Any, ...]]:
    """The one statement that picks and locks the next customer to call (EDF order), with
    its parameters bound; with `personal`, only among the callbacks customers asked this agent
    for."""
    statement = _CLAIM_SELECT_PERSONAL if personal else _CLAIM_SELECT
    return statement.params(now=now, zones=list(zones), agent_id=agent_id)


def claim_next(
    uow: UnitOfWork,
    *,
    agent: User,
    now: datetime,
    config: RulesConfig,
    actor: Actor | None = None,
    phone_shown: bool = True,
) -> ClaimRead | None:
    """Lease the customer with the most urgent callable callback, with all of that customer's
    callable callbacks, to `agent`; None when nothing may be called now.

    The claim carries the customer's full phone number: unless the caller does not show it
    (`phone_shown=False`: the console shows it on the desk, which records that view), the
    view is audited in the claim's transaction, one INSERT (rule SV-4)."""
    assert agent.id is not None
    with uow:
        session = uow.session
        zones = open_zones(now, known_zones(session), config.windows)
        if not zones:
            return None
        lease_end = now + config.attempts.lease
        claim_id = str(uuid.uuid4())
        params = {"now": now, "agent_id": agent.id, "zones": zones}
        for race in range(MAX_CLAIM_RACES):
            row = session.execute(_CLAIM_SELECT, params).first()
            if row is None:
                return None
            if race == 0 and row.has_personal:
                # Personal callbacks first: the customer asked this agent to call at that
                # time. (The customer the general statement locked stays locked until the
                # commit, a moment: other claimers skip it meanwhile.)
                row = session.execute(_CLAIM_SELECT_PERSONAL, params).first() or row
            taken = session.execute(
                _CLAIM_UPDATE,
                {
                    **params,
                    "b_customer_id": row.customer_id,
                    "b_claim_id": claim_id,
                    "b_lease_end": lease_end,
                },
            ).all()
            if taken:
                break
            # Another claimer took this customer between our read and our write: next one.
        else:
            return None
        if phone_shown:
            record_phone_view(
                session,
                actor=actor_for(agent, actor),
                customer_id=row.external_id,
                via="claim",
                claim_id=claim_id,
                callback_ids=[cb.id for cb in taken],
                now=now,
            )
        uow.commit()
    return claim_read(claim_id, lease_end, row, taken, agent, now=now)


def claim_read(
    claim_id: str,
    lease_end: datetime,
    customer: Any,
    taken: Sequence[Any],
    agent: User,
    *,
    now: datetime,
) -> ClaimRead:
    """The answer to a claim: the `customer` picked (a row with its columns) and the callbacks
    `taken` (rows with the callbacks' columns), earliest hard limit first."""
    read = customer_read(customer)
    views = sorted(
        (
            callback_read(
                cb,
                read,
                agent.username,
                agent.username if cb.assigned_agent_id == agent.id else None,
                now=now,
            )
            for cb in taken
        ),
        key=lambda v: (v.hard_due_at, v.due_at, v.id),
    )
    return ClaimRead(
        claim_id=claim_id,
        lease_expires_at=lease_end,
        callback=views[0],
        callbacks=views,
        customer=CustomerContact(**read.model_dump(), phone=customer.phone),
    )


def record_phone_view(
    session: Session,
    *,
    actor: Actor,
    customer_id: str,
    via: str,
    claim_id: str,
    callback_ids: Sequence[int],
    now: datetime,
) -> None:
    """Audit that `actor` was shown the customer's full phone number for a claim (rule SV-4):
    `via` the claim's answer or the desk."""
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PHONE_VIEWED,
        subject_type=SubjectType.CUSTOMER,
        subject_id=customer_id,
        now=now,
        detail={"via": via, "claim_id": claim_id, "callbacks": list(callback_ids)},
    )


def release_lapsed_claims(uow: UnitOfWork, *, now: datetime) -> int:
    """Return callbacks whose lease lapsed to the queue; the number released."""
    with uow:
        result = uow.session.execute(
            sa.update(Callback)
            .where(
                col(Callback.status) == CallbackStatus.CLAIMED,
                col(Callback.lease_expires_at) <= now,
            )
            .values(
                status=CallbackStatus.PENDING,
                **rules.LEASE_ENDED,
                available_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Attempts
# ---------------------------------------------------------------------------------------


def record_attempt(
    uow: UnitOfWork,
    *,
    callback_id: int,
    agent: User,
    attempt: AttemptCreate,
    now: datetime,
    config: RulesConfig,
    answers: Mapping[str, object] | None = None,
    answers_from_form: bool = False,
    retention_step: StepCreate | None = None,
    actor: Actor | None = None,
) -> AttemptRecorded:
    """Record one attempt by the agent who holds the claim (rule SV-4: inserted, never
    updated), with the `answers` given on it if any, in the same transaction: an answered
    attempt then needs the whole questionnaire. An answered churn call needs its level-1
    `retention_step` (rules CB-6, RT-1), recorded with it. Raises NotFound, NotYourClaim,
    LeaseExpired, IllegalTransition, CallBackTimeRefused, InvalidAnswers, or the retention
    errors (see `callcenter.retention.service.after_attempts`). Audited with what it
    recorded, in its transaction (rule SV-4); `actor` says from where (default: `agent`)."""
    actor = actor_for(agent, actor)
    with uow:
        session = uow.session
        # The callback (locked) and its customer in one round trip.
        found = session.execute(_CALLBACK_AND_CUSTOMER, {"callback_id": callback_id}).first()
        if found is None:
            raise NotFound(f"callback {callback_id} does not exist")
        callback: Callback = found[0]
        customer: Customer = found[1]
        check_holder(callback, agent, now)
        zone = ZoneInfo(customer.timezone)
        targets = [callback]
        if answers:
            add_answers(
                session,
                callback,
                user=agent,
                answers=answers,
                now=now,
                complete=attempt.outcome is AttemptOutcome.ANSWERED,
                from_form=answers_from_form,
                actor=actor,
            )
        if attempt.outcome is AttemptOutcome.ANSWERED:
            check_complete(session, callback)  # not closed half-asked
        if attempt.outcome in rules.WHOLE_CALL_OUTCOMES:
            targets += _claim_siblings(session, callback, now)
        rows: list[dict[str, Any]] = []
        for target in targets:
            effect = effect_for(
                attempt.outcome,
                now=now,
                unreached_so_far=target.unreached_count,
                hard_due_at=target.hard_due_at,
                zone=zone,
                rules=config,
                call_back_at=attempt.call_back_at,
            )
            rules.check_transition(target.status, effect.status)
            rows.append(attempt_row(target, attempt, agent, now))
            _apply(target, effect, attempt.outcome, now, agent)
        recorded = _write_attempts(session, rows, targets)
        if attempt.outcome is AttemptOutcome.DO_NOT_CALL:
            put_on_list(
                session,
                [
                    {
                        "phone": customer.phone,
                        "source": DoNotCallSource.CUSTOMER_REQUEST,
                        "reason": attempt.note,
                        "created_at": now,
                        "created_by_id": agent.id,
                    }
                ],
            )
        audit.record(
            session,
            actor=actor,
            action=AuditAction.ATTEMPT_RECORDED,
            subject_type=SubjectType.CALLBACK,
            subject_id=callback_id,
            now=now,
            detail=attempt_audit_detail(attempt.outcome, recorded),
        )
        # Imported here: the retention service builds on this module.
        from callcenter.retention.service import after_attempts

        after_attempts(
            session,
            recorded,
            agent=agent,
            step=retention_step,
            now=now,
            config=config,
            actor=actor,
        )
        views = _views_after_attempt(session, recorded, customer, agent, now=now)
        result = AttemptRecorded(
            attempts=[attempt_read(a, agent.username) for a, _ in recorded],
            callbacks=[views[t.id] for _, t in recorded if t.id is not None],
        )
        uow.commit()
        return result


_CALLBACK_AND_CUSTOMER = (
    sa.select(Callback, Customer)
    .join(Customer, col(Customer.id) == col(Callback.customer_id))
    .where(col(Callback.id) == sa.bindparam("callback_id"))
    .with_for_update(of=Callback)
)


def _views_after_attempt(
    session: Session,
    recorded: list[tuple[Attempt, Callback]],
    customer: Customer,
    agent: User,
    *,
    now: datetime,
) -> dict[int, CallbackRead]:
    """The views of the callbacks an attempt changed, from the rows in hand: usually every
    user they name is the agent, so nothing is read again; otherwise they are read back."""
    names: dict[int | None, str | None] = {None: None, agent.id: agent.username}
    views: dict[int, CallbackRead] = {}
    unknown: list[int] = []
    for _, target in recorded:
        assert target.id is not None
        if target.claimed_by_id in names and target.assigned_agent_id in names:
            views[target.id] = callback_read(
                target,
                customer,
                names[target.claimed_by_id],
                names[target.assigned_agent_id],
                now=now,
            )
        else:
            unknown.append(target.id)
    if unknown:
        views.update(callback_views(session, unknown, now=now))
    return views


def effect_for(outcome: AttemptOutcome, *, zone: ZoneInfo, **kwargs: Any) -> rules.AttemptEffect:
    try:
        return rules.attempt_effect(outcome, zone=zone, **kwargs)
    except rules.CallBackTimeRefused as exc:
        exc.zone = zone.key
        raise


def check_holder(callback: Callback, agent: User, now: datetime) -> None:
    """Raise unless `agent` holds the callback's claim and the lease still runs."""
    if callback.status is not CallbackStatus.CLAIMED or callback.claimed_by_id != agent.id:
        raise NotYourClaim(
            f"callback {callback.id} is not claimed by you; claim it before recording"
        )
    if callback.lease_expires_at is None or callback.lease_expires_at <= now:
        raise LeaseExpired(
            f"your claim on callback {callback.id} lapsed at "
            f"{callback.lease_expires_at.isoformat() if callback.lease_expires_at else '?'}; "
            "it went back to the queue"
        )


def _claim_siblings(session: Session, callback: Callback, now: datetime) -> list[Callback]:
    stmt = (
        sa.select(Callback)
        .where(*sibling_conditions(_CB, callback, now))
        .order_by(col(Callback.id))
        .with_for_update()
    )
    return list(session.execute(stmt).scalars())


def sibling_conditions(
    table: sa.FromClause, callback: Any, now: Any
) -> list[sa.ColumnElement[bool]]:
    """The other callbacks of the same live claim as `callback` (an object or a row with its
    columns), in `table` (the callbacks or an alias)."""
    return [
        # A claim is one customer's: found through the customer's index, not by a scan.
        table.c.customer_id == callback.customer_id,
        table.c.claim_id == callback.claim_id,
        table.c.id != callback.id,
        table.c.status == CallbackStatus.CLAIMED,
        table.c.lease_expires_at > now,
    ]


# What an attempt changes on its callback: written by one UPDATE of these columns.
ATTEMPT_CHANGES = (
    "status",
    "attempt_count",
    "unreached_count",
    "claim_id",
    "claimed_by_id",
    "claimed_at",
    "lease_expires_at",
    "updated_at",
    "available_at",
    "assigned_agent_id",
    "closed_at",
    "close_reason",
)
_AT = Attempt.__table__  # type: ignore[attr-defined]
_INSERT_ATTEMPTS = sa.insert(_AT).returning(_AT.c.id, sort_by_parameter_order=True)
UPDATE_AFTER_ATTEMPT = (
    sa.update(_CB)
    .where(_CB.c.id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in ATTEMPT_CHANGES})
)


def _write_attempts(
    session: Session, rows: list[dict[str, Any]], targets: list[Callback]
) -> list[tuple[Attempt, Callback]]:
    """Insert the attempts (rule SV-4: inserted, never updated) and write what `_apply` changed
    on their callbacks: two statements, without the ORM's unit of work (which costs more than
    the statements on this hot path). The attempts with their ids, each with its callback."""
    ids = session.execute(_INSERT_ATTEMPTS, rows).scalars().all()
    session.execute(
        UPDATE_AFTER_ATTEMPT,
        [
            {"b_id": target.id, **{f"b_{name}": getattr(target, name) for name in ATTEMPT_CHANGES}}
            for target in targets
        ],
    )
    return [
        (Attempt(id=attempt_id, **row), target)
        for attempt_id, row, target in zip(ids, rows, targets, strict=True)
    ]


def attempt_row(
    target: Callback, attempt: AttemptCreate, agent: User, now: datetime
) -> dict[str, Any]:
    """The attempts table's row for an agent's attempt on `target` (rule SV-4)."""
    return {
        "callback_id": target.id,
        "number": target.attempt_count + 1,
        "claim_id": target.claim_id,
        "agent_id": agent.id,
        "channel": Channel.AGENT,
        "outcome": attempt.outcome,
        "call_back_at": attempt.call_back_at,
        "note": attempt.note,
        "recorded_at": now,
        "late_by_seconds": int(late_by(now, target.due_at).total_seconds()),
    }


def attempt_audit_detail(
    outcome: AttemptOutcome, recorded: Sequence[tuple[Attempt, Callback]]
) -> dict[str, Any]:
    """What the audit trail says of an agent's attempt."""
    return {
        "outcome": outcome,
        "channel": Channel.AGENT,
        "attempts": [a.id for a, _ in recorded],
        "callbacks": [t.id for _, t in recorded],
    }


def _apply(
    callback: Callback,
    effect: rules.AttemptEffect,
    outcome: AttemptOutcome,
    now: datetime,
    agent: User,
) -> None:
    """Set the attempt's effect on the callback object as its stored state (not as changes for
    the ORM to flush): `_write_attempts` writes them."""
    for name, value in attempt_changes(callback, effect, outcome, now, agent).items():
        set_committed_value(callback, name, value)


def attempt_changes(
    callback: Callback,
    effect: rules.AttemptEffect,
    outcome: AttemptOutcome,
    now: datetime,
    agent: User,
) -> dict[str, Any]:
    """The columns an attempt with `effect` changes on its callback, with their new values."""
    changes: dict[str, Any] = {
        "status": effect.status,
        **rules.attempt_counts(callback.attempt_count, callback.unreached_count, outcome),
        **rules.LEASE_ENDED,
        "updated_at": now,
    }
    if effect.status is CallbackStatus.PENDING:
        assert effect.available_at is not None
        changes["available_at"] = effect.available_at
        # The customer asked this agent to call back at a set time: it stays with the agent.
        personal = outcome is AttemptOutcome.CALL_BACK_LATER
        changes["assigned_agent_id"] = agent.id if personal else None
    else:
        changes["closed_at"] = now
        changes["close_reason"] = effect.reason
    return changes
