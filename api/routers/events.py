"""The order system posts its events here (rules CB-1..CB-4, CB-7)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import Integration, NowDep, SettingsDep, UowDep
from callcenter.callbacks.schemas import BatchResult, CallbackRead, EventIn
from callcenter.callbacks.service import ingest_event, ingest_events

router = APIRouter(prefix="/api/v1/events", tags=["events"])

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    # Any object: each is validated on its own against EventIn, and a bad
                    # one is answered in its result, not by refusing the batch.
                    "items": {
                        "type": "object",
                        "description": "An event as for `POST /api/v1/events` (EventIn).",
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Post one event; answers with the callback it made",
    responses={
        200: {"model": CallbackRead, "description": "The same event again: nothing created."},
        401: {"description": "No API token, or a wrong one."},
        403: {"description": "The token's user is not an integration."},
        409: {"description": "The event_id was used before for a different event."},
    },
)
async def post_event(
    event: EventIn,
    response: Response,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    _user: Integration,
) -> CallbackRead:
    # One hand-off to a worker thread, for the database work (see api/routers/callbacks.py).
    created, callback = await run_in_threadpool(
        ingest_event, uow, event=event, now=now, config=settings.rules
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return callback


@router.post(
    "/batch",
    summary="Post up to 1,000 events; a result per event, in order",
    response_model=BatchResult,
    openapi_extra=_BATCH_BODY,
    responses={
        401: {"description": "No API token, or a wrong one."},
        403: {"description": "The token's user is not an integration."},
    },
)
async def post_events(
    events: Annotated[list[dict[str, Any]], Body(min_length=1, max_length=1000)],
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    _user: Integration,
) -> Response:
    """Each event is validated on its own: a bad one is reported as `invalid` with its
    errors and does not stop the others. Duplicates and conflicts are reported per event."""
    result = await run_in_threadpool(
        ingest_events, uow, events=events, now=now, config=settings.rules
    )
    # Serialised once here: a thousand results are not validated a second time on the way out.
    return Response(content=result.model_dump_json(), media_type="application/json")
