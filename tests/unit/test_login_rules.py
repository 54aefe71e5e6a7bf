"""Sign-in rules, pure: the lock-out of an account after wrong passwords in a row, and the
limit of refused sign-ins per client address in a sliding window (password spraying)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callcenter.users.rules import LoginState, address_blocked_until, after_failure, is_locked

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def minutes_ago(*values: float) -> list[datetime]:
    return [NOW - timedelta(minutes=value) for value in values]


def test_the_fifth_wrong_password_in_a_row_locks_the_account() -> None:
    state = LoginState(failed_logins=0, locked_until=None)
    for _ in range(4):
        state = after_failure(state, now=NOW, max_failures=5, lockout=WINDOW)
        assert not is_locked(state.locked_until, NOW)
    state = after_failure(state, now=NOW, max_failures=5, lockout=WINDOW)
    assert state == LoginState(failed_logins=0, locked_until=NOW + WINDOW)
    assert is_locked(state.locked_until, NOW + WINDOW - timedelta(seconds=1))
    assert not is_locked(state.locked_until, NOW + WINDOW)


def test_an_address_may_try_while_it_has_fewer_failures_than_the_limit() -> None:
    assert address_blocked_until([], now=NOW, limit=3, window=WINDOW) is None
    assert address_blocked_until(minutes_ago(1, 2), now=NOW, limit=3, window=WINDOW) is None


def test_the_limit_reached_blocks_until_the_oldest_counted_failure_leaves_the_window() -> None:
    failures = minutes_ago(10, 1, 5)  # in any order
    assert address_blocked_until(failures, now=NOW, limit=3, window=WINDOW) == (
        NOW - timedelta(minutes=10) + WINDOW
    )


def test_failures_older_than_the_window_do_not_count() -> None:
    # Exactly one window ago is out: the window is (now - window, now].
    failures = minutes_ago(15, 20, 1, 2)
    assert address_blocked_until(failures, now=NOW, limit=3, window=WINDOW) is None


def test_more_failures_than_the_limit_block_until_enough_of_them_have_aged() -> None:
    # Five in the window, limit three: free again when only two remain, after the 3rd newest.
    failures = minutes_ago(14, 12, 8, 4, 1)
    assert address_blocked_until(failures, now=NOW, limit=3, window=WINDOW) == (
        NOW - timedelta(minutes=8) + WINDOW
    )


@given(
    ages=st.lists(st.integers(min_value=0, max_value=40 * 60), max_size=40),
    limit=st.integers(min_value=1, max_value=25),
)
def test_blocked_exactly_while_the_window_holds_the_limit(ages: list[int], limit: int) -> None:
    failures = [NOW - timedelta(seconds=age) for age in ages]
    until = address_blocked_until(failures, now=NOW, limit=limit, window=WINDOW)
    in_window = [at for at in failures if at > NOW - WINDOW]
    assert (until is not None) == (len(in_window) >= limit)
    if until is not None:
        assert until > NOW
        # At `until` the window holds one failure fewer than the limit, and not before.
        assert address_blocked_until(failures, now=until, limit=limit, window=WINDOW) is None
        before = until - timedelta(seconds=1)
        assert address_blocked_until(failures, now=before, limit=limit, window=WINDOW)
