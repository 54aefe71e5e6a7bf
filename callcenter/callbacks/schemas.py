"""What goes in and out of the callback services (and so of the REST API)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus, EventType
from callcenter.config import CallbackType, Channel
from callcenter.customers.models import CustomerTitle
from callcenter.customers.rules import check_zone
from callcenter.timeformats import IsoAwareDatetime

Text = Annotated[str, Field(min_length=1, max_length=200)]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Key = Field(description="The customer's id in the order system.")
    name: Text
    title: CustomerTitle | None = Field(
        default=None,
        description="mr (先生) or ms (女士): how the agent addresses the customer. Without it the "
        "agent uses the full name.",
    )
    phone: str = Field(
        min_length=1,
        max_length=32,
        description="Any common notation; stored in E.164. National numbers are read in "
        "the configured default region (CN).",
        examples=["13812345678", "+86 591 8765 4321"],
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA zone; the calling windows are the customer's local time. "
        "Default: the configured zone (Asia/Shanghai).",
    )
    region: str | None = Field(default=None, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)


class EventIn(BaseModel):
    """One event posted by the order system."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "event_id": "evt-20261125-000123",
                    "type": "install_completed",
                    "occurred_at": "2026-11-25T10:15:00+08:00",
                    "order_id": "ORD-88001",
                    "customer": {"id": "C-1001", "name": "王芳", "phone": "13812345678"},
                }
            ]
        },
    )

    event_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")] = (
        Field(description="Idempotency key: the same event_id again creates nothing.")
    )
    type: EventType
    occurred_at: IsoAwareDatetime = Field(description="ISO 8601 with an offset; naive is refused.")
    order_id: Key
    customer: CustomerIn

    def canonical(self) -> dict[str, Any]:
        """The body as compared for idempotency: same instant, same data → same body."""
        data = self.model_dump(mode="json")
        data["occurred_at"] = self.occurred_at.timestamp()
        return data


class CustomerRead(BaseModel):
    id: str = Field(description="The customer's id in the order system.")
    name: str
    title: CustomerTitle | None
    phone_masked: str
    timezone: str
    region: str | None


class CustomerContact(CustomerRead):
    """The customer as the agent who holds the claim sees them: with the number to dial."""

    phone: str


class AttemptRead(BaseModel):
    id: int
    number: int
    outcome: AttemptOutcome
    channel: Channel
    agent: str | None = Field(description="Username of the agent; empty for the IVR.")
    call_back_at: datetime | None
    note: str | None
    recorded_at: datetime
    late_by_seconds: int = Field(description="How far past the target it was; 0: in time.")


class CallbackRead(BaseModel):
    id: int
    type: CallbackType
    status: CallbackStatus
    channel: Channel
    order_id: str
    event_id: str
    customer: CustomerRead
    anchor_at: datetime = Field(description="The event the deadlines count from.")
    available_at: datetime = Field(description="When it may next be offered.")
    due_at: datetime = Field(description="The target.")
    hard_due_at: datetime = Field(description="The hard limit.")
    overdue: bool = Field(description="Still open and past its target.")
    install_due_on: date | None = Field(
        description="Day-5 install contacts: the install is due by this day (3 working days)."
    )
    install_latest_on: date | None = Field(
        description="… and at the latest by this day (7 working days)."
    )
    at_risk_since: datetime | None = Field(description="When the SLA watch flagged it at risk.")
    overdue_since: datetime | None = Field(description="When the SLA watch flagged it overdue.")
    attempt_count: int
    claimed_by: str | None
    assigned_to: str | None = Field(
        description="The agent the customer asked to call back; it stays with that agent."
    )
    lease_expires_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    created_at: datetime


class CallbackDetail(CallbackRead):
    attempts: list[AttemptRead]


class ClaimRead(BaseModel):
    """A claim: the callback to make now, with every callable callback of the same customer."""

    claim_id: str
    lease_expires_at: datetime
    callback: CallbackRead = Field(description="The one with the earliest deadline.")
    callbacks: list[CallbackRead] = Field(description="All callbacks taken for this call.")
    customer: CustomerContact


class AttemptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    outcome: AttemptOutcome
    call_back_at: IsoAwareDatetime | None = Field(
        default=None,
        description="With call_back_later: when the customer asked to be called, inside a "
        "calling window and before the hard limit.",
    )
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _call_back_at_with_later(self) -> Self:
        later = self.outcome is AttemptOutcome.CALL_BACK_LATER
        if later and self.call_back_at is None:
            raise ValueError("call_back_at is required when the outcome is call_back_later")
        if not later and self.call_back_at is not None:
            raise ValueError("call_back_at is only for the outcome call_back_later")
        return self


class AttemptRecorded(BaseModel):
    attempts: list[AttemptRead] = Field(
        description="The attempt recorded; a whole-call outcome (no answer, busy, wrong "
        "number, do not call) is recorded on every callback of the same claim."
    )
    callbacks: list[CallbackRead]


class IntakeStatus(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"  # the same event again: nothing created
    CONFLICT = "conflict"  # the same event_id with another body
    INVALID = "invalid"


class FieldError(BaseModel):
    field: str
    message: str


class IntakeResult(BaseModel):
    index: int
    event_id: str | None
    status: IntakeStatus
    callback: CallbackRead | None = None
    errors: list[FieldError] = Field(default_factory=list)


class BatchResult(BaseModel):
    created: int
    duplicate: int
    conflict: int
    invalid: int
    results: list[IntakeResult]


class CallbackFilters(BaseModel):
    status: list[CallbackStatus] = Field(default_factory=list)
    type: list[CallbackType] = Field(default_factory=list)
    due_before: AwareDatetime | None = None
    overdue: bool | None = None
    customer_id: str | None = None
    order_id: str | None = None


class CallbackPage(BaseModel):
    items: list[CallbackRead]
    total: int
    limit: int
    offset: int
