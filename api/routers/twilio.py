"""The telephony provider's webhooks: the call's TwiML, the keys pressed, the statuses.

Every request must carry a valid X-Twilio-Signature over the public URL (as the provider
called it, `telephony.public_base_url` + path + query) and the form fields; anything else is
403 and changes nothing.

The endpoints are asynchronous and hand their database work to a worker thread in one piece:
a call waits for each answer, so the webhooks are kept to one thread hand-off each (the
settings, the unit of work and the clock are read from the application, not through
synchronous dependencies, each of which would be a hand-off of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import clock_of, settings_of, uow_of
from callcenter.config import Settings
from callcenter.ivr.service import Webhook, handle_gather, handle_status, handle_voice
from callcenter.questionnaires.definitions import PhraseBook
from callcenter.telephony import Verb
from callcenter.telephony.signature import HEADER, is_valid
from callcenter.telephony.twiml import to_twiml


async def twilio_form(request: Request) -> dict[str, str]:
    """The webhook's form fields, once its signature is verified (403 otherwise)."""
    settings = settings_of(request)
    form = await request.form()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    url = settings.telephony.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not is_valid(settings.telephony.signing_key(), url, params, request.headers.get(HEADER)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "the request is not signed by the telephony provider"
        )
    return params


TwilioRequest = Annotated[dict[str, str], Depends(twilio_form)]

router = APIRouter(prefix="/twilio/ivr", tags=["telephony webhooks"])
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "Missing or wrong X-Twilio-Signature."}
}


def _phrases(request: Request) -> PhraseBook | None:
    scripts = getattr(request.app.state, "scripts", None)
    return scripts.phrases if scripts is not None else None


def _twiml(verbs: Sequence[Verb], settings: Settings) -> Response:
    body = to_twiml(verbs, voice=settings.telephony.voice, language=settings.telephony.language)
    return Response(content=body, media_type="application/xml")


@router.post("/{ref}/voice", summary="The call was answered: what to say", responses=_FORBIDDEN)
async def voice(ref: str, form: TwilioRequest, request: Request) -> Response:
    settings = settings_of(request)
    verbs = await run_in_threadpool(
        handle_voice,
        uow_of(request),
        ref=ref,
        hook=Webhook.from_form(form),
        now=clock_of(request).now(),
        telephony=settings.telephony,
        phrases=_phrases(request),
    )
    return _twiml(verbs, settings)


@router.post("/{ref}/gather", summary="Keys pressed at a question", responses=_FORBIDDEN)
async def gather(
    ref: str,
    form: TwilioRequest,
    request: Request,
    q: Annotated[str, Query(max_length=64, description="The question asked.")],
    t: Annotated[int, Query(ge=1, le=20, description="The try at it.")],
) -> Response:
    settings = settings_of(request)
    verbs = await run_in_threadpool(
        handle_gather,
        uow_of(request),
        ref=ref,
        question_id=q,
        try_number=t,
        hook=Webhook.from_form(form),
        now=clock_of(request).now(),
        telephony=settings.telephony,
        phrases=_phrases(request),
    )
    return _twiml(verbs, settings)


@router.post(
    "/{ref}/status",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="The call's status changed",
    responses=_FORBIDDEN,
)
async def call_status(ref: str, form: TwilioRequest, request: Request) -> Response:
    settings = settings_of(request)
    await run_in_threadpool(
        handle_status,
        uow_of(request),
        ref=ref,
        hook=Webhook.from_form(form),
        now=clock_of(request).now(),
        config=settings.rules,
        telephony=settings.telephony,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
