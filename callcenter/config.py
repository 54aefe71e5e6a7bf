"""Typed settings. The handbook's numbers live in `RulesConfig`, with their defaults.

An operator overrides any of them with environment variables (prefix `CALLCENTER_`, nested
with `__`, e.g. `CALLCENTER_RULES__ATTEMPTS__MAX_ATTEMPTS=4`) or with a TOML file named by
`CALLCENTER_RULES_FILE`. A bad value stops start-up with a message naming the setting.
"""

from __future__ import annotations

import os
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
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


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
    # rule RT-4: a lost customer who might come back is called on the day they named
    WIN_BACK = "win_back"


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
        # rule RT-4: counted from the first window on the day the customer named
        CallbackType.WIN_BACK: TypeRule(target=24 * h, hard_limit=7 * 24 * h),
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


# The three levels of the retention flow (三级挽留, rules RT-1..RT-3): the agent, a supervisor,
# the branch's retention lead.
RETENTION_LEVELS = (1, 2, 3)
RetentionLevel = Annotated[int, Field(ge=RETENTION_LEVELS[0], le=RETENTION_LEVELS[-1])]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Label = Annotated[str, Field(min_length=1, max_length=100)]


class OfferKind(StrEnum):
    DISCOUNT = "discount"
    FREE_MONTHS = "free_months"
    SPEED_UPGRADE = "speed_upgrade"


class ReasonSpec(_Frozen):
    """One reason for cancelling in the taxonomy (Q-CHURN (1)); `needs_text`: the customer's own
    words are required with it."""

    code: Code
    zh: Label
    en: Label
    needs_text: bool = False


class OfferSpec(_Frozen):
    """One retention offer and the lowest level allowed to make it (rules RT-1..RT-3)."""

    code: Code
    zh: Label
    en: Label
    kind: OfferKind
    cost_yuan: int = Field(ge=0, le=1_000_000)
    lowest_level: RetentionLevel


DEFAULT_REASONS: tuple[ReasonSpec, ...] = (
    ReasonSpec(code="price", zh="资费偏高", en="Price"),
    ReasonSpec(code="network_quality", zh="网络质量", en="Network quality"),
    ReasonSpec(code="service_attitude", zh="服务态度", en="Service attitude"),
    ReasonSpec(code="moving_house", zh="搬家", en="Moving house"),
    ReasonSpec(code="competitor_offer", zh="其他运营商优惠", en="Competitor offer"),
    ReasonSpec(code="no_longer_needed", zh="不再需要", en="No longer needed"),
    ReasonSpec(code="other", zh="其他", en="Other", needs_text=True),
)

DEFAULT_OFFERS: tuple[OfferSpec, ...] = (
    OfferSpec(
        code="discount_10_6m",
        zh="月租九折，6个月",
        en="10% off the monthly fee for 6 months",
        kind=OfferKind.DISCOUNT,
        cost_yuan=60,
        lowest_level=1,
    ),
    OfferSpec(
        code="speed_up_6m",
        zh="免费提速一档，6个月",
        en="One speed tier up for 6 months, free",
        kind=OfferKind.SPEED_UPGRADE,
        cost_yuan=60,
        lowest_level=1,
    ),
    OfferSpec(
        code="free_month_1",
        zh="赠送1个月",
        en="One month free",
        kind=OfferKind.FREE_MONTHS,
        cost_yuan=100,
        lowest_level=2,
    ),
    OfferSpec(
        code="discount_20_12m",
        zh="月租八折，12个月",
        en="20% off the monthly fee for 12 months",
        kind=OfferKind.DISCOUNT,
        cost_yuan=240,
        lowest_level=2,
    ),
    OfferSpec(
        code="speed_up_12m",
        zh="免费提速两档，12个月",
        en="Two speed tiers up for 12 months, free",
        kind=OfferKind.SPEED_UPGRADE,
        cost_yuan=240,
        lowest_level=2,
    ),
    OfferSpec(
        code="free_months_3",
        zh="赠送3个月",
        en="Three months free",
        kind=OfferKind.FREE_MONTHS,
        cost_yuan=300,
        lowest_level=3,
    ),
    OfferSpec(
        code="discount_30_12m",
        zh="月租七折，12个月",
        en="30% off the monthly fee for 12 months",
        kind=OfferKind.DISCOUNT,
        cost_yuan=360,
        lowest_level=3,
    ),
)


class RetentionRule(_Frozen):
    """The three-level retention flow (rules CB-6, RT-1..RT-4).

    Level 1 is due with the churn callback (at once, rule CB-4); each later level is due this
    long after the outcome of the level before. The reason taxonomy is extended, never
    shrunk: a configured reason with a known code replaces its labels, a new code is added
    (recorded steps keep their codes). The offers catalogue is replaced as a whole.
    """

    level_2_within: PositiveDuration = timedelta(hours=24)
    level_3_within: PositiveDuration = timedelta(hours=48)
    # Escalation goes one level at a time, and a case is closed as lost only at the last
    # level (every customer is tried at every level), unless the operator allows skipping.
    allow_skip_levels: bool = False
    # How far ahead a win-back date may be (rule RT-4).
    win_back_within: PositiveDuration = timedelta(days=730)
    reasons: tuple[ReasonSpec, ...] = DEFAULT_REASONS
    offers: tuple[OfferSpec, ...] = DEFAULT_OFFERS

    @field_validator("reasons", mode="before")
    @classmethod
    def _extend_reasons(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        merged: dict[str, Any] = {reason.code: reason for reason in DEFAULT_REASONS}
        for item in value:
            code = item.get("code") if isinstance(item, dict) else getattr(item, "code", None)
            merged[str(code)] = item
        return list(merged.values())

    @field_validator("offers")
    @classmethod
    def _unique_offers(cls, value: tuple[OfferSpec, ...]) -> tuple[OfferSpec, ...]:
        codes = [offer.code for offer in value]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            raise ValueError(f"offer codes used twice: {', '.join(repeated)}")
        return value

    def reason(self, code: str) -> ReasonSpec | None:
        return next((reason for reason in self.reasons if reason.code == code), None)

    def offer(self, code: str) -> OfferSpec | None:
        return next((offer for offer in self.offers if offer.code == code), None)

    def level_within(self, level: int) -> timedelta:
        """How long after the previous level's outcome a level is due (levels 2 and 3)."""
        return {2: self.level_2_within, 3: self.level_3_within}[level]


class KpiTargets(_Frozen):
    """The handbook's targets the dashboard colours each figure by (rules KPI-1..KPI-3), as
    shares; `near` is how far below a target a figure is shown amber rather than red."""

    timeliness: float = Field(default=0.90, gt=0, le=1)  # rule KPI-1
    satisfaction: float = Field(default=0.95, gt=0, le=1)  # rule KPI-2
    transfer_timeliness: float = Field(default=0.99, gt=0, le=1)  # rule KPI-3
    near: float = Field(default=0.05, ge=0, lt=1)


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
    retention: RetentionRule = RetentionRule()
    kpi: KpiTargets = KpiTargets()

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
        if self.types[CallbackType.WIN_BACK].channel is not Channel.AGENT:
            # rule RT-4: a win-back call makes an offer; it needs a person on the line.
            raise ValueError(
                "types.win_back.channel: win-back callbacks are always made by an agent"
            )
        return self

    def rule_for(self, kind: CallbackType) -> TypeRule:
        return self.types[kind]


class ConsoleSettings(_Frozen):
    """The web console's sign-in: how long a session lasts, when an account locks and when
    an address is refused."""

    # A session ends after this long without a request, and at the latest after max_age.
    idle_timeout: PositiveDuration = timedelta(hours=2)
    max_age: PositiveDuration = timedelta(hours=12)
    # This many wrong passwords in a row lock the account for lockout (a correct one resets).
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout: PositiveDuration = timedelta(minutes=15)
    # This many refused sign-ins from one client address within address_window, whatever the
    # accounts, and that address is refused without a password check until the oldest
    # leaves the window (password spraying across accounts).
    max_failed_logins_per_address: int = Field(default=20, ge=1, le=10_000)
    address_window: PositiveDuration = timedelta(minutes=15)
    # Cookies carry the Secure flag; None: in production only (development runs on http).
    secure_cookies: bool | None = None
    # How often the supervisor's board and the agent's list of callbacks refresh themselves.
    refresh_seconds: int = Field(default=20, ge=5, le=600)
    # The steps of the call-back-later picker, in minutes.
    call_back_step_minutes: int = Field(default=15, ge=5, le=60)


class TelephonyProvider(StrEnum):
    """Who places the IVR calls: Twilio, or the local simulator when no account is set."""

    TWILIO = "twilio"
    SIMULATOR = "simulator"


class TelephonySettings(BaseModel):
    """The IVR's telephony: the Twilio account (none: the local simulator), where Twilio
    reaches our webhooks, how fast and how many calls at once, and how the machine speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_sid: str | None = None
    auth_token: SecretStr | None = None  # also the key Twilio signs its webhooks with
    from_number: str | None = None  # E.164, a number of the account
    # The URL Twilio calls us at, as Twilio sees it (behind a proxy: the proxy's). Webhook
    # signatures are computed over it, so it must be exactly what Twilio requests.
    public_base_url: str = "http://127.0.0.1:8000"
    # Twilio's REST API; only changed to talk to a stand-in of it (tests).
    api_base_url: str | None = None
    # How long one request to Twilio's REST API may take; a dialer waiting on a hung
    # connection would hold up every other call of its batch. A call request that times out
    # is never sent again: the call is settled later from Twilio's own record of it.
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    calls_per_second: float = Field(default=1.0, gt=0, le=100)  # Twilio's default account CPS
    max_concurrent: int = Field(default=10, ge=1, le=10_000)
    voice: str = "Polly.Zhiyu"
    language: str = "zh-CN"
    machine_detection: bool = True
    ring_timeout_seconds: int = Field(default=30, ge=5, le=600)
    gather_timeout_seconds: int = Field(default=6, ge=1, le=60)
    time_limit_seconds: int = Field(default=600, ge=60, le=14_400)
    # How often the dialer runs, and how long a placed call may stay unconfirmed before it
    # is recorded as lost (never redialled at once: the customer is not called twice).
    dial_seconds: int = Field(default=1, ge=1, le=60)
    confirm_within: PositiveDuration = timedelta(minutes=5)
    # IVR attempts before the callback goes to an agent (default: the rules' max_attempts).
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    # The simulator only: how the simulated customers behave (seeded; 0 disables a case).
    simulator_busy_share: float = Field(default=0.1, ge=0, le=1)
    simulator_no_answer_share: float = Field(default=0.1, ge=0, le=1)
    simulator_machine_share: float = Field(default=0.05, ge=0, le=1)

    @model_validator(mode="after")
    def _whole_account(self) -> Self:
        given = {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": self.from_number,
        }
        missing = [name for name, value in given.items() if not value]
        if 0 < len(missing) < len(given):
            raise ValueError(
                f"a Twilio account needs account_sid, auth_token and from_number; "
                f"missing: {', '.join(missing)}"
            )
        if not self.public_base_url.startswith(("http://", "https://")):
            raise ValueError("public_base_url must start with http:// or https://")
        return self

    @property
    def provider(self) -> TelephonyProvider:
        return TelephonyProvider.TWILIO if self.account_sid else TelephonyProvider.SIMULATOR

    def signing_key(self) -> str:
        """The key webhooks are signed with: the auth token, or the simulator's own."""
        if self.auth_token is not None:
            return self.auth_token.get_secret_value()
        return SIMULATOR_SIGNING_KEY


# Without a Twilio account the simulator signs its webhooks with this key; development only
# (a production start without an account refuses IVR callbacks, see Settings).
SIMULATOR_SIGNING_KEY = "local-call-simulator"


DEFAULT_DATABASE_URL = "sqlite:///./callcenter.db"
_PLACEHOLDERS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "change_me",
        "password",
        "secret",
        "example",
        "xxx",
        "todo",
        "postgres",
        "callcenter",
        "...",
        "…",
    }
)


def is_placeholder(secret: str) -> bool:
    """A secret copied from an example or left at a well-known value."""
    return secret.strip().lower() in _PLACEHOLDERS or set(secret.strip()) <= {"x", "*", "."}


def sa_url_password(url: str) -> str | None:
    """The password of a database URL (None when it has none)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # an unparsable URL fails later, with the driver's own message
        return None


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Process settings: where the database is, how the server runs, and the rules."""

    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_",
        env_nested_delimiter="__",
        extra="ignore",
        # Secrets may come as files instead (Docker and Kubernetes secrets): one file per
        # setting in CALLCENTER_SECRETS_DIR, named like its variable, for example
        # CALLCENTER_DATABASE_URL or CALLCENTER_TELEPHONY__AUTH_TOKEN.
        secrets_nested_delimiter="__",
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    database_url: str = DEFAULT_DATABASE_URL
    rules_file: Path | None = None
    scripts_dir: Path | None = None  # default: the shipped scripts/
    # Tests only: read "now" from this file (one ISO 8601 instant) to drive separate processes.
    clock_file: Path | None = None
    rules: RulesConfig = RulesConfig()
    scheduler_enabled: bool = True
    # On PostgreSQL, claims and plain attempts on the event loop (callcenter.callbacks.hotpath);
    # off, every request goes through the services (as on SQLite).
    hot_path: bool = True
    lease_sweep_seconds: int = Field(default=60, ge=1)
    sla_watch_seconds: int = Field(default=60, ge=1)
    personal_sweep_seconds: int = Field(default=60, ge=1)
    # The nightly KPI snapshot runs at this hour, in the default zone.
    snapshot_hour: int = Field(default=1, ge=0, le=23)
    batch_max_events: int = Field(default=1000, ge=1, le=10_000)
    telephony: TelephonySettings = TelephonySettings()

    @model_validator(mode="after")
    def _no_simulated_calls_in_production(self) -> Self:
        ivr_types = [k for k, rule in self.rules.types.items() if rule.channel is Channel.IVR]
        if (
            ivr_types
            and self.environment is Environment.PRODUCTION
            and self.telephony.provider is TelephonyProvider.SIMULATOR
        ):
            raise ValueError(
                "telephony: IVR callbacks are configured "
                f"({', '.join(sorted(ivr_types))}) but no Twilio account; production never "
                "uses the call simulator"
            )
        return self

    console: ConsoleSettings = ConsoleSettings()

    @property
    def secure_cookies(self) -> bool:
        if self.console.secure_cookies is not None:
            return self.console.secure_cookies
        return self.environment is Environment.PRODUCTION

    @model_validator(mode="after")
    def _no_test_clock_in_production(self) -> Self:
        if self.clock_file is not None and self.environment is Environment.PRODUCTION:
            raise ValueError("clock_file: a test clock is never used in production")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secret files may set nested settings too (CALLCENTER_TELEPHONY__AUTH_TOKEN).
        nested = NestedSecretsSettingsSource(file_secret_settings)
        return init_settings, env_settings, dotenv_settings, nested

    @model_validator(mode="after")
    def _no_defaults_for_secrets_in_production(self) -> Self:
        """Production runs on what the operator set, never on a development default or a
        placeholder copied from an example."""
        if self.environment is not Environment.PRODUCTION:
            return self
        if self.database_url == DEFAULT_DATABASE_URL:
            raise ValueError(
                "database_url: production needs CALLCENTER_DATABASE_URL (or the secret file "
                "of that name), not the development default"
            )
        password = sa_url_password(self.database_url)
        if password is not None and is_placeholder(password):
            raise ValueError("database_url: its password is a placeholder; set the real one")
        token = self.telephony.auth_token
        if token is not None and is_placeholder(token.get_secret_value()):
            raise ValueError("telephony.auth_token: a placeholder; set the account's auth token")
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
    """Read settings from the environment, the secret files of CALLCENTER_SECRETS_DIR (if
    set) and the rules file; raise `SettingsError`."""
    secrets_dir = os.environ.get("CALLCENTER_SECRETS_DIR")
    if secrets_dir and "_secrets_dir" not in overrides:
        if not Path(secrets_dir).is_dir():
            raise SettingsError(f"CALLCENTER_SECRETS_DIR: {secrets_dir} is not a directory")
        overrides["_secrets_dir"] = secrets_dir
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
