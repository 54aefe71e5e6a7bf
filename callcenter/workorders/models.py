"""Work orders: follow-ups an agent raises (rule SV-5), urging orders for overdue work (WO-4):
callbacks, follow-ups and the levels of retention cases."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.db import UTCDateTime, enum_type


class WorkOrderKind(StrEnum):
    FOLLOW_UP = "follow_up"  # rule SV-5: what the agent could not settle on the call
    URGING = "urging"  # rule WO-4: 催办, for an overdue order without a reply


class WorkOrderStatus(StrEnum):
    OPEN = "open"
    HANDED_OVER = "handed_over"
    CLOSED = "closed"


class WorkOrder(SQLModel, table=True):
    __tablename__ = "work_orders"
    __table_args__ = (
        # rule WO-4: one urging order per overdue callback or work order, however many
        # scheduler replicas see it.
        sa.Index(
            "uq_work_orders_urges_callback",
            "urges_callback_id",
            unique=True,
            postgresql_where=sa.text("urges_callback_id IS NOT NULL"),
            sqlite_where=sa.text("urges_callback_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_work_orders_urges_work_order",
            "urges_work_order_id",
            unique=True,
            postgresql_where=sa.text("urges_work_order_id IS NOT NULL"),
            sqlite_where=sa.text("urges_work_order_id IS NOT NULL"),
        ),
        # rule WO-4: one urging order per overdue level of a retention case.
        sa.Index(
            "uq_work_orders_urges_retention",
            "urges_retention_case_id",
            "urges_retention_level",
            unique=True,
            postgresql_where=sa.text("urges_retention_case_id IS NOT NULL"),
            sqlite_where=sa.text("urges_retention_case_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: WorkOrderKind = Field(sa_type=enum_type(WorkOrderKind))
    status: WorkOrderStatus = Field(sa_type=enum_type(WorkOrderStatus), index=True)
    callback_id: int | None = Field(default=None, foreign_key="callbacks.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    subject: str = Field(max_length=200)
    details: str | None = Field(default=None, max_length=2000)
    team: str | None = Field(default=None, max_length=64)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    handed_over_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # An urging order (WO-4) points at what it urges.
    urges_callback_id: int | None = Field(default=None, foreign_key="callbacks.id")
    urges_work_order_id: int | None = Field(default=None, foreign_key="work_orders.id")
    urges_retention_case_id: int | None = Field(default=None, foreign_key="retention_cases.id")
    urges_retention_level: int | None = None
