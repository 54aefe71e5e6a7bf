"""The audit trail, searched by managers and admins (rule SV-4). There is no endpoint that
changes or removes an audit row: the trail is append-only."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AUTH_ERRORS, Managers, UowDep
from callcenter.audit.rules import AuditAction, SubjectType
from callcenter.audit.schemas import AuditFilters, AuditPage
from callcenter.audit.service import search
from callcenter.timeformats import IsoAwareDatetime

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", summary="Search the audit trail, the newest first", responses=AUTH_ERRORS)
def get_audit(
    uow: UowDep,
    _user: Managers,
    actor: Annotated[str | None, Query(max_length=64, description="A username.")] = None,
    action: Annotated[list[AuditAction], Query()] = [],  # noqa: B006
    subject_type: Annotated[SubjectType | None, Query()] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[
        IsoAwareDatetime | None, Query(alias="from", description="From this instant (inclusive).")
    ] = None,
    to: Annotated[
        IsoAwareDatetime | None, Query(description="Up to this instant (exclusive).")
    ] = None,
    address: Annotated[str | None, Query(max_length=64, description="The client's IP.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    """Who viewed a customer's full phone number, recorded an outcome, an answer or a
    correction, reassigned a callback, released a lease, handed over a work order, recorded a
    retention step (with its offer), and each configuration that differed from the one
    before: when, from which address, about what."""
    filters = AuditFilters(
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        since=from_,
        until=to,
        address=address,
    )
    return search(uow, filters=filters, limit=limit, offset=offset)
