"""Work orders as the API shows them."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from callcenter.workorders.models import WorkOrderKind, WorkOrderStatus


class FollowUpCreate(BaseModel):
    """What the customer raised that the agent could not settle on the call (rule SV-5)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: str = Field(min_length=2, max_length=200)
    details: str | None = Field(default=None, max_length=2000)
    team: str | None = Field(default=None, max_length=64, description="Who should take it.")


class WorkOrderRead(BaseModel):
    id: int
    kind: WorkOrderKind
    status: WorkOrderStatus
    callback_id: int | None
    customer_id: str | None = Field(description="The customer's id in the order system.")
    subject: str
    details: str | None
    team: str | None
    created_by: str | None
    created_at: datetime
    due_at: datetime = Field(description="When it must be handed over.")
    overdue: bool
    handed_over_at: datetime | None
    closed_at: datetime | None


class WorkOrderPage(BaseModel):
    items: list[WorkOrderRead]
    total: int
    limit: int
    offset: int
