"""IVR calls for overseers: what the machine dialled, what the customers keyed, how it ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AUTH_ERRORS, Overseer, UowDep
from api.params import MAX_ROW_ID
from callcenter.ivr.rules import CallStatus
from callcenter.ivr.schemas import IvrCallRead
from callcenter.ivr.service import list_ivr_calls
from callcenter.timeformats import IsoAwareDatetime

router = APIRouter(prefix="/api/v1/ivr", tags=["ivr"])


@router.get("/calls", summary="IVR calls, the newest first", responses=AUTH_ERRORS)
def get_ivr_calls(
    uow: UowDep,
    _user: Overseer,
    since: Annotated[IsoAwareDatetime | None, Query(description="Calls written since.")] = None,
    status_: Annotated[list[CallStatus], Query(alias="status")] = [],  # noqa: B006
    callback_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[IvrCallRead]:
    return list_ivr_calls(uow, since=since, limit=limit, status=status_, callback_id=callback_id)
