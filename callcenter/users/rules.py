"""Sign-in rules: when repeated wrong passwords lock an account, and for how long; when
refused sign-ins from one address stop that address trying."""

from __future__ import annotations

from collections.abc import Iterable
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


def address_blocked_until(
    failures: Iterable[datetime], *, now: datetime, limit: int, window: timedelta
) -> datetime | None:
    """When an address may try to sign in again, if `limit` of its refused sign-ins fall in
    the sliding `window` before `now`; None while it may try.

    Against password spraying (a few passwords tried on many accounts, which the lock-out
    per account never sees): the block lasts until the oldest of the last `limit` failures
    leaves the window, so an address gets at most `limit` password checks per `window`."""
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) < limit:
        return None
    return recent[-limit] + window


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
