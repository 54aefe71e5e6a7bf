"""What the IVR services give to the REST API and the console."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from callcenter.callbacks.rules import AttemptOutcome
from callcenter.config import CallbackType
from callcenter.ivr.rules import CallStatus, Disposition, StepResult


class IvrStepRead(BaseModel):
    question_id: str
    try_number: int
    digits: str | None
    result: StepResult
    at: datetime


class IvrCallRead(BaseModel):
    id: int
    ref: str
    callback_id: int
    callback_type: CallbackType
    customer_id: str = Field(description="The customer's id in the order system.")
    phone_masked: str
    number: int = Field(description="The attempt number on the callback.")
    provider: str
    status: CallStatus
    answered_by: str | None
    dial_at: datetime
    placed_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    outcome: AttemptOutcome | None
    disposition: Disposition | None = Field(description="What the call did to its callback.")
    note: str | None
    steps: list[IvrStepRead] = Field(description="Each question asked and the keys pressed.")
    created_at: datetime


class DialReport(BaseModel):
    """One run of the dialer."""

    settled: int = 0  # calls whose confirmation or end never came, settled now
    planned: int = 0
    placed: int = 0
    refused: int = 0
    handed_to_agents: int = 0  # IVR callbacks whose script the IVR cannot ask
