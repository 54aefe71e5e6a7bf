"""Working-day calendar warnings for supervisors: days the PRC calendar does not know yet."""

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import AUTH_ERRORS, NowDep, Overseer, SettingsDep
from callcenter.workdays import WorkdayCalendar, calendar_warnings

router = APIRouter(prefix="/api/v1", tags=["calendar"])


class CalendarWarningRead(BaseModel):
    first: date
    last: date
    days: int
    zh: str
    en: str


@router.get(
    "/calendar/warnings",
    summary="Days ahead that the working-day calendar cannot answer",
    responses=AUTH_ERRORS,
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
