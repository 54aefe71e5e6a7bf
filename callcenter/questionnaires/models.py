"""Frozen script versions and the answers recorded against them."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.config import CallbackType, Channel
from callcenter.db import UTCDateTime, enum_type


class ScriptVersion(SQLModel, table=True):
    """One version of a call script, frozen: a callback keeps the version it was created with,
    so its questions and past answers render exactly as asked."""

    __tablename__ = "script_versions"
    __table_args__ = (
        sa.UniqueConstraint("script_id", "version", name="uq_script_versions_version"),
        sa.UniqueConstraint("script_id", "fingerprint", name="uq_script_versions_fingerprint"),
    )

    id: int | None = Field(default=None, primary_key=True)
    script_id: str = Field(max_length=64)
    callback_type: CallbackType = Field(sa_type=enum_type(CallbackType), index=True)
    version: int  # 1, 2, … per script, a new one whenever the script's content changes
    fingerprint: str = Field(max_length=64)
    definition: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Answer(SQLModel, table=True):
    """One answer to one question. Inserted, never updated (rule SV-4): a correction is a new
    row pointing at the answer it corrects, with who and why."""

    __tablename__ = "answers"

    id: int | None = Field(default=None, primary_key=True)
    callback_id: int = Field(foreign_key="callbacks.id", index=True)
    script_version_id: int = Field(foreign_key="script_versions.id")
    claim_id: str | None = Field(default=None, max_length=36)
    question_id: str = Field(max_length=64)
    value: Any = Field(sa_type=sa.JSON)  # bool, int, str, or {"choice", "text"}
    channel: Channel = Field(sa_type=enum_type(Channel))
    recorded_by_id: int | None = Field(default=None, foreign_key="users.id")
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    corrects_id: int | None = Field(default=None, foreign_key="answers.id", index=True)
    reason: str | None = Field(default=None, max_length=500)
