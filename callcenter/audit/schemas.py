"""What the audit search takes and gives (the REST API and the console)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from callcenter.audit.rules import AuditAction, SubjectType


class AuditEventRead(BaseModel):
    id: int
    at: datetime
    actor_user_id: int | None
    actor: str = Field(description="The username at the time of the action.")
    role: str
    address: str | None = Field(description="The client's address; none for the IVR and jobs.")
    action: AuditAction
    subject_type: SubjectType
    subject_id: str
    detail: dict[str, Any]


class AuditFilters(BaseModel):
    """Every filter is optional; given ones must all hold. `to` is exclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str | None = Field(default=None, max_length=64)
    action: list[AuditAction] = Field(default_factory=list)
    subject_type: SubjectType | None = None
    subject_id: str | None = Field(default=None, max_length=64)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    address: str | None = Field(default=None, max_length=64)


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    total: int
    limit: int
    offset: int
