"""The retention pages (rules CB-6, RT-1..RT-4): each level's queue, and a case with the
history of every earlier level, the churn script for its level, the offers the user may make
and the form that records the level's step. Level 1 is recorded on the desk, with the churn
call (`api/console/desk.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.console.desk import FormFields, script_lang
from api.console.i18n import UiLang
from api.console.step_form import field_problems, offer_refused, parse_step
from api.console.web import (
    ConsoleSession,
    PageForbidden,
    console_actor,
    form_for,
    gettext,
    page_for,
    render,
)
from api.deps import CALLERS, READERS, NowDep, SettingsDep, UowDep
from callcenter.config import RETENTION_LEVELS, Settings
from callcenter.errors import Conflict, InvalidFields, NotFound
from callcenter.retention.rules import (
    FIRST_LEVEL,
    IllegalMove,
    LevelForbidden,
    OfferAboveLevel,
    acting_level,
)
from callcenter.retention.service import record_step
from callcenter.retention.views import case_view, queue_view

router = APIRouter(prefix="/console/retention", include_in_schema=False)

# Every queue is read by its role and above, managers and admins included; only the roles
# that make calls record steps (the service checks the level, rules RT-1..RT-3).
RetentionPage = Annotated[ConsoleSession, Depends(page_for(*READERS))]
RetentionForm = Annotated[ConsoleSession, Depends(form_for(*CALLERS))]

PAGE_SIZE = 50


def _not_found(request: Request, session: ConsoleSession, message: str) -> Response:
    return render(request, "not_found.html", {"message": message}, session=session, status_code=404)


@router.get("")
def retention_home(session: RetentionPage) -> Response:
    """The queue of the level the user acts at (managers and admins: level 1)."""
    level = acting_level(session.user.role) or FIRST_LEVEL
    return RedirectResponse(f"/console/retention/level/{level}", status_code=303)


@router.get("/level/{level}")
def queue_page(
    level: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: RetentionPage,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    _ = gettext(session.lang)
    if level not in RETENTION_LEVELS:
        message = _("There is no retention level %(level)s.") % {"level": level}
        return _not_found(request, session, message)
    try:
        view = queue_view(
            uow,
            user=session.user,
            level=level,
            now=now,
            config=settings.rules,
            limit=PAGE_SIZE,
            offset=offset,
        )
    except LevelForbidden:
        raise PageForbidden(session) from None
    return render(
        request,
        "retention_queue.html",
        {
            "view": view,
            "now": now,
            "flash": request.query_params,
            "reasons": {reason.code: reason for reason in settings.rules.retention.reasons},
        },
        session=session,
    )


def _case_page(
    request: Request,
    session: ConsoleSession,
    uow: UowDep,
    now: datetime,
    settings: Settings,
    case_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    step_error: str | None = None,
    step_detail: str | None = None,
    status_code: int = 200,
) -> Response:
    _ = gettext(session.lang)
    try:
        view = case_view(
            uow,
            case_id=case_id,
            user=session.user,
            now=now,
            config=settings.rules,
            lang=script_lang(session.lang),
        )
    except NotFound:
        message = _("Retention case %(id)s does not exist.") % {"id": case_id}
        return _not_found(request, session, message)
    except LevelForbidden:
        raise PageForbidden(session) from None
    return render(
        request,
        "retention_case.html",
        {
            "view": view,
            "case": view.case,
            "now": now,
            "form": form or {},
            "errors": errors or {},
            "step_error": step_error,
            "step_detail": step_detail,
        },
        session=session,
        status_code=status_code,
    )


@router.get("/cases/{case_id}")
def case_page(
    case_id: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: RetentionPage,
) -> Response:
    return _case_page(request, session, uow, now, settings, case_id)


@router.post("/cases/{case_id}/steps")
def save_step(
    case_id: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: RetentionForm,
    fields: FormFields,
) -> Response:
    """Record the case's step at level 2 or 3 (rule RT-4; inserted, never updated, SV-4)."""
    _ = gettext(session.lang)

    def again(
        message: str,
        status_code: int,
        errors: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> Response:
        return _case_page(
            request,
            session,
            uow,
            now,
            settings,
            case_id,
            form=fields,
            errors=errors,
            step_error=message,
            step_detail=detail,
            status_code=status_code,
        )

    step, errors = parse_step(fields, prefix="", _=_)
    if step is None:
        return again(_("Some fields need attention: see the fields marked below."), 422, errors)
    if step.level == FIRST_LEVEL:
        # rule RT-1: level 1 goes with the answered churn call and its questionnaire.
        return again(_("Level 1 is recorded on the desk, with the answered churn call."), 409)
    try:
        record_step(
            uow,
            case_id=case_id,
            user=session.user,
            step=step,
            now=now,
            config=settings.rules,
            actor=console_actor(request, session),
        )
    except InvalidFields as exc:
        errors = field_problems(exc.problems, fields, prefix="", _=_)
        return again(_("Some fields need attention: see the fields marked below."), 422, errors)
    except OfferAboveLevel as exc:
        # rules RT-1..RT-3: the service refuses it; the form stays as it was sent.
        return again(offer_refused(exc, session.lang is UiLang.ZH_CN, _), 403, {"offer_code": ""})
    except LevelForbidden:
        raise PageForbidden(session) from None
    except NotFound:
        message = _("Retention case %(id)s does not exist.") % {"id": case_id}
        return _not_found(request, session, message)
    except IllegalMove as exc:
        # The case moved on or closed meanwhile, or a move the flow does not allow (CB-6).
        message = _("The flow does not allow this step now; nothing was recorded.")
        return again(message, 409, detail=str(exc))
    except Conflict as exc:
        return again(_("This cannot be recorded now; nothing was recorded."), 409, detail=str(exc))
    return RedirectResponse(
        f"/console/retention/level/{step.level}?saved={case_id}&outcome={step.outcome.value}",
        status_code=303,
    )
