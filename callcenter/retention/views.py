"""What the console shows of the three-level retention flow (rules CB-6, RT-1..RT-4): one
level's queue with its due colours, one case with the history of every level and the churn
script read for the case's level, and the level-1 part of the agent's desk.

Reads only: steps are recorded by `callcenter.retention.service.record_step` (levels 2 and 3)
and by `callcenter.callbacks.service.record_attempt` with a `retention_step` (level 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Callback
from callcenter.config import RulesConfig
from callcenter.db import UnitOfWork
from callcenter.errors import NotFound
from callcenter.questionnaires.definitions import Lang, ScriptDefinition
from callcenter.questionnaires.models import Answer
from callcenter.questionnaires.render import (
    AgentInfo,
    CallbackInfo,
    CustomerInfo,
    RenderContext,
    RenderedScript,
    answer_label,
    render_script,
)
from callcenter.questionnaires.service import addressed_as, current_answers, definition_of
from callcenter.retention import rules
from callcenter.retention.rules import FIRST_LEVEL, CaseState
from callcenter.retention.schemas import CaseDetail, CasePage, CaseRead, CatalogueRead
from callcenter.retention.service import case_for_callback, catalogue, get_case, list_queue
from callcenter.users.models import User


def amber_at(case: CaseRead, config: RulesConfig) -> datetime:
    """When a case's level counts as at risk (amber): once the configured share of the time
    from reaching the level to its due time has passed, as for callbacks (rule WO-4)."""
    allowed = max(case.due_at - case.level_since, timedelta(0))
    return case.due_at - allowed * (1 - config.sla.at_risk_share)


@dataclass(frozen=True)
class QueueView:
    """One level's queue, due first (the overdue come first), and the queues the user reads."""

    level: int
    page: CasePage
    amber_at: dict[int, datetime]
    readable: list[int]
    acting_level: int | None


def queue_view(
    uow: UnitOfWork,
    *,
    user: User,
    level: int,
    now: datetime,
    config: RulesConfig,
    limit: int = 50,
    offset: int = 0,
) -> QueueView:
    """The open cases of `level`; `LevelForbidden` when the user's role does not reach it."""
    page = list_queue(uow, user=user, level=level, now=now, limit=limit, offset=offset)
    top = rules.reading_level(user.role) or 0
    return QueueView(
        level=level,
        page=page,
        amber_at={case.id: amber_at(case, config) for case in page.items},
        readable=list(range(FIRST_LEVEL, top + 1)),
        acting_level=rules.acting_level(user.role),
    )


@dataclass(frozen=True)
class AnswerLine:
    """One answer given on the churn call (level 1's questionnaire), as a person reads it."""

    number: int
    question: str
    answer: str


@dataclass(frozen=True)
class CaseView:
    case: CaseDetail
    catalogue: CatalogueRead
    amber_at: datetime
    # The churn script (rule Q-CHURN) filled in for this user, to read at the case's level.
    script: RenderedScript | None
    # Level 1's questionnaire on the churn call, in script order.
    churn_answers: list[AnswerLine] = field(default_factory=list)
    # Whether this user records the case's step here: open, past level 1 (which goes with
    # the churn call on the desk, rule RT-1), and the user's role acts at its level.
    may_record: bool = False


def may_record_here(case: CaseRead, user: User) -> bool:
    top = rules.acting_level(user.role)
    return (
        case.state is CaseState.OPEN
        and case.level > FIRST_LEVEL
        and top is not None
        and case.level <= top
    )


def _label(definition: ScriptDefinition, question_id: str, value: object, lang: Lang) -> str:
    question = definition.question(question_id)
    if isinstance(value, Mapping):  # a choice stored as {"choice", "text"}
        chosen = answer_label(question, str(value.get("choice")), lang)
        text = value.get("text")
        return f"{chosen}: {text}" if text else chosen
    if isinstance(value, bool | int | str):
        return answer_label(question, value, lang)
    return str(value)


def case_view(
    uow: UnitOfWork,
    *,
    case_id: int,
    user: User,
    now: datetime,
    config: RulesConfig,
    lang: Lang,
) -> CaseView:
    """A case with its history, the churn script read for its level, the answers of the churn
    call, and the catalogue as this user may use it. NotFound, LevelForbidden."""
    case = get_case(uow, case_id=case_id, user=user, now=now, config=config)
    script = None
    lines: list[AnswerLine] = []
    with uow:
        session = uow.session
        callback = session.get_one(Callback, case.callback_id)
        if callback.script_version_id is not None:
            _, definition = definition_of(session, callback.script_version_id)
            name, title = addressed_as(case.customer.name, case.customer.title)
            context = RenderContext(
                agent=AgentInfo(
                    name=user.display_name,
                    employee_number=user.employee_number or user.username,
                ),
                customer=CustomerInfo(name=name, title=title),
                callback=CallbackInfo(
                    type=callback.type, order_id=callback.order_id, late=case.overdue
                ),
            )
            script = render_script(definition, context, lang)
            rows = session.execute(
                sa.select(Answer)
                .where(col(Answer.callback_id) == case.callback_id)
                .order_by(col(Answer.id))
            ).scalars()
            in_force = current_answers(list(rows))
            numbers = {q.id: n for n, q in enumerate(definition.questions, start=1)}
            lines = [
                AnswerLine(
                    number=numbers[q.id],
                    question=rendered.text,
                    answer=_label(definition, q.id, in_force[q.id].value, lang),
                )
                for q, rendered in zip(definition.questions, script.questions, strict=True)
                if q.id in in_force
            ]
    return CaseView(
        case=case,
        catalogue=catalogue(user=user, config=config),
        amber_at=amber_at(case, config),
        script=script,
        churn_answers=lines,
        may_record=may_record_here(case, user),
    )


@dataclass(frozen=True)
class DeskRetention:
    """The level-1 part of the desk for a churn callback the agent holds (rule RT-1)."""

    case: CaseDetail
    catalogue: CatalogueRead


def desk_retention(
    uow: UnitOfWork, *, callback_id: int, user: User, now: datetime, config: RulesConfig
) -> DeskRetention | None:
    """The case a churn callback opened, if it waits for its level-1 step; else None."""
    try:
        case = case_for_callback(uow, callback_id=callback_id, user=user, now=now, config=config)
    except (NotFound, rules.LevelForbidden):
        return None
    if case.state is not CaseState.OPEN or case.level != FIRST_LEVEL:
        return None
    return DeskRetention(case=case, catalogue=catalogue(user=user, config=config))
