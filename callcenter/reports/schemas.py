"""What the reports answer: the KPI dashboard, the churn figures and the lists behind them."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from callcenter.config import CallbackType
from callcenter.reports.rules import Grade


class KpiFilters(BaseModel):
    """A period of local days (both ends included) and, optionally, one team, agent, type."""

    start: date
    end: date
    team: str | None = None
    agent_id: int | None = None
    callback_type: CallbackType | None = None


class FigureRead(BaseModel):
    key: str = Field(description="what the figure is, e.g. `timeliness`")
    rule: str | None = Field(default=None, description="the handbook rule it measures")
    value: float | None = Field(description="a share (0..1) or a ratio; null without data")
    numerator: int | None = None
    denominator: int | None = None
    target: float | None = Field(default=None, description="the handbook's target (a share)")
    grade: Grade = Field(description="met, near (amber), missed (red) or none")
    unit: str = Field(description="share, ratio or count")


class HourRead(BaseModel):
    hour: int = Field(ge=0, le=23, description="the customer's local hour")
    attempts: int
    answered: int
    answer_rate: float | None


class TypeRow(BaseModel):
    callback_type: CallbackType
    orders: int
    timeliness: float | None
    completed: int
    within_target: int
    within_hard_limit: int
    satisfaction: float | None
    attempts_per_completed: float | None
    by_ivr: int
    by_agent: int


class KpiReport(BaseModel):
    filters: KpiFilters
    figures: list[FigureRead]
    by_hour: list[HourRead]
    by_type: list[TypeRow]
    snapshot_days: int = Field(description="days of the period with a nightly snapshot")
    computed_at: datetime | None = Field(description="when the newest snapshot read was made")


class ChurnFilters(BaseModel):
    """A period of local days (cases decided in it) and, optionally, a region, the level where
    the decision was made, the outcome and the reason."""

    start: date
    end: date
    region: str | None = None
    level: int | None = Field(default=None, ge=1, le=3)
    state: str | None = Field(default=None, pattern="^(retained|lost)$")
    reason: str | None = None


class ParetoBarRead(BaseModel):
    code: str = Field(description="the reason code; empty: none was recorded")
    zh: str
    en: str
    count: int
    share: float
    cumulative: float


class LevelRateRead(BaseModel):
    level: int
    reached: int
    retained: int
    lost: int
    retention_rate: float | None


class OfferFiguresRead(BaseModel):
    offer_code: str
    zh: str
    en: str
    made: int
    accepted: int
    acceptance: float | None
    accepted_cost_yuan: int
    cost_per_retained_yuan: float | None


class ChurnReport(BaseModel):
    filters: ChurnFilters
    decided: int
    retained: int
    lost: int
    retention_rate: float | None
    offers_cost_yuan: int
    pareto: list[ParetoBarRead]
    levels: list[LevelRateRead]
    offers: list[OfferFiguresRead]
    regions: list[str]


class ChurnCaseRow(BaseModel):
    case_id: int
    customer_id: str
    customer_name: str
    phone_masked: str
    region: str | None
    level: int = Field(description="the level where the decision was made")
    state: str
    reason_code: str | None
    reason_zh: str | None
    reason_en: str | None
    closed_at: datetime | None
    win_back: bool | None
    win_back_on: date | None


class ChurnCasePage(BaseModel):
    items: list[ChurnCaseRow]
    total: int
    limit: int
    offset: int
