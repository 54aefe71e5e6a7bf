"""Users of the product and their API tokens (stored hashed)."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.db import UTCDateTime, enum_type


class UserRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    RETENTION_LEAD = "retention_lead"
    MANAGER = "manager"
    ADMIN = "admin"
    SYSTEM = "system"  # the order system and other integrations


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=100)
    employee_number: str | None = Field(default=None, max_length=32)
    team: str | None = Field(default=None, max_length=64)
    role: UserRole = Field(sa_type=enum_type(UserRole))
    password_hash: str | None = Field(default=None, max_length=255)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # Console sign-in: wrong passwords in a row, and until when the account is locked.
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in console session. The browser holds the random token; only its hash is
    stored, so a copy of the database opens no session."""

    __tablename__ = "web_sessions"

    token_hash: str = Field(max_length=64, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    address: str | None = Field(default=None, max_length=64)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginFailure(SQLModel, table=True):
    """A refused console sign-in and the client address it came from. The limit per address
    counts these rows, so that it holds across every API process; rows older than the
    limit's window are deleted as new ones are written."""

    __tablename__ = "login_failures"
    __table_args__ = (sa.Index("ix_login_failures_address_at", "address", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
