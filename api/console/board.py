"""The supervisor's board: the queue at a glance, and a hand on callbacks and leases."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.console.desk import FormFields
from api.console.web import (
    BOARD_ACTORS,
    BOARD_READERS,
    ConsoleSession,
    console_actor,
    form_for,
    gettext,
    page_for,
    render,
)
from api.deps import NowDep, SettingsDep, UowDep
from callcenter.callbacks.desk import board, reassign, release_lease, urgency
from callcenter.callbacks.rules import CallbackStatus
from callcenter.config import CallbackType, Settings
from callcenter.errors import Conflict, InvalidField, NotFound
from callcenter.workdays import WorkdayCalendar, calendar_warnings
from callcenter.workorders.service import hand_over

router = APIRouter(prefix="/console/board", include_in_schema=False)

BoardPage = Annotated[ConsoleSession, Depends(page_for(*BOARD_READERS))]
BoardForm = Annotated[ConsoleSession, Depends(form_for(*BOARD_ACTORS))]


def _board(
    request: Request,
    session: ConsoleSession,
    uow: UowDep,
    now: NowDep,
    settings: Settings,
    template: str,
    *,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    view = board(uow, now=now, config=settings.rules)
    zone = ZoneInfo(settings.rules.default_timezone)
    warnings = calendar_warnings(
        WorkdayCalendar(settings.rules.workdays), today=now.astimezone(zone).date()
    )
    listed = [*view.urgent, *view.failed, *view.leases, *(cb for _, cb in view.moved)]
    return render(
        request,
        template,
        {
            "view": view,
            "now": now,
            "types": list(CallbackType),
            "statuses": [CallbackStatus.PENDING, CallbackStatus.CLAIMED],
            "urgency": {c.id: urgency(c, now=now, config=settings.rules) for c in listed},
            "calendar_warnings": warnings,
            "can_act": session.user.role in BOARD_ACTORS,
            "message": message,
            "error": error,
        },
        session=session,
        status_code=status_code,
    )


@router.get("")
def board_page(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: BoardPage
) -> Response:
    _ = gettext(session.lang)
    flash = request.query_params
    message = None
    if "reassigned" in flash:
        message = _("Callback %(id)s now waits for %(agent)s.") % {
            "id": flash.get("reassigned"),
            "agent": flash.get("to", ""),
        }
    elif "handed_over" in flash:
        message = _("Work order %(id)s is recorded as handed over.") % {
            "id": flash.get("handed_over")
        }
    elif "released" in flash:
        message = _("The lease on callback %(id)s was released: it is back in the queue.") % {
            "id": flash.get("released")
        }
    return _board(request, session, uow, now, settings, "board.html", message=message)


@router.get("/panels")
def board_panels(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: BoardPage
) -> Response:
    """The board's panels alone: the page swaps them in place when it refreshes itself."""
    return _board(request, session, uow, now, settings, "_board_panels.html")


@router.post("/reassign")
def reassign_callback(
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: BoardForm,
    fields: FormFields,
) -> Response:
    _ = gettext(session.lang)
    agent = fields.get("agent", "").strip()
    number = fields.get("callback_id", "").strip().lstrip("#")
    if not number.isdigit():
        error = _("Write the number of the callback to reassign.")
        return _board(
            request, session, uow, now, settings, "board.html", error=error, status_code=422
        )
    callback_id = int(number)
    try:
        reassign(
            uow,
            callback_id=callback_id,
            agent_username=agent,
            by=session.user,
            now=now,
            actor=console_actor(request, session),
        )
    except (Conflict, InvalidField, NotFound) as exc:
        error = _("Callback %(id)s was not reassigned: %(reason)s") % {
            "id": callback_id,
            "reason": exc.reason if isinstance(exc, InvalidField) else str(exc),
        }
        return _board(
            request, session, uow, now, settings, "board.html", error=error, status_code=409
        )
    return RedirectResponse(f"/console/board?reassigned={callback_id}&to={agent}", status_code=303)


@router.post("/{callback_id}/release")
def release_callback(
    callback_id: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: BoardForm,
) -> Response:
    _ = gettext(session.lang)
    try:
        release_lease(
            uow,
            callback_id=callback_id,
            by=session.user,
            now=now,
            actor=console_actor(request, session),
        )
    except (Conflict, NotFound) as exc:
        error = _("The lease on callback %(id)s was not released: %(reason)s") % {
            "id": callback_id,
            "reason": str(exc),
        }
        return _board(
            request, session, uow, now, settings, "board.html", error=error, status_code=409
        )
    return RedirectResponse(f"/console/board?released={callback_id}", status_code=303)


@router.post("/workorders/{work_order_id}/hand-over")
def hand_over_work_order(
    work_order_id: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: BoardForm,
) -> Response:
    """The supervisor records that the work order went to the team that takes it (KPI-3)."""
    _ = gettext(session.lang)
    try:
        hand_over(
            uow,
            work_order_id=work_order_id,
            user=session.user,
            now=now,
            actor=console_actor(request, session),
        )
    except (Conflict, NotFound) as exc:
        error = _("Work order %(id)s was not handed over: %(reason)s") % {
            "id": work_order_id,
            "reason": str(exc),
        }
        return _board(
            request, session, uow, now, settings, "board.html", error=error, status_code=409
        )
    return RedirectResponse(f"/console/board?handed_over={work_order_id}", status_code=303)
