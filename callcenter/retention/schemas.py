"""What goes in and out of the retention services (and so of the REST API)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from callcenter.callbacks.schemas import CallbackRead, CustomerRead
from callcenter.config import RETENTION_LEVELS, OfferKind
from callcenter.retention.rules import CaseState, StepOutcome
from callcenter.timeformats import IsoDate

Level = Annotated[int, Field(ge=RETENTION_LEVELS[0], le=RETENTION_LEVELS[-1])]


class ReasonRead(BaseModel):
    code: str
    zh: str
    en: str
    needs_text: bool = Field(description="The customer's own words are required with it.")


class OfferRead(BaseModel):
    code: str
    zh: str
    en: str
    kind: OfferKind
    cost_yuan: int
    lowest_level: int = Field(description="The lowest level allowed to make it.")


class CatalogueOffer(OfferRead):
    allowed: bool = Field(description="Whether you may make it (your level reaches it).")


class CatalogueRead(BaseModel):
    """The reasons taxonomy and the offers catalogue, as the user sees them."""

    acting_level: int | None = Field(description="The level you record steps at; empty: none.")
    reading_level: int | None = Field(description="The highest queue you may read.")
    reasons: list[ReasonRead]
    offers: list[CatalogueOffer]


class StepCreate(BaseModel):
    """What one level records (rule RT-4). At level 1 it is recorded by the agent who holds the
    claim on the churn callback, and records the answered attempt on it as well."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    level: Level = Field(
        description="The case's current level, which this step is for; a case that has moved "
        "on answers 409."
    )
    outcome: StepOutcome
    reason_code: str = Field(
        min_length=1, max_length=32, description="From the reasons taxonomy (the catalogue)."
    )
    reason_text: str | None = Field(
        default=None, max_length=500, description="The customer's own words about the reason."
    )
    offer_code: str | None = Field(
        default=None, max_length=32, description="The offer made, from the catalogue; none: none."
    )
    offer_accepted: bool | None = Field(
        default=None, description="Whether the customer accepted the offer (with an offer)."
    )
    customer_answer: str | None = Field(
        default=None, max_length=1000, description="What the customer said, in their words."
    )
    escalate_to: Level | None = Field(
        default=None,
        description="With escalated: the level to go to (default the next; skipping one needs "
        "rules.retention.allow_skip_levels).",
    )
    win_back: bool | None = Field(
        default=None, description="With lost: might the customer come back? (rule RT-4)"
    )
    win_back_on: IsoDate | None = Field(
        default=None,
        description="With win_back: the customer's local day to call them; a win-back callback "
        "is due from the first calling window of that day.",
    )


class StepRead(BaseModel):
    id: int
    level: int
    outcome: StepOutcome
    escalated_to: int | None
    reason: ReasonRead | None = Field(description="Empty only on a step of the system.")
    reason_text: str | None
    offer: OfferRead | None = Field(description="As the catalogue has it now (if it still does).")
    offer_code: str | None
    offer_cost_yuan: int | None = Field(description="The offer's cost when it was made.")
    offer_accepted: bool | None
    customer_answer: str | None
    win_back: bool | None
    win_back_on: date | None
    win_back_callback_id: int | None
    attempt_id: int | None = Field(description="Level 1: the answered attempt recorded with it.")
    recorded_by: str | None = Field(description="Username; empty: the system.")
    recorded_at: datetime
    note: str | None


class CaseRead(BaseModel):
    id: int
    callback_id: int = Field(description="The churn callback it was created with.")
    customer: CustomerRead
    do_not_call: bool = Field(description="The customer's number is on the do-not-call list.")
    order_id: str
    state: CaseState
    level: int = Field(description="The level it is at (open) or was closed at.")
    level_since: datetime
    due_at: datetime = Field(description="When the current level is due.")
    overdue: bool = Field(description="Open and past its due time.")
    reason_code: str | None = Field(description="The latest recorded reason.")
    closed_at: datetime | None
    win_back_callback_id: int | None
    created_at: datetime


class CaseDetail(CaseRead):
    """A case with its whole history, and what may be done next."""

    steps: list[StepRead]
    churn_callback: CallbackRead
    win_back_callback: CallbackRead | None
    urging_order_ids: list[int] = Field(description="Urging orders sent for its levels (WO-4).")
    allowed_outcomes: list[StepOutcome] = Field(description="What its level may record now.")
    escalation_targets: list[int] = Field(description="Where it may be escalated to.")


class CasePage(BaseModel):
    items: list[CaseRead]
    total: int
    limit: int
    offset: int


class CaseFilters(BaseModel):
    state: list[CaseState] = Field(default_factory=list)
    level: list[Level] = Field(default_factory=list)
    overdue: bool | None = None
    callback_id: int | None = None
    customer_id: str | None = None
