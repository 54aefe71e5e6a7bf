"""The audit trail page: managers and admins search who saw or changed what, when and from
where (rule SV-4). Read-only: nothing here edits or removes an audit row."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.console.web import ConsoleSession, page_for, render
from api.deps import MANAGERS, SettingsDep, UowDep
from callcenter.audit.rules import AuditAction, SubjectType
from callcenter.audit.schemas import AuditFilters
from callcenter.audit.service import search

router = APIRouter(prefix="/console/audit", include_in_schema=False)

AuditPageSession = Annotated[ConsoleSession, Depends(page_for(*MANAGERS))]
PAGE_SIZE = 50


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _start_of(day: date | None, zone: ZoneInfo) -> datetime | None:
    return None if day is None else datetime.combine(day, time(0), tzinfo=zone)


def _page_number(raw: str | None) -> int:
    return max(1, int(raw)) if raw and raw.isdigit() else 1


@router.get("")
def audit_page(
    request: Request, uow: UowDep, settings: SettingsDep, session: AuditPageSession
) -> Response:
    params = request.query_params
    zone = ZoneInfo(settings.rules.default_timezone)
    # The days are the centre's; "to" includes its whole day.
    first, last = _day(params.get("start")), _day(params.get("end"))
    action = params.get("action") or None
    subject_type = params.get("subject_type") or None
    filters = AuditFilters(
        actor=(params.get("actor") or "").strip()[:64] or None,
        action=[AuditAction(action)] if action in set(AuditAction) else [],
        subject_type=SubjectType(subject_type) if subject_type in set(SubjectType) else None,
        subject_id=(params.get("subject_id") or "").strip()[:64] or None,
        since=_start_of(first, zone),
        until=_start_of(last + timedelta(days=1), zone) if last else None,
        address=(params.get("address") or "").strip()[:64] or None,
    )
    number = _page_number(params.get("page"))
    page = search(uow, filters=filters, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    asked = {
        "actor": filters.actor,
        "action": action if filters.action else None,
        "subject_type": subject_type if filters.subject_type else None,
        "subject_id": filters.subject_id,
        "start": first.isoformat() if first else None,
        "end": last.isoformat() if last else None,
        "address": filters.address,
    }
    return render(
        request,
        "audit.html",
        {
            "page": page,
            "page_number": number,
            "page_size": PAGE_SIZE,
            "asked": asked,
            "query": urlencode({k: v for k, v in asked.items() if v}),
            "actions": list(AuditAction),
            "subject_types": list(SubjectType),
        },
        session=session,
    )
