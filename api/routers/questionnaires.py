"""The script of a callback, its answers and their corrections (rules SV-1, SV-2, SV-4)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from api.deps import (
    AUTH_ERRORS,
    CALLERS,
    ActorDep,
    Caller,
    NowDep,
    Reader,
    UowDep,
    require_roles,
)
from api.params import RowId
from callcenter.questionnaires.definitions import Lang
from callcenter.questionnaires.schemas import (
    AnswerRead,
    AnswersCreate,
    CorrectionCreate,
    ScriptRead,
)
from callcenter.questionnaires.service import (
    correct_answer,
    list_answers,
    record_answers,
    script_for_callback,
)
from callcenter.users.models import User, UserRole

router = APIRouter(prefix="/api/v1", tags=["scripts and answers"])

# rule SV-4: admins correct answers too (the service decides who may correct which answer);
# the callers are let through for the answers they recorded themselves.
Corrector = Annotated[User, Depends(require_roles(*CALLERS, UserRole.ADMIN))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    404: {"description": "No such callback or answer."},
    409: {"description": "You do not hold this callback, or the answer is already recorded."},
}


@router.get(
    "/callbacks/{callback_id}/script",
    summary="The callback's script, filled in for you, with the answers so far",
    responses=_ERRORS,
)
def get_script(
    callback_id: RowId,
    request: Request,
    uow: UowDep,
    now: NowDep,
    agent: Caller,
    lang: Annotated[Lang, Query(description="zh (default) or en")] = Lang.ZH,
) -> ScriptRead:
    """The version the callback was created with (frozen), its opening and closing phrases
    filled in with your name and employee number and the customer's name, the questions with
    whether each is to be asked given the answers so far, and the phrases never to say."""
    forbidden = [text.get(lang) for text in request.app.state.scripts.phrases.forbidden]
    return script_for_callback(
        uow, callback_id=callback_id, user=agent, lang=lang, now=now, forbidden=forbidden
    )


@router.post(
    "/callbacks/{callback_id}/answers",
    status_code=status.HTTP_201_CREATED,
    summary="Record answers given on this call",
    responses={
        **_ERRORS,
        422: {"description": "An answer is invalid: each error names its question and why."},
    },
)
def post_answers(
    callback_id: RowId,
    body: AnswersCreate,
    uow: UowDep,
    now: NowDep,
    agent: Caller,
    actor: ActorDep,
) -> list[AnswerRead]:
    """Validated against the callback's script version: types, ranges, choices, and no answer
    to a question whose condition is false. Answers are never replaced (rule SV-4); to change
    one, record a correction."""
    return record_answers(
        uow, callback_id=callback_id, user=agent, answers=body.answers, now=now, actor=actor
    )


@router.get(
    "/callbacks/{callback_id}/answers",
    summary="Every answer of a callback, corrections included",
    responses=_ERRORS,
)
def get_answers(callback_id: RowId, uow: UowDep, _user: Reader) -> list[AnswerRead]:
    return list_answers(uow, callback_id=callback_id)


@router.post(
    "/answers/{answer_id}/corrections",
    status_code=status.HTTP_201_CREATED,
    summary="Correct a recorded answer, saying why",
    responses={**_ERRORS, 422: {"description": "The corrected answer is invalid."}},
)
def post_correction(
    answer_id: RowId,
    body: CorrectionCreate,
    uow: UowDep,
    now: NowDep,
    user: Corrector,
    actor: ActorDep,
) -> AnswerRead:
    """A new answer that points at the one it corrects, with who and why; both stay visible.
    The agent who recorded the answer, a supervisor or an admin may correct it."""
    return correct_answer(
        uow,
        answer_id=answer_id,
        user=user,
        value=body.value,
        reason=body.reason,
        now=now,
        actor=actor,
    )
