"""The capacity forecast for supervisors, and the roster it rests on (rule CB-5)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import AUTH_ERRORS, NowDep, Overseer, SettingsDep, UowDep, require_roles
from callcenter.forecast.schemas import ForecastRead, RosterRead, RosterSet
from callcenter.forecast.service import forecast, list_roster, set_roster
from callcenter.timeformats import IsoDate
from callcenter.users.models import User, UserRole

router = APIRouter(prefix="/api/v1", tags=["forecast"])

RosterEditor = Annotated[User, Depends(require_roles(UserRole.SUPERVISOR, UserRole.ADMIN))]


@router.get(
    "/forecast",
    summary="Who misses a deadline today and tomorrow if nothing changes",
    responses=AUTH_ERRORS,
)
def get_forecast(
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    _user: Overseer,
    limit: Annotated[
        int, Query(ge=0, le=100_000, description="How many predicted misses to list.")
    ] = 500,
) -> ForecastRead:
    """Simulates the queue (earliest hard limit first) over the calling windows of the rest of
    today and tomorrow with the agents rostered and the measured average handling time; lists
    the callbacks that would miss their target or hard limit, and the extra agent-hours each
    window would need."""
    return forecast(uow, now=now, config=settings.rules, miss_limit=limit)


@router.get("/roster", summary="The roster between two days", responses=AUTH_ERRORS)
def get_roster(
    uow: UowDep,
    _user: Overseer,
    start: Annotated[IsoDate, Query(description="First day, included.")],
    end: Annotated[IsoDate, Query(description="Last day, included (at most 366 days).")],
) -> list[RosterRead]:
    return list_roster(uow, start=start, end=end)


@router.put(
    "/roster",
    summary="Set the agents of one calling window of one day",
    responses={
        **AUTH_ERRORS,
        422: {"description": "Not a window's start, or agents out of range."},
    },
)
def put_roster(
    body: RosterSet, uow: UowDep, now: NowDep, settings: SettingsDep, user: RosterEditor
) -> RosterRead:
    """Inserts or replaces the row of that day, window and team."""
    return set_roster(
        uow,
        day=body.day,
        window_start=body.window_start,
        agents=body.agents,
        team=body.team,
        user=user,
        now=now,
        config=settings.rules,
    )
