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
