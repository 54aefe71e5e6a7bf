"""The three-level retention flow (rules CB-6, RT-1..RT-4): each level's queue, one case with
its history, the catalogue of reasons and offers, and recording a level's step."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from api.deps import AUTH_ERRORS, ActorDep, Caller, NowDep, Reader, SettingsDep, UowDep
from api.params import MAX_ROW_ID, RowId
from callcenter.retention.rules import CaseState
from callcenter.retention.schemas import (
    CaseDetail,
    CaseFilters,
    CasePage,
    CatalogueRead,
    Level,
    StepCreate,
)
from callcenter.retention.service import (
    catalogue,
    get_case,
    list_cases,
    list_queue,
    record_step,
)

router = APIRouter(prefix="/api/v1/retention", tags=["retention"])

_LEVEL_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "Your role does not reach this level."}
}


@router.get(
    "/catalogue",
    summary="Reasons for cancelling and the offers you may make",
    responses=AUTH_ERRORS,
)
def get_catalogue(settings: SettingsDep, user: Reader) -> CatalogueRead:
    """The reasons taxonomy and the offers catalogue; each offer says whether your level may
    make it (level 1: agents, 2: supervisors, 3: the retention lead)."""
    return catalogue(user=user, config=settings.rules)


@router.get(
    "/queues/{level}",
    summary="One level's queue: its open cases, due first",
    responses={**AUTH_ERRORS, **_LEVEL_FORBIDDEN},
)
def get_queue(
    level: Annotated[Level, Path(description="1, 2 or 3.")],
    uow: UowDep,
    now: NowDep,
    user: Reader,
    overdue: Annotated[bool | None, Query(description="Past its due time.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CasePage:
    """Level 1 for agents and above, level 2 for supervisors and above, level 3 for the
    retention lead; managers and admins read every queue."""
    return list_queue(
        uow, user=user, level=level, now=now, overdue=overdue, limit=limit, offset=offset
    )


@router.get(
    "/cases",
    summary="Retention cases of the levels you may read",
    responses={**AUTH_ERRORS, **_LEVEL_FORBIDDEN},
)
def get_cases(
    uow: UowDep,
    now: NowDep,
    user: Reader,
    state: Annotated[list[CaseState], Query()] = [],  # noqa: B006
    level: Annotated[list[Level], Query()] = [],  # noqa: B006
    overdue: Annotated[bool | None, Query(description="Open and past its due time.")] = None,
    callback_id: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="The churn callback's id.")
    ] = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CasePage:
    filters = CaseFilters(
        state=state,
        level=level,
        overdue=overdue,
        callback_id=callback_id,
        customer_id=customer_id,
    )
    return list_cases(uow, user=user, filters=filters, now=now, limit=limit, offset=offset)


@router.get(
    "/cases/{case_id}",
    summary="One case with its whole history",
    responses={**AUTH_ERRORS, **_LEVEL_FORBIDDEN, 404: {"description": "No such case."}},
)
def get_one(
    case_id: RowId, uow: UowDep, now: NowDep, settings: SettingsDep, user: Reader
) -> CaseDetail:
    return get_case(uow, case_id=case_id, user=user, now=now, config=settings.rules)


@router.post(
    "/cases/{case_id}/steps",
    status_code=status.HTTP_201_CREATED,
    summary="Record what your level did: reason, offer, the customer's answer, outcome",
    responses={
        **AUTH_ERRORS,
        403: {"description": "Your role does not reach the case's level, or the offer's."},
        404: {"description": "No such case."},
        409: {
            "description": "A move the flow does not allow (closed case, skipped level, lost "
            "before the last level), the case moved on, or (level 1) you do not hold the "
            "churn callback."
        },
        422: {"description": "A field is missing or wrong; each problem names its field."},
    },
)
def post_step(
    case_id: RowId,
    body: StepCreate,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    user: Caller,
    actor: ActorDep,
) -> CaseDetail:
    """Level 1 is recorded by the agent holding the claim on the churn callback and records
    the answered attempt on it as well (fill in its questionnaire first). Escalated: the next
    level is due 24 h (level 2) or 48 h (level 3) later by default. Lost: say whether the
    customer might come back (`win_back`) and when (`win_back_on`); a win-back callback is
    created for that day."""
    return record_step(
        uow, case_id=case_id, user=user, step=body, now=now, config=settings.rules, actor=actor
    )
