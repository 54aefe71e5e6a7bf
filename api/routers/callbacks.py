"""Agents claim callbacks and record attempts; everyone who may reads the queue."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    AUTH_ERRORS,
    ActorDep,
    AgentCallDep,
    NowDep,
    Reader,
    Supervising,
    UowDep,
)
from api.params import RowId
from callcenter.callbacks.desk import reassign, release_lease
from callcenter.callbacks.rules import CallbackStatus
from callcenter.callbacks.schemas import (
    AttemptCreate,
    AttemptRecorded,
    CallbackDetail,
    CallbackFilters,
    CallbackPage,
    CallbackRead,
    ClaimRead,
)
from callcenter.callbacks.service import get_callback, list_callbacks
from callcenter.config import CallbackType
from callcenter.timeformats import IsoAwareDatetime

router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])


@router.post(
    "/claim",
    summary="Take the next callback to make now",
    responses={
        204: {"description": "Nothing may be called now (no window open, or the queue is empty)."},
        **AUTH_ERRORS,
    },
)
async def claim(call: AgentCallDep, response: Response) -> ClaimRead | None:
    """Leases the customer whose callback has the earliest hard limit (then target) among
    those whose calling window is open now, with all of that customer's callable callbacks:
    the customer is called once. The lease lasts 15 minutes by default."""
    claimed = await call.claim()
    if claimed is None:
        response.status_code = status.HTTP_204_NO_CONTENT
    return claimed


@router.post(
    "/{callback_id}/attempts",
    status_code=status.HTTP_201_CREATED,
    summary="Record one attempt on a callback you hold",
    responses={
        404: {"description": "No such callback."},
        409: {"description": "You do not hold this callback, or your lease lapsed."},
        **AUTH_ERRORS,
    },
)
async def post_attempt(
    callback_id: RowId, attempt: AttemptCreate, call: AgentCallDep
) -> AttemptRecorded:
    return await call.record_attempt(callback_id, attempt)


class ReassignBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agent: str = Field(min_length=1, max_length=64, description="The agent's username.")


@router.post(
    "/{callback_id}/reassign",
    summary="Give an open callback to an agent (supervisors)",
    responses={
        404: {"description": "No such callback."},
        409: {"description": "The callback is closed."},
        **AUTH_ERRORS,
    },
)
def post_reassign(
    callback_id: RowId,
    body: ReassignBody,
    uow: UowDep,
    now: NowDep,
    user: Supervising,
    actor: ActorDep,
) -> CallbackRead:
    """It waits in that agent's own list (then the shared queue after the grace period, as a
    callback a customer asked that agent for); a lease someone else holds on it ends."""
    return reassign(
        uow, callback_id=callback_id, agent_username=body.agent, by=user, now=now, actor=actor
    )


@router.post(
    "/{callback_id}/release",
    summary="End the lease on a claimed callback (supervisors)",
    responses={
        404: {"description": "No such callback."},
        409: {"description": "Nobody holds it."},
        **AUTH_ERRORS,
    },
)
def post_release(
    callback_id: RowId, uow: UowDep, now: NowDep, user: Supervising, actor: ActorDep
) -> CallbackRead:
    """The callback (and the others of the same claim) go back to the queue at once; the agent
    who held them can no longer record on them."""
    return release_lease(uow, callback_id=callback_id, by=user, now=now, actor=actor)


@router.get("", summary="List callbacks", responses=AUTH_ERRORS)
def get_callbacks(
    uow: UowDep,
    now: NowDep,
    _user: Reader,
    status_: Annotated[list[CallbackStatus], Query(alias="status")] = [],  # noqa: B006
    type_: Annotated[list[CallbackType], Query(alias="type")] = [],  # noqa: B006
    due_before: Annotated[IsoAwareDatetime | None, Query()] = None,
    overdue: Annotated[bool | None, Query(description="Open and past the target.")] = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    order_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CallbackPage:
    """In deadline order (earliest hard limit first). Phone numbers are masked."""
    filters = CallbackFilters(
        status=status_,
        type=type_,
        due_before=due_before,
        overdue=overdue,
        customer_id=customer_id,
        order_id=order_id,
    )
    return list_callbacks(uow, filters=filters, limit=limit, offset=offset, now=now)


@router.get(
    "/{callback_id}",
    summary="One callback with its attempts",
    responses={404: {"description": "No such callback."}, **AUTH_ERRORS},
)
def get_one(callback_id: RowId, uow: UowDep, now: NowDep, _user: Reader) -> CallbackDetail:
    return get_callback(uow, callback_id=callback_id, now=now)
