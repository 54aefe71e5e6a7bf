"""Typed settings. The handbook's numbers live in `RulesConfig`, with their defaults.

An operator overrides any of them with environment variables (prefix `CALLCENTER_`, nested
with `__`, e.g. `CALLCENTER_RULES__ATTEMPTS__MAX_ATTEMPTS=4`) or with a TOML file named by
`CALLCENTER_RULES_FILE`. A bad value stops start-up with a message naming the setting.
"""

from __future__ import annotations

import tomllib
from datetime import date, time, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class Channel(StrEnum):
    """Who places a callback: an agent in the console, or the IVR machine."""

    AGENT = "agent"
    IVR = "ivr"


class CallbackType(StrEnum):
    """The callbacks of chapter 4 §1 and the proactive contacts of CB-7."""

    INSTALL = "install"  # rule CB-1
    REPAIR = "repair"  # rule CB-2
    COMPLAINT = "complaint"  # rule CB-3
    CHURN = "churn"  # rule CB-4
    INSTALL_DELAY = "install_delay"  # rule CB-7: install not done within 4 days
    FAULT_DELAY = "fault_delay"  # rule CB-7: fault not restored within 4 hours
    COMPLAINT_CONTACT = "complaint_contact"  # rule CB-7: complaint accepted, contact in 30 min


PositiveDuration = Annotated[timedelta, Field(gt=timedelta(0))]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WindowSpec(_Frozen):
    """One daily calling window in the customer's local wall-clock time (rule CB-5)."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"window ends ({self.end}) before or when it starts ({self.start})")
        return self


class TypeRule(_Frozen):
    """Target and hard limit of one callback type, counted from its anchor event."""

    target: timedelta = Field(ge=timedelta(0))
    hard_limit: PositiveDuration
    channel: Channel = Channel.AGENT

    @model_validator(mode="after")
    def _target_within_limit(self) -> Self:
        if self.target > self.hard_limit:
            raise ValueError(
                f"target ({self.target}) is later than the hard limit ({self.hard_limit})"
            )
        return self


def _default_types() -> dict[CallbackType, TypeRule]:
    h = timedelta(hours=1)
    return {
        CallbackType.INSTALL: TypeRule(target=24 * h, hard_limit=72 * h),  # rule CB-1
        CallbackType.REPAIR: TypeRule(target=24 * h, hard_limit=48 * h),  # rule CB-2
        CallbackType.COMPLAINT: TypeRule(target=48 * h, hard_limit=48 * h),  # rule CB-3
        # rule CB-4: at once; the hard limit is the first calling window (see ChurnRule)
        CallbackType.CHURN: TypeRule(target=timedelta(0), hard_limit=24 * h),
        # rule CB-7: counted from the moment the contact becomes due (the trigger)
        CallbackType.INSTALL_DELAY: TypeRule(target=8 * h, hard_limit=24 * h),
        CallbackType.FAULT_DELAY: TypeRule(target=1 * h, hard_limit=4 * h),
        CallbackType.COMPLAINT_CONTACT: TypeRule(target=timedelta(minutes=30), hard_limit=24 * h),
    }


class ProactiveRule(_Frozen):
    """Rule CB-7: how long after its trigger event a proactive contact becomes due.

    The complaint contact is due at once; its 30 minutes are the complaint_contact target.
    """

    install_not_completed_after: PositiveDuration = timedelta(days=4)
    fault_not_restored_after: PositiveDuration = timedelta(hours=4)


class ChurnRule(_Frozen):
    """Rule CB-4: a churn callback is due at once and must be made in the first window.

    A first window with less than `min_first_window` left is too short to count on, so the
    hard limit becomes the end of the window after it.
    """

    min_first_window: timedelta = Field(default=timedelta(hours=1), ge=timedelta(0))


class AttemptPolicy(_Frozen):
    """How often and how soon an unanswered callback is tried again (rule CB-5 windows)."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_interval: PositiveDuration = timedelta(hours=2)
    lease: PositiveDuration = timedelta(minutes=15)


class FollowUpRule(_Frozen):
    """Rule SV-5: what the agent cannot settle on the call is handed over as a work order."""

    hand_over_within: PositiveDuration = timedelta(minutes=15)


class SlaRule(_Frozen):
    """When the SLA watch flags a callback, and how soon an urging order follows (rule WO-4)."""

    # A callback is at risk once this share of the time from its anchor to its target passed.
    at_risk_share: float = Field(default=0.75, gt=0, lt=1)
    urging_within: PositiveDuration = timedelta(minutes=30)  # rule WO-4
    # A callback a customer asked a given agent for moves to the shared queue when that agent
    # has not taken it this long after it became due.
    personal_grace: PositiveDuration = timedelta(minutes=30)


class WorkdayRule(_Frozen):
    """Working days: the PRC calendar with its make-up working days (调休), from a maintained
    library, plus days the operator declares for a year the library does not know yet."""

    install_due_working_days: int = Field(default=3, ge=1)  # chapter 4 §1: ≤3 working days
    install_latest_working_days: int = Field(default=7, ge=1)  # … at most 7
    declared_working_days: tuple[date, ...] = ()
    declared_holidays: tuple[date, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        both = set(self.declared_working_days) & set(self.declared_holidays)
        if both:
            days = ", ".join(sorted(day.isoformat() for day in both))
            raise ValueError(f"declared both a working day and a holiday: {days}")
        if self.install_latest_working_days < self.install_due_working_days:
            raise ValueError("install_latest_working_days is less than install_due_working_days")
        return self


class ForecastRule(_Frozen):
    """The forecast's own settings, with their defaults."""

    # Used while there is too little history to measure the average handling time.
    default_handling_time: timedelta = Field(default=timedelta(minutes=6), gt=timedelta(0))
    handling_time_lookback: timedelta = Field(default=timedelta(days=14), gt=timedelta(0))
    # Measured over the most recent attempts only: plenty for a mean, and a bounded read.
    handling_time_sample: int = Field(default=20_000, ge=1)
    # Fewer measured claims than this: the default is used (a handful of calls is noise).
    min_handling_samples: int = Field(default=10, ge=1)


class RulesConfig(_Frozen):
    """Every number of the handbook that the software enforces, with its default."""

    default_timezone: str = "Asia/Shanghai"
    default_phone_region: str = "CN"
    windows: tuple[WindowSpec, ...] = (
        WindowSpec(start=time(8, 30), end=time(12, 0)),  # rule CB-5
        WindowSpec(start=time(14, 30), end=time(20, 30)),  # rule CB-5
    )
    types: dict[CallbackType, TypeRule] = Field(default_factory=_default_types)
    proactive: ProactiveRule = ProactiveRule()
    churn: ChurnRule = ChurnRule()
    attempts: AttemptPolicy = AttemptPolicy()
    follow_up: FollowUpRule = FollowUpRule()
    sla: SlaRule = SlaRule()
    workdays: WorkdayRule = WorkdayRule()
    forecast: ForecastRule = ForecastRule()

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("windows")
    @classmethod
    def _windows_disjoint(cls, value: tuple[WindowSpec, ...]) -> tuple[WindowSpec, ...]:
        if not value:
            raise ValueError("at least one calling window is required")
        ordered = sorted(value, key=lambda w: w.start)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.start < before.end:
                raise ValueError(
                    f"windows {before.start}-{before.end} and {after.start}-{after.end} overlap"
                )
        return tuple(ordered)

    @field_validator("types", mode="before")
    @classmethod
    def _merge_type_defaults(cls, value: Any) -> Any:
        # An operator who overrides one type keeps the defaults of the others.
        if isinstance(value, dict):
            merged: dict[Any, Any] = {str(k): v for k, v in _default_types().items()}
            for key, rule in value.items():
                base = merged.get(str(key))
                if isinstance(base, TypeRule) and isinstance(rule, dict):
                    rule = {**base.model_dump(), **rule}
                merged[str(key)] = rule
            return merged
        return value

    @model_validator(mode="after")
    def _churn_is_agent(self) -> Self:
        if self.types[CallbackType.CHURN].channel is not Channel.AGENT:
            # rule CB-6: the retention flow needs a person on the line.
            raise ValueError("types.churn.channel: churn callbacks are always made by an agent")
        return self

    def rule_for(self, kind: CallbackType) -> TypeRule:
        return self.types[kind]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Process settings: where the database is, how the server runs, and the rules."""

    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    database_url: str = "sqlite:///./callcenter.db"
    rules_file: Path | None = None
    scripts_dir: Path | None = None  # default: the shipped scripts/
    # Tests only: read "now" from this file (one ISO 8601 instant) to drive separate processes.
    clock_file: Path | None = None
    rules: RulesConfig = RulesConfig()
    scheduler_enabled: bool = True
    lease_sweep_seconds: int = Field(default=60, ge=1)
    sla_watch_seconds: int = Field(default=60, ge=1)
    personal_sweep_seconds: int = Field(default=60, ge=1)
    # The nightly KPI snapshot runs at this hour, in the default zone.
    snapshot_hour: int = Field(default=1, ge=0, le=23)
    batch_max_events: int = Field(default=1000, ge=1, le=10_000)

    @model_validator(mode="after")
    def _no_test_clock_in_production(self) -> Self:
        if self.clock_file is not None and self.environment is Environment.PRODUCTION:
            raise ValueError("clock_file: a test clock is never used in production")
        return self

    @model_validator(mode="before")
    @classmethod
    def _load_rules_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        path = data.get("rules_file")
        if not path:
            return data
        try:
            with open(path, "rb") as handle:
                from_file = tomllib.load(handle)
        except OSError as exc:
            raise ValueError(f"rules_file: cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"rules_file: {path} is not valid TOML: {exc}") from exc
        rules = from_file.get("rules", from_file)
        env_rules = data.get("rules")
        if isinstance(env_rules, dict):
            rules = _deep_merge(rules, env_rules)
        return {**data, "rules": rules}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def project_path(name: str) -> Path:
    """A top-level file or folder of the project (`alembic`, `alembic.ini`, `scripts`): next to
    the package in a checkout, else in the working directory (an installed package does not
    carry them; the container has them in /app)."""
    beside = Path(__file__).resolve().parent.parent / name
    return beside if beside.exists() else Path.cwd() / name


class SettingsError(Exception):
    """A setting is wrong; the message names it so that the operator can fix it."""


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        lines.append(f"invalid setting {name}: {error['msg']}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and the rules file); raise `SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
