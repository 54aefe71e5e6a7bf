"""Follow-up work orders (rule SV-5, first-ask responsibility) and the work-order list."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    AUTH_ERRORS,
    ActorDep,
    Caller,
    NowDep,
    Overseer,
    SettingsDep,
    Supervising,
    UowDep,
)
from api.params import RowId
from callcenter.workorders.models import WorkOrderKind, WorkOrderStatus
from callcenter.workorders.schemas import FollowUpCreate, WorkOrderPage, WorkOrderRead
from callcenter.workorders.service import create_follow_up, hand_over, list_work_orders

router = APIRouter(prefix="/api/v1", tags=["work orders"])


@router.post(
    "/callbacks/{callback_id}/workorders",
    status_code=status.HTTP_201_CREATED,
    summary="Raise a follow-up for what could not be settled on the call",
    responses={
        **AUTH_ERRORS,
        404: {"description": "No such callback."},
        409: {"description": "You do not hold this callback."},
    },
)
def post_follow_up(
    callback_id: RowId,
    body: FollowUpCreate,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    agent: Caller,
    actor: ActorDep,
) -> WorkOrderRead:
    """Due to be handed over within 15 minutes (configurable)."""
    return create_follow_up(
        uow,
        callback_id=callback_id,
        user=agent,
        follow_up=body,
        now=now,
        config=settings.rules,
        actor=actor,
    )


class HandOver(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    team: str | None = Field(default=None, max_length=64, description="Who takes it now.")


@router.post(
    "/workorders/{work_order_id}/hand-over",
    summary="Record that a work order was handed over (feeds KPI-3)",
    responses={
        **AUTH_ERRORS,
        404: {"description": "No such work order."},
        409: {"description": "It was handed over or closed already."},
    },
)
def post_hand_over(
    work_order_id: RowId,
    uow: UowDep,
    now: NowDep,
    user: Supervising,
    actor: ActorDep,
    body: HandOver | None = None,
) -> WorkOrderRead:
    return hand_over(
        uow,
        work_order_id=work_order_id,
        user=user,
        now=now,
        team=body.team if body else None,
        actor=actor,
    )


@router.get("/workorders", summary="Work orders, the ones due first", responses=AUTH_ERRORS)
def get_work_orders(
    uow: UowDep,
    now: NowDep,
    _user: Overseer,
    status_: Annotated[list[WorkOrderStatus], Query(alias="status")] = [],  # noqa: B006
    kind: Annotated[list[WorkOrderKind], Query()] = [],  # noqa: B006
    overdue: Annotated[bool | None, Query(description="Open and past its due time.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> WorkOrderPage:
    return list_work_orders(
        uow, now=now, status=status_, kind=kind, overdue=overdue, limit=limit, offset=offset
    )
