"""Callbacks, the events that made them, and the attempts on them."""

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus, EventType
from callcenter.config import CallbackType, Channel
from callcenter.db import UTCDateTime, enum_type

_OPEN = "status IN ('pending', 'claimed')"


class IntakeEvent(SQLModel, table=True):
    """One event from the order system; `event_id` is the idempotency key."""

    __tablename__ = "events"

    event_id: str = Field(max_length=128, primary_key=True)
    type: EventType = Field(sa_type=enum_type(EventType))
    body_hash: str = Field(max_length=64)
    order_id: str = Field(max_length=64)
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    callback_id: int | None = Field(default=None, foreign_key="callbacks.id")
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)


class Callback(SQLModel, table=True):
    __tablename__ = "callbacks"
    __table_args__ = (
        # The queue: open callbacks in deadline order (earliest hard limit first).
        sa.Index(
            "ix_callbacks_queue",
            "hard_due_at",
            "due_at",
            "id",
            postgresql_where=sa.text(_OPEN),
            sqlite_where=sa.text(_OPEN),
        ),
        sa.Index("ix_callbacks_customer_status", "customer_id", "status"),
        sa.Index("ix_callbacks_order_type", "order_id", "type"),
        sa.Index("ix_callbacks_status_due", "status", "due_at"),
        # The supervisor's board counts the open callbacks by type and state from this alone.
        sa.Index(
            "ix_callbacks_open_type_status",
            "type",
            "status",
            postgresql_where=sa.text(_OPEN),
            sqlite_where=sa.text(_OPEN),
        ),
        sa.Index(
            "ix_callbacks_assigned_agent",
            "assigned_agent_id",
            postgresql_where=sa.text("assigned_agent_id IS NOT NULL"),
            sqlite_where=sa.text("assigned_agent_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    type: CallbackType = Field(sa_type=enum_type(CallbackType))
    status: CallbackStatus = Field(sa_type=enum_type(CallbackStatus))
    channel: Channel = Field(sa_type=enum_type(Channel))
    customer_id: int = Field(foreign_key="customers.id")
    order_id: str = Field(max_length=64)
    event_id: str = Field(max_length=128)
    # The script version it was created with (frozen): its questions stay as they were asked.
    script_version_id: int | None = Field(default=None, foreign_key="script_versions.id")
    anchor_at: datetime = Field(sa_type=UTCDateTime)
    # Day-5 install contacts (rule CB-7): by when the install is due, in working days
    # (≤3, at most 7), to tell the customer; empty when the calendar does not know the year.
    install_due_on: date | None = None
    install_latest_on: date | None = None
    # When it may next be offered: the first moment, a retry time, the time the customer asked
    # for, or (while claimed) the end of the lease.
    available_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    hard_due_at: datetime = Field(sa_type=UTCDateTime)
    attempt_count: int = Field(default=0)
    unreached_count: int = Field(default=0)
    claim_id: str | None = Field(default=None, max_length=36)
    claimed_by_id: int | None = Field(default=None, foreign_key="users.id")
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_reason: str | None = Field(default=None, max_length=500)
    # A customer who asked a given agent to call back stays with that agent until the grace
    # time after it is due passes; then the SLA watch moves it to the shared queue.
    assigned_agent_id: int | None = Field(default=None, foreign_key="users.id")
    # Set once by the SLA watch (rule WO-4 flags overdue work).
    at_risk_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    overdue_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Attempt(SQLModel, table=True):
    """One try to reach the customer. Inserted, never updated (rule SV-4)."""

    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    callback_id: int = Field(foreign_key="callbacks.id", index=True)
    number: int  # 1 for the first attempt on this callback
    claim_id: str | None = Field(default=None, max_length=36)
    agent_id: int | None = Field(default=None, foreign_key="users.id")
    channel: Channel = Field(sa_type=enum_type(Channel))
    outcome: AttemptOutcome = Field(sa_type=enum_type(AttemptOutcome))
    call_back_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=2000)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    # How far past the target the customer was tried (0 when in time): the lateness as it was.
    late_by_seconds: int = Field(default=0)


class CallbackEventKind(StrEnum):
    AT_RISK = "at_risk"
    OVERDUE = "overdue"
    URGED = "urged"  # rule WO-4: an urging order went to the responsible team
    EXPIRED = "expired"  # the hard limit passed before the customer was reached
    MOVED_TO_SHARED = "moved_to_shared"  # a personal callback the agent did not take in time
    REASSIGNED = "reassigned"
    LEASE_RELEASED = "lease_released"


class CallbackEvent(SQLModel, table=True):
    """What happened to a callback besides attempts, for supervisors. Inserted only."""

    __tablename__ = "callback_events"

    id: int | None = Field(default=None, primary_key=True)
    callback_id: int = Field(foreign_key="callbacks.id", index=True)
    kind: CallbackEventKind = Field(sa_type=enum_type(CallbackEventKind))
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    detail: str | None = Field(default=None, max_length=500)
    actor_id: int | None = Field(default=None, foreign_key="users.id")
