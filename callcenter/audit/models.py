"""The audit trail: one row per audited action, appended and never changed (rule SV-4).

The table refuses UPDATE, DELETE and TRUNCATE by triggers on both backends (the same SQL as
migration 0007, attached here so that databases made from the models have them too); in
production the application's role is also granted no more than SELECT and INSERT on it
(`callcenter db grant-app`)."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.audit.rules import AuditAction, SubjectType
from callcenter.db import UTCDateTime, enum_type
from callcenter.users.models import UserRole


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_at", "at"),
        sa.Index("ix_audit_events_actor_at", "actor_username", "at"),
        sa.Index("ix_audit_events_action_at", "action", "at"),
        sa.Index("ix_audit_events_subject", "subject_type", "subject_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    # The user, and their name and role as they were then (a later rename changes nothing).
    actor_user_id: int | None = Field(
        default=None,
        sa_column_args=[sa.ForeignKey("users.id", name="fk_audit_events_actor_user_id_users")],
    )
    actor_username: str = Field(max_length=64)
    actor_role: UserRole = Field(sa_type=enum_type(UserRole))
    # The client's address as the server saw it (behind a trusted proxy: the forwarded one);
    # None for the IVR, jobs and the command line.
    address: str | None = Field(default=None, max_length=64)
    action: AuditAction = Field(sa_type=enum_type(AuditAction))
    subject_type: SubjectType = Field(sa_type=enum_type(SubjectType))
    subject_id: str = Field(max_length=64)
    # What else identifies the action (ids, outcome, changed keys); never a phone number.
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


AUDIT_TABLE: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]

APPEND_ONLY_MESSAGE = "audit_events is append-only (rule SV-4)"

# PostgreSQL: one function raises for every kind of change, by row and for TRUNCATE.
PG_APPEND_ONLY = (
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    f"RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}: % refused', TG_OP "
    "USING ERRCODE = 'insufficient_privilege'; "
    "END $$",
    "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)
SQLITE_APPEND_ONLY = tuple(
    f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: {verb} refused'); END"
    for verb in ("UPDATE", "DELETE")
)

for _dialect, _statements in (("postgresql", PG_APPEND_ONLY), ("sqlite", SQLITE_APPEND_ONLY)):
    for _statement in _statements:
        # DDL formats its text with `%`: a literal one is doubled.
        _ddl = sa.DDL(_statement.replace("%", "%%")).execute_if(  # type: ignore[no-untyped-call]
            dialect=_dialect
        )
        sa.event.listen(AUDIT_TABLE, "after_create", _ddl)
