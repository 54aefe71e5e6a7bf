"""Retention cases (one per cancellation) and the steps each level records (rules CB-6,
RT-1..RT-4)."""

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.db import UTCDateTime, enum_type
from callcenter.retention.rules import CaseState, StepOutcome

_OPEN = "state = 'open'"


class RetentionCase(SQLModel, table=True):
    """The retention of one customer who cancelled: created with the churn callback, it moves
    level by level until the customer is retained or lost. Its steps are the record."""

    __tablename__ = "retention_cases"
    __table_args__ = (
        # Each level's queue: open cases in due order.
        sa.Index(
            "ix_retention_cases_queue",
            "level",
            "due_at",
            "id",
            postgresql_where=sa.text(_OPEN),
            sqlite_where=sa.text(_OPEN),
        ),
        sa.Index("ix_retention_cases_state_level", "state", "level"),
        # Reports: the cases decided in a period (lost customers, drill-down).
        sa.Index("ix_retention_cases_state_closed", "state", "closed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The churn callback it was created with (rule CB-4); level 1 is recorded on it.
    callback_id: int = Field(foreign_key="callbacks.id", unique=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    order_id: str = Field(max_length=64)
    state: CaseState = Field(sa_type=enum_type(CaseState))
    level: int  # the level it is at (open) or was closed at
    level_since: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)  # the current level's due time
    reason_code: str | None = Field(default=None, max_length=32)  # the latest recorded reason
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    win_back_callback_id: int | None = Field(default=None, foreign_key="callbacks.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class RetentionStep(SQLModel, table=True):
    """What one level recorded. Inserted, never updated (rule SV-4); one per level."""

    __tablename__ = "retention_steps"
    __table_args__ = (sa.UniqueConstraint("case_id", "level", name="uq_retention_steps_level"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="retention_cases.id", index=True)
    level: int
    outcome: StepOutcome = Field(sa_type=enum_type(StepOutcome))
    escalated_to: int | None = None
    # rule RT-4: reason, offer, the customer's answer. Empty only on a step of the system
    # (the churn callback ended without the customer being reached).
    reason_code: str | None = Field(default=None, max_length=32)
    reason_text: str | None = Field(default=None, max_length=500)
    offer_code: str | None = Field(default=None, max_length=32)
    # The offer as it was when made: the catalogue may change later.
    offer_cost_yuan: int | None = None
    offer_accepted: bool | None = None
    customer_answer: str | None = Field(default=None, max_length=1000)
    # rule RT-4: a lost customer is asked whether they might come back, and when.
    win_back: bool | None = None
    win_back_on: date | None = None
    win_back_callback_id: int | None = Field(default=None, foreign_key="callbacks.id")
    # Level 1: the answered attempt on the churn callback recorded with it.
    attempt_id: int | None = Field(default=None, foreign_key="attempts.id")
    recorded_by_id: int | None = Field(default=None, foreign_key="users.id")  # None: the system
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=500)
