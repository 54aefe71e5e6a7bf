"""Writing and searching the audit trail (rule SV-4).

A service records an action with `record(session, ...)` in its own transaction; the rows it
recorded are inserted with one INSERT just before that transaction commits, so an action
that rolls back leaves no audit row and an audit row never exists without its action. The
product has no way to change or remove a row (see `callcenter.audit.models`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col

from callcenter.audit.models import AUDIT_TABLE, AuditEvent
from callcenter.audit.rules import (
    Actor,
    AuditAction,
    SubjectType,
    config_changes,
    fingerprint,
    flatten,
)
from callcenter.audit.schemas import AuditEventRead, AuditFilters, AuditPage
from callcenter.config import Settings
from callcenter.db import UnitOfWork

_PENDING = "audit_pending"


def record(
    session: Session,
    *,
    actor: Actor,
    action: AuditAction,
    subject_type: SubjectType,
    subject_id: object,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Record `action` in the caller's transaction; written when it commits, with it."""
    # Bound to the transaction (begun now if the action has not touched the database yet),
    # so that its rollback forgets the row.
    session.connection()
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    pending.append(
        audit_row(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            now=now,
            detail=detail,
        )
    )


def audit_row(
    *,
    actor: Actor,
    action: AuditAction,
    subject_type: SubjectType,
    subject_id: object,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit table's row for an action: what `record` writes, and what the PostgreSQL hot
    path (`callcenter.callbacks.hotpath`) inserts in its own statements."""
    return {
        "at": now,
        "actor_user_id": actor.user_id,
        "actor_username": actor.username[:64],
        "actor_role": actor.role,
        "address": actor.address[:64] if actor.address else None,
        "action": action,
        "subject_type": subject_type,
        "subject_id": str(subject_id)[:64],
        "detail": dict(detail or {}),
    }


@event.listens_for(OrmSession, "before_commit")
def _write_pending(session: OrmSession) -> None:
    # Inside the transaction that commits: the rows stand or fall with the action.
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    if len(rows) == 1:
        session.execute(sa.insert(AUDIT_TABLE), rows[0])
    else:  # one statement for all of them, not one round trip each
        session.execute(sa.insert(AUDIT_TABLE).values(rows))


@event.listens_for(OrmSession, "after_soft_rollback")
def _forget_pending(session: OrmSession, previous_transaction: SessionTransaction) -> None:
    # The actions were rolled back: so are their audit rows (also when nothing had reached
    # the database yet). A savepoint's rollback keeps them: nothing audits inside one.
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)


# ---------------------------------------------------------------------------------------
# Searching
# ---------------------------------------------------------------------------------------


def _read(row: AuditEvent) -> AuditEventRead:
    assert row.id is not None
    return AuditEventRead(
        id=row.id,
        at=row.at,
        actor_user_id=row.actor_user_id,
        actor=row.actor_username,
        role=str(row.actor_role),
        address=row.address,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        detail=row.detail or {},
    )


def search(uow: UnitOfWork, *, filters: AuditFilters, limit: int, offset: int) -> AuditPage:
    """Audit rows matching every given filter, the newest first."""
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.actor:
        conditions.append(col(AuditEvent.actor_username) == filters.actor)
    if filters.action:
        conditions.append(col(AuditEvent.action).in_(filters.action))
    if filters.subject_type is not None:
        conditions.append(col(AuditEvent.subject_type) == filters.subject_type)
    if filters.subject_id:
        conditions.append(col(AuditEvent.subject_id) == filters.subject_id)
    if filters.since is not None:
        conditions.append(col(AuditEvent.at) >= filters.since)
    if filters.until is not None:
        conditions.append(col(AuditEvent.at) < filters.until)
    if filters.address:
        conditions.append(col(AuditEvent.address) == filters.address)
    with uow:
        session = uow.session
        total = session.execute(
            sa.select(sa.func.count()).select_from(AuditEvent).where(*conditions)
        ).scalar_one()
        rows = session.execute(
            sa.select(AuditEvent)
            .where(*conditions)
            .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
            .limit(limit)
            .offset(offset)
        ).scalars()
        items = [_read(row) for row in rows]
    return AuditPage(items=items, total=total, limit=limit, offset=offset)


# ---------------------------------------------------------------------------------------
# Configuration changes
# ---------------------------------------------------------------------------------------

# Any constant: processes starting together take turns comparing (PostgreSQL).
_CONFIG_LOCK = 4_107_050


def effective_configuration(settings: Settings) -> dict[str, Any]:
    """What the operator configures for the product's behaviour, as dotted keys: the rules,
    the console's policy and the IVR's telephony. Never a secret (the Twilio account and
    token, the database URL) and nothing that differs by process (log level, scheduler on)."""
    return flatten(
        {
            "rules": settings.rules.model_dump(mode="json"),
            "console": settings.console.model_dump(mode="json"),
            "telephony": settings.telephony.model_dump(
                mode="json", exclude={"account_sid", "auth_token"}
            ),
        }
    )


def record_configuration(
    uow: UnitOfWork, *, settings: Settings, actor: Actor, now: datetime
) -> bool:
    """At start-up: compare the effective configuration with the one the last
    `config_changed` row recorded and, if it differs (or none was recorded), append one
    with the keys that changed, old and new. True when a row was appended."""
    flat = effective_configuration(settings)
    digest = fingerprint(flat)
    with uow:
        session = uow.session
        if uow.dialect == "postgresql":
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(_CONFIG_LOCK)))
        last = session.execute(
            sa.select(col(AuditEvent.detail))
            .where(col(AuditEvent.action) == AuditAction.CONFIG_CHANGED)
            .order_by(col(AuditEvent.id).desc())  # the last appended, whatever its clock said
            .limit(1)
        ).scalar_one_or_none()
        if last is not None and last.get("fingerprint") == digest:
            return False
        before = last.get("effective") if last is not None else None
        record(
            session,
            actor=actor,
            action=AuditAction.CONFIG_CHANGED,
            subject_type=SubjectType.CONFIGURATION,
            subject_id=digest[:16],
            now=now,
            detail={
                "fingerprint": digest,
                # The first record has nothing to compare with: its whole content is the news.
                "first": before is None,
                "changes": config_changes(before, flat) if before is not None else {},
                "effective": flat,
            },
        )
        uow.commit()
    return True
