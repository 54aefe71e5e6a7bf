"""Users, passwords (argon2) and API tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlmodel import col

from callcenter.config import ConsoleSettings
from callcenter.db import UnitOfWork
from callcenter.errors import Conflict, InvalidField, NotFound, PermissionDenied
from callcenter.users.models import ApiToken, LoginFailure, User, UserRole, WebSession
from callcenter.users.rules import (
    LoginState,
    address_blocked_until,
    after_failure,
    is_locked,
    session_alive,
)

_HASHER = PasswordHasher()
TOKEN_PREFIX = "cc_"
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def hash_token(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, and lets every request look one up.
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    uow: UnitOfWork,
    *,
    username: str,
    role: UserRole,
    now: datetime,
    password: str | None = None,
    display_name: str | None = None,
    employee_number: str | None = None,
) -> User:
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise InvalidField("username", "1 to 64 characters, no spaces")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidField("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    with uow:
        session = uow.session
        if session.execute(sa.select(col(User.id)).where(col(User.username) == username)).first():
            raise Conflict(f"user {username!r} already exists")
        user = User(
            username=username,
            display_name=display_name or username,
            employee_number=employee_number,
            role=role,
            password_hash=hash_password(password) if password else None,
            created_at=now,
        )
        session.add(user)
        session.flush()
        session.refresh(user)
        uow.commit()
        return user


def create_token(uow: UnitOfWork, *, username: str, now: datetime) -> str:
    """A new API token for the user; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with uow:
        session = uow.session
        user = session.execute(
            sa.select(User).where(col(User.username) == username)
        ).scalar_one_or_none()
        if user is None:
            raise NotFound(f"no user {username!r}")
        if not user.is_active:
            raise Conflict(f"user {username!r} is not active")
        assert user.id is not None
        session.add(
            ApiToken(
                user_id=user.id,
                token_hash=hash_token(token),
                prefix=token[:10],
                created_at=now,
            )
        )
        uow.commit()
    return token


def user_for_token(uow: UnitOfWork, *, token: str) -> User | None:
    """The active user a valid, unrevoked token belongs to, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with uow:
        stmt = (
            sa.select(User)
            .join(ApiToken, col(ApiToken.user_id) == col(User.id))
            .where(
                col(ApiToken.token_hash) == hash_token(token),
                col(ApiToken.revoked_at).is_(None),
                col(User.is_active).is_(True),
            )
        )
        return uow.session.execute(stmt).scalar_one_or_none()


# ---------------------------------------------------------------------------------------
# Console sign-in
# ---------------------------------------------------------------------------------------

# A hash to check against when the username is unknown, so that the answer takes as long
# as for a known user and does not tell which usernames exist.
_DUMMY_HASH = _HASHER.hash("not a password of anyone's")
# A session's last_seen_at is written at most this often: not a write per request.
_TOUCH_EVERY = timedelta(minutes=1)


class LoginRefused(PermissionDenied):
    """Wrong username or password; deliberately does not say which."""


class AccountLocked(PermissionDenied):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many wrong passwords: the account is locked until {until:%H:%M} UTC")
        self.until = until


class AddressThrottled(PermissionDenied):
    """Too many refused sign-ins from this client address: refused unchecked until `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"too many failed sign-ins from this address: try again after {until:%H:%M} UTC"
        )
        self.until = until


# The PostgreSQL advisory lock that makes the sign-ins of one address wait for each other
# (this number with the hash of the address), so that parallel requests cannot all pass the
# count before any failure is written.
ADDRESS_LOCK = 10050_0002
# Old failures deleted per refused sign-in: enough to keep up, never a long delete.
_PRUNE_BATCH = 100


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # for the browser's cookie; only its hash is stored
    csrf_token: str


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches the stored argon2 hash (False for a user without one)."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, InvalidHashError):
        return False


def sign_in(
    uow: UnitOfWork,
    *,
    username: str,
    password: str,
    now: datetime,
    address: str | None,
    policy: ConsoleSettings,
) -> SignedIn:
    """Check the password and open a console session. Raises AddressThrottled (too many
    refused sign-ins from `address`, checked before anything else), LoginRefused (wrong
    username or password, or an inactive user) or AccountLocked (too many wrong passwords in
    a row). Every refusal but AddressThrottled counts against the address."""
    address = address[:64] if address else None  # as stored with the session
    with uow:
        session = uow.session
        if address is not None:
            _check_address(uow, address=address, now=now, policy=policy)
        user = session.execute(
            sa.select(User).where(col(User.username) == username.strip()).with_for_update()
        ).scalar_one_or_none()
        if user is None or user.role is UserRole.SYSTEM:
            verify_password(None, password)  # same time as a known user
            _refused(uow, address=address, now=now, policy=policy)
            raise LoginRefused("wrong username or password")
        if is_locked(user.locked_until, now):
            assert user.locked_until is not None
            _refused(uow, address=address, now=now, policy=policy)
            raise AccountLocked(user.locked_until)
        if not verify_password(user.password_hash, password) or not user.is_active:
            state = after_failure(
                LoginState(user.failed_logins, user.locked_until),
                now=now,
                max_failures=policy.max_failed_logins,
                lockout=policy.lockout,
            )
            user.failed_logins = state.failed_logins
            user.locked_until = state.locked_until
            _refused(uow, address=address, now=now, policy=policy)
            if is_locked(state.locked_until, now):
                assert state.locked_until is not None
                raise AccountLocked(state.locked_until)
            raise LoginRefused("wrong username or password")
        # A success does not clear the address's failures: one valid account of its own
        # would otherwise let a sprayer reset its count between guesses.
        user.failed_logins = 0
        user.locked_until = None
        token = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        assert user.id is not None
        session.add(
            WebSession(
                token_hash=hash_token(token),
                user_id=user.id,
                csrf_token=csrf_token,
                created_at=now,
                last_seen_at=now,
                expires_at=now + policy.max_age,
                address=address,
            )
        )
        uow.commit()
        return SignedIn(user=user, token=token, csrf_token=csrf_token)


def _check_address(
    uow: UnitOfWork, *, address: str, now: datetime, policy: ConsoleSettings
) -> None:
    """Raise AddressThrottled when `address` has used up its refused sign-ins. On PostgreSQL
    the address's sign-ins queue behind one another from here to their commit (SQLite's
    transactions are serialised already)."""
    session = uow.session
    if uow.dialect == "postgresql":
        session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(:address))"),
            {"key": ADDRESS_LOCK, "address": address},
        )
    failures = session.execute(
        sa.select(col(LoginFailure.at))
        .where(
            col(LoginFailure.address) == address,
            col(LoginFailure.at) > now - policy.address_window,
        )
        .order_by(col(LoginFailure.at).desc())
        .limit(policy.max_failed_logins_per_address)
    ).scalars()
    until = address_blocked_until(
        failures,
        now=now,
        limit=policy.max_failed_logins_per_address,
        window=policy.address_window,
    )
    if until is not None:
        raise AddressThrottled(until)


def _refused(
    uow: UnitOfWork, *, address: str | None, now: datetime, policy: ConsoleSettings
) -> None:
    """Count a refused sign-in against its address, drop some failures too old to count,
    and commit (with whatever the refusal changed on the user)."""
    session = uow.session
    if address is not None:
        session.add(LoginFailure(address=address, at=now))
        # Another process may be deleting the same rows: skip those rather than wait.
        old = (
            sa.select(col(LoginFailure.id))
            .where(col(LoginFailure.at) <= now - policy.address_window)
            .limit(_PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        session.execute(
            sa.delete(LoginFailure).where(col(LoginFailure.id).in_(old)),
            execution_options={"synchronize_session": False},
        )
    uow.commit()


def session_user(
    uow: UnitOfWork, *, token: str, now: datetime, policy: ConsoleSettings
) -> tuple[User, str] | None:
    """The active user of a live console session and the session's CSRF token, else None."""
    with uow:
        session = uow.session
        row = session.execute(
            sa.select(WebSession, User)
            .join(User, col(User.id) == col(WebSession.user_id))
            .where(col(WebSession.token_hash) == hash_token(token))
        ).first()
        if row is None:
            return None
        web, user = row
        alive = session_alive(
            created_at=web.created_at,
            last_seen_at=web.last_seen_at,
            ended_at=web.ended_at,
            now=now,
            idle_timeout=policy.idle_timeout,
            max_age=policy.max_age,
        )
        if not alive or not user.is_active:
            return None
        if now - web.last_seen_at >= _TOUCH_EVERY:
            web.last_seen_at = now
            uow.commit()
        return user, web.csrf_token


def sign_out(uow: UnitOfWork, *, token: str, now: datetime) -> None:
    """End the session; its cookie opens nothing from now on."""
    with uow:
        uow.session.execute(
            sa.update(WebSession)
            .where(
                col(WebSession.token_hash) == hash_token(token), col(WebSession.ended_at).is_(None)
            )
            .values(ended_at=now)
        )
        uow.commit()
