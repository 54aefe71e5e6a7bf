"""Working-day calendar warnings for supervisors: days the PRC calendar does not know yet."""

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.deps import NowDep, SettingsDep, require_roles
from callcenter.users.models import User, UserRole
from callcenter.workdays import WorkdayCalendar, calendar_warnings

router = APIRouter(prefix="/api/v1", tags=["calendar"])

Overseer = Annotated[
    User,
    Depends(
        require_roles(
            UserRole.SUPERVISOR, UserRole.RETENTION_LEAD, UserRole.MANAGER, UserRole.ADMIN
        )
    ),
]


class CalendarWarningRead(BaseModel):
    first: date
    last: date
    days: int
    zh: str
    en: str


_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API token, or a wrong one."},
    403: {"description": "Your role may not do this."},
}


@router.get(
    "/calendar/warnings",
    summary="Days ahead that the working-day calendar cannot answer",
    responses=_AUTH,
)
def get_calendar_warnings(
    now: NowDep,
    settings: SettingsDep,
    _user: Overseer,
    horizon_days: Annotated[int, Query(ge=1, le=366)] = 60,
) -> list[CalendarWarningRead]:
    """Declare those days (`[rules.workdays]` declared_working_days / declared_holidays) or
    upgrade the calendar library; until then, rules counting working days cannot use them."""
    today = now.astimezone(ZoneInfo(settings.rules.default_timezone)).date()
    warnings = calendar_warnings(
        WorkdayCalendar(settings.rules.workdays), today=today, horizon_days=horizon_days
    )
    return [
        CalendarWarningRead(first=w.first, last=w.last, days=w.days, zh=w.zh, en=w.en)
        for w in warnings
    ]
