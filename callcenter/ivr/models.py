"""IVR calls, the steps of each call, and the dialer's shared rate-limit slot."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.callbacks.rules import AttemptOutcome
from callcenter.db import UTCDateTime, enum_type
from callcenter.ivr.rules import CallStatus, Disposition, StepResult

_ACTIVE = "status IN ('queued', 'initiated', 'ringing', 'in_progress')"


class IvrCall(SQLModel, table=True):
    """One IVR call to a customer. Written before the provider is asked to place it, so that
    a crash in between neither loses the attempt nor calls the customer twice; its final
    outcome is recorded as an attempt (inserted once, never updated: rule SV-4)."""

    __tablename__ = "ivr_calls"
    __table_args__ = (
        sa.Index(
            "ix_ivr_calls_active",
            "customer_id",
            postgresql_where=sa.text(_ACTIVE),
            sqlite_where=sa.text(_ACTIVE),
        ),
        sa.Index("ix_ivr_calls_created", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=36, unique=True)  # names the call in webhook URLs
    callback_id: int = Field(foreign_key="callbacks.id", index=True)
    customer_id: int = Field(foreign_key="customers.id")
    claim_id: str = Field(max_length=36)  # the callback's claim while the call runs
    number: int  # the attempt number on the callback
    provider: str = Field(max_length=16)
    provider_sid: str | None = Field(default=None, max_length=64, index=True)
    status: CallStatus = Field(sa_type=enum_type(CallStatus))
    answered_by: str | None = Field(default=None, max_length=32)
    dial_at: datetime = Field(sa_type=UTCDateTime)  # its slot under the rate limit
    placed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_seconds: int | None = None
    outcome: AttemptOutcome | None = Field(default=None, sa_type=enum_type(AttemptOutcome))
    disposition: Disposition | None = Field(default=None, sa_type=enum_type(Disposition))
    attempt_id: int | None = Field(default=None, foreign_key="attempts.id")
    note: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class IvrCallStep(SQLModel, table=True):
    """What the customer keyed for one question on one try. Inserted only; the unique key
    makes a gather that the provider sends again change nothing."""

    __tablename__ = "ivr_call_steps"
    __table_args__ = (
        sa.UniqueConstraint("ivr_call_id", "question_id", "try_number", name="uq_ivr_call_steps"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ivr_call_id: int = Field(foreign_key="ivr_calls.id", index=True)
    question_id: str = Field(max_length=64)
    try_number: int
    digits: str | None = Field(default=None, max_length=16)
    result: StepResult = Field(sa_type=enum_type(StepResult))
    at: datetime = Field(sa_type=UTCDateTime)


class IvrDialSlot(SQLModel, table=True):
    """One row shared by every dialer: the next instant a call may be placed. Each dialer
    locks it to take slots, so the calls-per-second limit holds across replicas."""

    __tablename__ = "ivr_dial_slots"

    id: int = Field(primary_key=True)
    next_slot_at: datetime = Field(sa_type=UTCDateTime)
