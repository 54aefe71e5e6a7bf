"""The agent's desk: take the next callback, read the script, record the outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.console.i18n import UiLang, gettext_noop, when
from api.console.step_form import DESK_PREFIX, field_problems, offer_refused, parse_step
from api.console.web import (
    ConsoleSession,
    console_actor,
    form_for,
    gettext,
    page_for,
    render,
)
from api.deps import CALLERS, NowDep, SettingsDep, UowDep
from callcenter.callbacks.desk import desk, my_callbacks, urgency
from callcenter.callbacks.rules import AttemptOutcome, CallBackTimeRefused
from callcenter.callbacks.schemas import AttemptCreate
from callcenter.callbacks.service import LeaseExpired, NotYourClaim, claim_next, record_attempt
from callcenter.config import CallbackType, Settings
from callcenter.errors import Conflict, InvalidFields, NotFound
from callcenter.questionnaires.answers import InvalidAnswers
from callcenter.questionnaires.definitions import Lang
from callcenter.retention.rules import OfferAboveLevel
from callcenter.retention.views import desk_retention
from callcenter.sla.rules import at_risk_margin
from callcenter.workorders.schemas import FollowUpCreate
from callcenter.workorders.service import create_follow_up

router = APIRouter(prefix="/console/desk", include_in_schema=False)

DeskPage = Annotated[ConsoleSession, Depends(page_for(*CALLERS))]
DeskForm = Annotated[ConsoleSession, Depends(form_for(*CALLERS))]

ANSWER_PREFIX = "q."

RETENTION_PROBLEMS = gettext_noop(
    "Some retention fields need attention: see the fields marked below."
)

# The reasons a call-back time is refused (callcenter.callbacks.rules), to translate.
REFUSALS = (
    gettext_noop("the time to call back is not in the future"),
    gettext_noop("the time to call back is at or after the callback's hard limit"),
    gettext_noop("the time to call back is outside the calling windows"),
)


def script_lang(lang: UiLang) -> Lang:
    return Lang.ZH if lang is UiLang.ZH_CN else Lang.EN


def _forbidden(request: Request, lang: Lang) -> list[str]:
    return [text.get(lang) for text in request.app.state.scripts.phrases.forbidden]


def _desk_page(
    request: Request,
    session: ConsoleSession,
    uow: UowDep,
    now: datetime,
    settings: Settings,
    *,
    draft: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    outcome_error: str | None = None,
    follow_up_error: str | None = None,
    form: dict[str, str] | None = None,
    retention_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    lang = script_lang(session.lang)
    view = desk(
        uow,
        agent=session.user,
        now=now,
        config=settings.rules,
        step=timedelta(minutes=settings.console.call_back_step_minutes),
        lang=lang,
        forbidden=_forbidden(request, lang),
        draft=draft,
        actor=console_actor(request, session),
    )
    held = view.claim.callbacks if view.claim else []
    current = view.current
    # rules CB-6, RT-1: a churn call records its level-1 retention step with the call.
    retention = (
        desk_retention(
            uow, callback_id=current.id, user=session.user, now=now, config=settings.rules
        )
        if current is not None and current.type is CallbackType.CHURN
        else None
    )
    return render(
        request,
        "desk.html",
        {
            "view": view,
            "now": now,
            "urgency": {c.id: urgency(c, now=now, config=settings.rules) for c in held},
            "personal": view.personal,
            "personal_urgent": [c for c in view.personal if c.available_at <= now],
            "grace": settings.rules.sla.personal_grace,
            "draft": draft or {},
            "errors": errors or {},
            "outcome_error": outcome_error,
            "follow_up_error": follow_up_error,
            "form": form or {},
            "retention": retention,
            "retention_errors": retention_errors or {},
            "flash": request.query_params,
            "outcomes": list(AttemptOutcome),
            "margins": {kind: at_risk_margin(kind, settings.rules) for kind in CallbackType},
            "slot_days": slot_days(view.call_back_slots, view.zone, session.lang),
            "hand_over_minutes": int(
                settings.rules.follow_up.hand_over_within.total_seconds() // 60
            ),
        },
        session=session,
        status_code=status_code,
    )


def slot_days(
    slots: list[datetime], zone: str | None, lang: UiLang
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The call-back times grouped by the customer's local day, for the picker."""
    days: dict[str, list[tuple[str, str]]] = {}
    for slot in slots:
        assert zone is not None
        day = when(slot, zone, lang, "yyyy-MM-dd EEE")
        days.setdefault(day, []).append((slot.isoformat(), when(slot, zone, lang, "HH:mm")))
    return list(days.items())


@router.get("")
def desk_page(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: DeskPage
) -> Response:
    return _desk_page(request, session, uow, now, settings)


@router.get("/mine")
def my_callbacks_fragment(
    request: Request, uow: UowDep, now: NowDep, settings: SettingsDep, session: DeskPage
) -> Response:
    """The agent's own callbacks, as a fragment the desk refreshes by itself."""
    personal = my_callbacks(uow, agent=session.user, now=now)
    return render(
        request,
        "_mine.html",
        {
            "personal": personal,
            "now": now,
            "personal_urgent": [c for c in personal if c.available_at <= now],
            "grace": settings.rules.sla.personal_grace,
        },
        session=session,
    )


@router.post("/claim")
def take_next(uow: UowDep, now: NowDep, settings: SettingsDep, session: DeskForm) -> Response:
    # The desk it leads to shows the phone, and records that view (rule SV-4).
    claimed = claim_next(uow, agent=session.user, now=now, config=settings.rules, phone_shown=False)
    return RedirectResponse(
        "/console/desk" if claimed else "/console/desk?nothing=1", status_code=303
    )


async def form_fields(request: Request) -> dict[str, str]:
    """Every text field of the posted form (read once; the CSRF check read the same form)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(form_fields)]


@router.post("/{callback_id}/attempt")
def save_attempt(
    callback_id: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: DeskForm,
    fields: FormFields,
) -> Response:
    """Record how the call ended, with the answers given on it, in one transaction."""
    _ = gettext(session.lang)
    answers = {
        key[len(ANSWER_PREFIX) :]: value
        for key, value in fields.items()
        if key.startswith(ANSWER_PREFIX) and value.strip()
    }
    outcome = fields.get("outcome", "")

    def again(message: str, status_code: int = 422, **kwargs: Any) -> Response:
        return _desk_page(
            request,
            session,
            uow,
            now,
            settings,
            draft=answers,
            form=fields,
            outcome_error=message,
            status_code=status_code,
            **kwargs,
        )

    try:
        attempt = AttemptCreate.model_validate(
            {
                "outcome": outcome,
                "call_back_at": fields.get("call_back_at") or None,
                "note": fields.get("note") or None,
            }
        )
    except ValidationError as exc:
        where = {str(part) for error in exc.errors() for part in error["loc"]}
        if outcome == AttemptOutcome.CALL_BACK_LATER:
            return again(_("Choose the time the customer asked to be called back at."))
        if "note" in where:
            return again(_("The note is too long: at most 2,000 characters."))
        return again(_("Choose how the call ended."))
    retention_step = None
    if attempt.outcome is AttemptOutcome.ANSWERED and fields.get(DESK_PREFIX + "level"):
        # rules CB-6, RT-1: the churn call's level-1 step, recorded with the answered attempt.
        retention_step, step_errors = parse_step(fields, prefix=DESK_PREFIX, _=_)
        if retention_step is None:
            return again(_(RETENTION_PROBLEMS), retention_errors=step_errors)
    try:
        record_attempt(
            uow,
            callback_id=callback_id,
            agent=session.user,
            attempt=attempt,
            now=now,
            config=settings.rules,
            answers=answers,
            answers_from_form=True,
            retention_step=retention_step,
            actor=console_actor(request, session),
        )
    except InvalidAnswers as exc:
        lang = script_lang(session.lang)
        errors = {e.question_id: e.detail.get(lang) for e in exc.errors}
        return again(
            _("Some answers need attention: see the questions marked below."), errors=errors
        )
    except CallBackTimeRefused as exc:
        return again(_(exc.reason))
    except InvalidFields as exc:
        errors = field_problems(exc.problems, fields, prefix=DESK_PREFIX, _=_)
        return again(_(RETENTION_PROBLEMS), retention_errors=errors)
    except OfferAboveLevel as exc:
        # rules RT-1..RT-3: refused by the service; nothing is recorded, the form stays.
        message = offer_refused(exc, session.lang is UiLang.ZH_CN, _)
        return again(message, status_code=403, retention_errors={"offer_code": ""})
    except NotFound:
        return again(_("This callback does not exist."), status_code=404)
    except Conflict as exc:
        return again(_lease_message(exc, _), status_code=409)
    saved = f"/console/desk?saved={callback_id}&outcome={attempt.outcome.value}"
    if retention_step is not None:
        saved += f"&retention={retention_step.outcome.value}"
    return RedirectResponse(saved, status_code=303)


def _lease_message(exc: Conflict, _: Callable[[str], str]) -> str:
    if isinstance(exc, LeaseExpired):
        return _(
            "Your lease on this callback lapsed: it went back to the queue. Take the next one."
        )
    if isinstance(exc, NotYourClaim):
        return _(
            "You do not hold this callback (someone else took it, or a supervisor released it)."
        )
    return _("This cannot be recorded now: %(reason)s") % {"reason": str(exc)}


@router.post("/{callback_id}/follow-up")
def raise_follow_up(
    callback_id: int,
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    session: DeskForm,
    fields: FormFields,
) -> Response:
    """A follow-up work order for what the call could not settle (rule SV-5)."""
    _ = gettext(session.lang)
    try:
        follow_up = FollowUpCreate.model_validate(
            {
                "subject": fields.get("subject", ""),
                "details": fields.get("details") or None,
                "team": fields.get("team") or None,
            }
        )
    except ValidationError:
        return _desk_page(
            request,
            session,
            uow,
            now,
            settings,
            form=fields,
            follow_up_error=_("Write what the customer needs, in at least 2 characters."),
            status_code=422,
        )
    try:
        order = create_follow_up(
            uow,
            callback_id=callback_id,
            user=session.user,
            follow_up=follow_up,
            now=now,
            config=settings.rules,
            actor=console_actor(request, session),
        )
    except (Conflict, NotFound) as exc:
        return _desk_page(
            request,
            session,
            uow,
            now,
            settings,
            form=fields,
            follow_up_error=_lease_message(exc, _) if isinstance(exc, Conflict) else str(exc),
            status_code=409,
        )
    return RedirectResponse(f"/console/desk?follow_up={order.id}", status_code=303)
