"""Settings: the handbook's numbers with their defaults, their validation, and how an operator
overrides them (environment variables and a TOML rules file)."""

from __future__ import annotations

import json
import os
from datetime import time, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from callcenter.config import (
    AttemptPolicy,
    CallbackType,
    Channel,
    ChurnRule,
    ProactiveRule,
    RulesConfig,
    SettingsError,
    TypeRule,
    WindowSpec,
    load_settings,
)
from tests.unit.strategies import FAST

H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no CALLCENTER_* variable from the shell leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("CALLCENTER_"):
            monkeypatch.delenv(name)


# --- defaults -----------------------------------------------------------------------------


def test_defaults_are_the_handbooks_numbers() -> None:
    rules = RulesConfig()
    assert rules.default_timezone == "Asia/Shanghai"
    assert rules.windows == (  # rule CB-5
        WindowSpec(start=time(8, 30), end=time(12, 0)),
        WindowSpec(start=time(14, 30), end=time(20, 30)),
    )
    expected = {
        CallbackType.INSTALL: (24 * H, 72 * H),  # rule CB-1
        CallbackType.REPAIR: (24 * H, 48 * H),  # rule CB-2
        CallbackType.COMPLAINT: (48 * H, 48 * H),  # rule CB-3
        CallbackType.CHURN: (timedelta(0), 24 * H),  # rule CB-4: at once
        CallbackType.COMPLAINT_CONTACT: (timedelta(minutes=30), 24 * H),  # rule CB-7
    }
    for kind, (target, hard_limit) in expected.items():
        assert (rules.rule_for(kind).target, rules.rule_for(kind).hard_limit) == (
            target,
            hard_limit,
        )
    assert set(rules.types) == set(CallbackType)
    assert rules.rule_for(CallbackType.CHURN).channel is Channel.AGENT  # rule CB-6
    assert rules.proactive.install_not_completed_after == timedelta(days=4)  # rule CB-7
    assert rules.proactive.fault_not_restored_after == 4 * H  # rule CB-7
    assert rules.attempts.max_attempts == 3


# --- windows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [(time(12, 0), time(8, 30)), (time(9, 0), time(9, 0)), (time(0, 1), time(0, 0))],
)
def test_a_window_that_ends_before_or_when_it_starts_is_refused(start: time, end: time) -> None:
    with pytest.raises(ValidationError, match="before or when it starts"):
        WindowSpec(start=start, end=end)


@pytest.mark.parametrize(
    "pairs",
    [
        [(time(8, 0), time(12, 0)), (time(11, 59), time(13, 0))],
        [(time(8, 0), time(18, 0)), (time(9, 0), time(10, 0))],  # one inside the other
        [(time(14, 0), time(16, 0)), (time(8, 0), time(15, 0))],  # given out of order
        [(time(8, 0), time(9, 0)), (time(8, 0), time(9, 0))],  # the same window twice
        [(time(1, 0), time(2, 0)), (time(3, 0), time(4, 0)), (time(1, 30), time(3, 30))],
    ],
)
def test_overlapping_windows_are_refused(pairs: list[tuple[time, time]]) -> None:
    with pytest.raises(ValidationError, match="overlap"):
        RulesConfig(windows=tuple(WindowSpec(start=a, end=b) for a, b in pairs))


def test_no_window_at_all_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        RulesConfig(windows=())


def test_touching_windows_are_accepted_and_windows_are_sorted() -> None:
    rules = RulesConfig(
        windows=(
            WindowSpec(start=time(14, 0), end=time(16, 0)),
            WindowSpec(start=time(8, 0), end=time(14, 0)),
        )
    )
    assert [(w.start, w.end) for w in rules.windows] == [
        (time(8, 0), time(14, 0)),
        (time(14, 0), time(16, 0)),
    ]


_minutes = st.integers(min_value=0, max_value=24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
_window_pairs = st.tuples(_minutes, _minutes).filter(lambda p: p[0] < p[1])


@FAST
@given(pairs=st.lists(_window_pairs, min_size=1, max_size=4))
def test_windows_are_accepted_exactly_when_disjoint(pairs: list[tuple[time, time]]) -> None:
    # [start, end) windows: disjoint when one ends at or before the other starts
    disjoint = all(
        a_end <= b_start or b_end <= a_start
        for i, (a_start, a_end) in enumerate(pairs)
        for b_start, b_end in pairs[i + 1 :]
    )
    windows = tuple(WindowSpec(start=a, end=b) for a, b in pairs)
    if disjoint:
        rules = RulesConfig(windows=windows)
        assert sorted(rules.windows, key=lambda w: w.start) == list(rules.windows)
        assert set(rules.windows) == set(windows)
    else:
        with pytest.raises(ValidationError, match="overlap"):
            RulesConfig(windows=windows)


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: TypeRule(target=-H, hard_limit=H),
        lambda: TypeRule(target=timedelta(0), hard_limit=timedelta(0)),
        lambda: TypeRule(target=timedelta(0), hard_limit=-H),
        lambda: TypeRule(target=25 * H, hard_limit=24 * H),  # target after the hard limit
        lambda: AttemptPolicy(max_attempts=0),
        lambda: AttemptPolicy(max_attempts=-1),
        lambda: AttemptPolicy(max_attempts=21),
        lambda: AttemptPolicy(retry_interval=timedelta(0)),
        lambda: AttemptPolicy(retry_interval=-H),
        lambda: AttemptPolicy(lease=timedelta(0)),
        lambda: ProactiveRule(install_not_completed_after=timedelta(0)),
        lambda: ProactiveRule(fault_not_restored_after=-H),
        lambda: ChurnRule(min_first_window=-timedelta(minutes=1)),
    ],
)
def test_negative_zero_and_inverted_limits_are_refused(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


def test_limits_on_the_edge_are_accepted() -> None:
    assert TypeRule(target=timedelta(0), hard_limit=timedelta(seconds=1)).target == timedelta(0)
    assert TypeRule(target=48 * H, hard_limit=48 * H).target == 48 * H  # rule CB-3
    assert AttemptPolicy(max_attempts=1).max_attempts == 1
    assert AttemptPolicy(max_attempts=20).max_attempts == 20
    assert ChurnRule(min_first_window=timedelta(0)).min_first_window == timedelta(0)


def test_target_after_hard_limit_names_both() -> None:
    with pytest.raises(ValidationError, match="later than the hard limit"):
        RulesConfig(types={CallbackType.REPAIR: {"target": 49 * H}})  # type: ignore[dict-item]


def test_overriding_one_type_keeps_the_others() -> None:
    rules = RulesConfig(types={CallbackType.INSTALL: {"target": 12 * H}})  # type: ignore[dict-item]
    assert rules.rule_for(CallbackType.INSTALL).target == 12 * H
    assert rules.rule_for(CallbackType.INSTALL).hard_limit == 72 * H  # rule CB-1, kept
    assert rules.rule_for(CallbackType.REPAIR).hard_limit == 48 * H  # rule CB-2, kept
    assert set(rules.types) == set(CallbackType)


def test_churn_must_be_called_by_an_agent() -> None:
    # rule CB-6: the retention flow needs a person on the line
    with pytest.raises(ValidationError, match="churn"):
        RulesConfig(types={CallbackType.CHURN: {"channel": "ivr"}})  # type: ignore[dict-item]
    rules = RulesConfig(types={CallbackType.REPAIR: {"channel": "ivr"}})  # type: ignore[dict-item]
    assert rules.rule_for(CallbackType.REPAIR).channel is Channel.IVR


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "Asia/Shanghai "])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        RulesConfig(default_timezone=zone)


@pytest.mark.parametrize("zone", ["America/New_York", "UTC", "Asia/Urumqi"])
def test_a_known_time_zone_is_accepted(zone: str) -> None:
    assert RulesConfig(default_timezone=zone).default_timezone == zone


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="max_attempt"):
        RulesConfig(attempts={"max_attempt": 4})  # type: ignore[arg-type]


# --- load_settings: environment variables ---------------------------------------------------


def test_load_settings_defaults() -> None:
    settings = load_settings()
    assert settings.rules == RulesConfig()
    assert settings.rules_file is None


def test_environment_overrides_one_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_RULES__ATTEMPTS__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("CALLCENTER_RULES__TYPES__INSTALL__TARGET", "PT12H")
    rules = load_settings().rules
    assert rules.attempts.max_attempts == 5
    assert rules.attempts.retry_interval == 2 * H  # the rest keep their defaults
    assert rules.rule_for(CallbackType.INSTALL).target == 12 * H
    assert rules.rule_for(CallbackType.INSTALL).hard_limit == 72 * H
    assert rules.windows == RulesConfig().windows


def test_environment_overrides_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    windows = [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "18:00"}]
    monkeypatch.setenv("CALLCENTER_RULES__WINDOWS", json.dumps(windows))
    assert load_settings().rules.windows == (
        WindowSpec(start=time(9, 0), end=time(12, 0)),
        WindowSpec(start=time(13, 0), end=time(18, 0)),
    )


@pytest.mark.parametrize(
    ("name", "value", "setting", "words"),
    [
        ("RULES__ATTEMPTS__MAX_ATTEMPTS", "0", "rules.attempts.max_attempts", "greater"),
        ("RULES__ATTEMPTS__MAX_ATTEMPTS", "three", "rules.attempts.max_attempts", "integer"),
        ("RULES__ATTEMPTS__RETRY_INTERVAL", "-PT1H", "rules.attempts.retry_interval", "greater"),
        ("RULES__TYPES__REPAIR__HARD_LIMIT", "PT0S", "rules.types.repair.hard_limit", "greater"),
        ("RULES__TYPES__INSTALL__TARGET", "P4D", "rules.types.install", "later than the hard"),
        ("RULES__TYPES__CHURN__CHANNEL", "ivr", "types.churn.channel", "agent"),
        ("RULES__DEFAULT_TIMEZONE", "Asia/Beijing", "rules.default_timezone", "Asia/Beijing"),
        ("RULES__CHURN__MIN_FIRST_WINDOW", "-PT1M", "rules.churn.min_first_window", "greater"),
        (
            "RULES__WINDOWS",
            '[{"start": "12:00", "end": "08:30"}]',
            "rules.windows",
            "before or when it starts",
        ),
        (
            "RULES__WINDOWS",
            '[{"start": "08:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]',
            "rules.windows",
            "overlap",
        ),
        ("RULES__WINDOWS", "[]", "rules.windows", "at least one"),
    ],
)
def test_a_bad_environment_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, setting: str, words: str
) -> None:
    monkeypatch.setenv(f"CALLCENTER_{name}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert setting in message
    assert words in message
    assert isinstance(caught.value.__cause__, ValidationError)


def test_keyword_overrides_are_validated_too() -> None:
    with pytest.raises(SettingsError, match=r"rules\.attempts\.lease"):
        load_settings(rules={"attempts": {"lease": "PT0S"}})
    lease = load_settings(rules={"attempts": {"lease": "PT5M"}}).rules.attempts.lease
    assert lease == timedelta(minutes=5)


# --- load_settings: the TOML rules file -----------------------------------------------------

RULES_TOML = """
[rules]
default_timezone = "America/New_York"

[[rules.windows]]
start = 09:00:00
end = 12:00:00

[[rules.windows]]
start = "13:00"
end = "17:30"

[rules.attempts]
max_attempts = 5
retry_interval = "PT3H"

[rules.types.install]
target = "PT12H"
"""


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rules_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(write(tmp_path, RULES_TOML)))
    settings = load_settings()
    rules = settings.rules
    assert settings.rules_file == tmp_path / "rules.toml"
    assert rules.default_timezone == "America/New_York"
    assert rules.windows == (
        WindowSpec(start=time(9, 0), end=time(12, 0)),
        WindowSpec(start=time(13, 0), end=time(17, 30)),
    )
    assert rules.attempts.max_attempts == 5
    assert rules.attempts.retry_interval == 3 * H
    assert rules.attempts.lease == timedelta(minutes=15)  # not in the file: the default
    assert rules.rule_for(CallbackType.INSTALL).target == 12 * H
    assert rules.rule_for(CallbackType.INSTALL).hard_limit == 72 * H  # rule CB-1, kept
    assert rules.rule_for(CallbackType.COMPLAINT).target == 48 * H  # rule CB-3, kept


def test_rules_file_without_a_rules_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = '[attempts]\nmax_attempts = 4\n\n[churn]\nmin_first_window = "PT30M"\n'
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(write(tmp_path, text)))
    rules = load_settings().rules
    assert rules.attempts.max_attempts == 4
    assert rules.churn.min_first_window == timedelta(minutes=30)


def test_environment_wins_over_the_rules_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(write(tmp_path, RULES_TOML)))
    monkeypatch.setenv("CALLCENTER_RULES__ATTEMPTS__MAX_ATTEMPTS", "7")
    rules = load_settings().rules
    assert rules.attempts.max_attempts == 7  # from the environment
    assert rules.attempts.retry_interval == 3 * H  # the file's other values stay
    assert rules.default_timezone == "America/New_York"
    assert len(rules.windows) == 2


@pytest.mark.parametrize(
    ("text", "setting", "words"),
    [
        ('[[rules.windows]]\nstart = "10:00"\nend = "09:00"\n', "rules.windows", "before"),
        (
            '[[rules.windows]]\nstart = "08:00"\nend = "12:00"\n'
            '[[rules.windows]]\nstart = "09:00"\nend = "10:00"\n',
            "rules.windows",
            "overlap",
        ),
        ("[rules.attempts]\nmax_attempts = 0\n", "rules.attempts.max_attempts", "greater"),
        ('[rules.types.complaint]\ntarget = "P3D"\n', "rules.types.complaint", "hard limit"),
        ('[rules]\ndefault_timezone = "Nowhere"\n', "rules.default_timezone", "Nowhere"),
        ("[rules.attemps]\nmax_attempts = 2\n", "rules.attemps", "xtra"),  # a typo
    ],
)
def test_a_bad_rules_file_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, setting: str, words: str
) -> None:
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(write(tmp_path, text)))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert setting in str(caught.value)
    assert words in str(caught.value)


def test_a_missing_rules_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(missing))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "rules_file" in str(caught.value)
    assert str(missing) in str(caught.value)


def test_a_rules_file_that_is_not_toml_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, "[rules\nmax_attempts = 3\n")
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(path))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "rules_file" in str(caught.value)
    assert "not valid TOML" in str(caught.value)


# --- secrets (production never runs on a default or a placeholder) --------------------


def test_production_refuses_the_development_database() -> None:
    with pytest.raises(SettingsError, match="database_url: production needs"):
        load_settings(environment="production")


@pytest.mark.parametrize("password", ["change-me", "password", "xxxxx", "…"])
def test_production_refuses_a_placeholder_password(password: str) -> None:
    url = f"postgresql+psycopg://callcenter:{password}@db:5432/callcenter"
    with pytest.raises(SettingsError, match="placeholder"):
        load_settings(environment="production", database_url=url)


def test_production_accepts_a_real_password_and_development_anything() -> None:
    url = "postgresql+psycopg://callcenter:Vq7-kd93_xLm@db:5432/callcenter"
    assert load_settings(environment="production", database_url=url).database_url == url
    assert load_settings(database_url="postgresql+psycopg://u:change-me@db/x").database_url


def test_secrets_come_from_files_in_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://callcenter:from-a-file-9f2@db:5432/callcenter"
    (tmp_path / "CALLCENTER_DATABASE_URL").write_text(url + "\n")
    monkeypatch.setenv("CALLCENTER_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("CALLCENTER_DATABASE_URL", raising=False)
    settings = load_settings(environment="production")
    assert settings.database_url == url


def test_a_missing_secrets_dir_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_SECRETS_DIR", "/nonexistent/secrets")
    with pytest.raises(SettingsError, match="CALLCENTER_SECRETS_DIR"):
        load_settings()


def test_a_secret_file_sets_a_nested_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "CALLCENTER_TELEPHONY__AUTH_TOKEN").write_text("from-a-file-token")
    monkeypatch.setenv("CALLCENTER_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("CALLCENTER_TELEPHONY__ACCOUNT_SID", "AC0123")
    monkeypatch.setenv("CALLCENTER_TELEPHONY__FROM_NUMBER", "+865910000000")
    token = load_settings().telephony.auth_token
    assert token is not None and token.get_secret_value() == "from-a-file-token"
