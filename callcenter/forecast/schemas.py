"""The roster and the capacity forecast as the API shows them."""

from datetime import date, datetime, time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from callcenter.forecast.rules import MissedDeadline
from callcenter.timeformats import IsoDate

MAX_AGENTS = 10_000

# A wall-clock time without an offset (RFC 3339 `partial-time`): JSON Schema's `time` format
# requires an offset, which a window's local start does not have.
LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "format": "partial-time",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$",
        }
    ),
]


class RosterSet(BaseModel):
    """How many agents work one calling window of one day (in the default zone)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    day: IsoDate
    window_start: LocalTime = Field(
        description="The window, by its local start time in the default zone (e.g. `08:30`)."
    )
    agents: int = Field(ge=0, le=MAX_AGENTS)
    team: str | None = Field(
        default=None,
        max_length=64,
        description="Leave out for the whole centre; a window's agents are the sum of its rows.",
    )

    @field_validator("team")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class RosterRead(BaseModel):
    id: int
    day: date
    window_start: LocalTime
    agents: int
    team: str | None
    updated_by: str | None
    updated_at: datetime


class ForecastWindow(BaseModel):
    """One calling window of the horizon (rule CB-5) and its load."""

    day: date
    window_start: LocalTime = Field(description="The roster's key: local start time, default zone.")
    starts_at: datetime = Field(description="The part still ahead: now, for an open window.")
    ends_at: datetime
    agents: int = Field(description="Rostered (the sum of the window's roster rows).")
    capacity: int = Field(description="Calls: floor(agents × length / AHT).")
    demand: int = Field(description="Callbacks callable in the window, not called earlier.")
    assigned: int = Field(description="Calls the window makes.")
    shortfall: int = Field(description="Callable in the window, not called in it (no agent).")
    extra_agent_hours_for_hard_limits: float = Field(
        description="More agent time so that no hard limit is missed that could be met."
    )
    extra_agent_hours_for_targets: float = Field(
        description="More agent time so that every target is met that could be met."
    )


class PredictedMiss(BaseModel):
    callback_id: int
    deadline: MissedDeadline
    due_at: datetime
    hard_due_at: datetime
    predicted_at: datetime | None = Field(
        description="When it is called; null: not within the horizon, or it expires first."
    )
    avoidable: bool = Field(description="More agents could prevent it.")


class ForecastRead(BaseModel):
    """If nothing changes: who misses a deadline today and tomorrow, and what would help."""

    generated_at: datetime
    timezone: str = Field(description="The zone of the roster's days and windows.")
    horizon_end: datetime = Field(description="Midnight after tomorrow.")
    aht_seconds: float = Field(description="Average handling time per claim.")
    aht_measured: bool = Field(description="False: too little history, the default is used.")
    aht_samples: int
    open_callbacks: int
    called_within_horizon: int
    carried_beyond_horizon: int = Field(
        description="Not called within the horizon, both deadlines after it."
    )
    missing_hard_limit: int
    missing_target_only: int
    extra_agent_hours_for_hard_limits: float
    extra_agent_hours_for_targets: float
    windows: list[ForecastWindow]
    misses: list[PredictedMiss] = Field(description="The most urgent first, up to the limit.")
    misses_truncated: bool
