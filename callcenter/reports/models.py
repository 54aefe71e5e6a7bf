"""Nightly KPI snapshots: reports read these instead of scanning history (KPI rules)."""

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.config import CallbackType
from callcenter.db import UTCDateTime, enum_type


class KpiSnapshot(SQLModel, table=True):
    """The callbacks closed on one local day, by team and type, with the counts the KPI
    formulas need. Recomputing a day replaces its rows."""

    __tablename__ = "kpi_snapshots"
    __table_args__ = (
        sa.UniqueConstraint("day", "team", "callback_type", name="uq_kpi_snapshots_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    team: str = Field(max_length=64)
    callback_type: CallbackType = Field(sa_type=enum_type(CallbackType))
    closed: int = 0  # completed, failed, expired or cancelled that day
    completed: int = 0
    within_target: int = 0  # completed no later than due_at (rule KPI-1)
    within_hard_limit: int = 0  # completed no later than hard_due_at
    expired: int = 0  # the hard limit passed: counted against KPI-1
    failed: int = 0
    attempts: int = 0  # attempts recorded that day
    surveys: int = 0  # completed callbacks with answers
    dissatisfied: int = 0  # surveys where the customer said they were dissatisfied (KPI-2)
    by_ivr: int = 0  # completed by the IVR
    computed_at: datetime = Field(sa_type=UTCDateTime)


class ReportDay(SQLModel, table=True):
    """The figures of one local day by team, agent and callback type that the manager's
    dashboard sums over a period (rules KPI-1..KPI-3); recomputing a day replaces its rows.
    `agent_id` is the agent of the last attempt (empty: the IVR or nobody reached)."""

    __tablename__ = "report_days"
    __table_args__ = (
        sa.Index("ix_report_days_key", "day", "team", "agent_id", "callback_type"),
        sa.Index("ix_report_days_agent", "agent_id", "day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date
    team: str = Field(max_length=64)
    agent_id: int | None = Field(default=None, foreign_key="users.id")
    callback_type: CallbackType = Field(sa_type=enum_type(CallbackType))
    closed: int = 0  # closed that day, cancelled ones included
    cancelled: int = 0  # the order went away: not an order the centre is measured on
    closed_in_time: int = 0  # completed or failed no later than the target (rule KPI-1)
    completed: int = 0
    within_target: int = 0
    within_hard_limit: int = 0
    expired: int = 0
    failed: int = 0
    completed_attempts: int = 0  # the attempts the completed callbacks took
    dissatisfied: int = 0  # completed, and the customer said they were dissatisfied (KPI-2)
    by_ivr: int = 0  # completed by the IVR
    attempts: int = 0  # attempts recorded that day
    answered: int = 0  # … of which the customer answered
    transfers_sent: int = 0  # follow-up orders raised that day (rules SV-5, KPI-3)
    transfers_in_time: int = 0  # … handed over no later than they were due
    computed_at: datetime = Field(sa_type=UTCDateTime)


class ReportHour(SQLModel, table=True):
    """Attempts and answers by local hour of the day, for the answer rate by hour."""

    __tablename__ = "report_hours"
    __table_args__ = (sa.Index("ix_report_hours_key", "day", "team", "agent_id", "callback_type"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date
    hour: int  # 0..23, the customer's local clock
    team: str = Field(max_length=64)
    agent_id: int | None = Field(default=None, foreign_key="users.id")
    callback_type: CallbackType = Field(sa_type=enum_type(CallbackType))
    attempts: int = 0
    answered: int = 0


class ChurnDay(SQLModel, table=True):
    """Retention cases decided on one local day, by region, the level where the decision was
    made, reason and outcome (rules CB-6, RT-1..RT-4)."""

    __tablename__ = "churn_days"
    __table_args__ = (sa.Index("ix_churn_days_day", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date
    region: str = Field(max_length=64)  # "" when the order system gave none
    level: int
    reason_code: str = Field(max_length=32)  # "" when no reason was recorded
    state: str = Field(max_length=16)  # retained or lost
    cases: int = 0


class OfferDay(SQLModel, table=True):
    """Retention offers made on one local day, by region, level and offer: how many were
    made, accepted, and what the accepted ones cost (their cost as it was when made)."""

    __tablename__ = "offer_days"
    __table_args__ = (sa.Index("ix_offer_days_day", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date
    region: str = Field(max_length=64)
    level: int
    offer_code: str = Field(max_length=32)
    made: int = 0
    accepted: int = 0
    accepted_cost_yuan: int = 0
