"""Sign-in rules: when repeated wrong passwords lock an account, and for how long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LoginState:
    failed_logins: int
    locked_until: datetime | None


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and now < locked_until


def after_failure(
    state: LoginState, *, now: datetime, max_failures: int, lockout: timedelta
) -> LoginState:
    """One more wrong password. The `max_failures`-th in a row locks the account for
    `lockout`; the count starts again after that, so each later run of failures locks anew."""
    failures = state.failed_logins + 1
    if failures >= max_failures:
        return LoginState(failed_logins=0, locked_until=now + lockout)
    return LoginState(failed_logins=failures, locked_until=state.locked_until)


def session_alive(
    *,
    created_at: datetime,
    last_seen_at: datetime,
    ended_at: datetime | None,
    now: datetime,
    idle_timeout: timedelta,
    max_age: timedelta,
) -> bool:
    """A console session lives until signed out, idle too long, or too old."""
    return ended_at is None and now < last_seen_at + idle_timeout and now < created_at + max_age
