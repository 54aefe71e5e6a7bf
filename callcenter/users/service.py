"""Users, passwords (argon2) and API tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlmodel import col

from callcenter.db import UnitOfWork
from callcenter.errors import Conflict, InvalidField, NotFound
from callcenter.users.models import ApiToken, User, UserRole

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
