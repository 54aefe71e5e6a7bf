"""Scripts in the database (frozen versions), and the answers recorded against them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.audit import service as audit
from callcenter.audit.rules import Actor, AuditAction, SubjectType, actor_for
from callcenter.callbacks.models import Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.config import CallbackType, Channel
from callcenter.customers.models import Customer, CustomerTitle
from callcenter.db import UnitOfWork, upsert_into
from callcenter.errors import Conflict, NotFound, PermissionDenied
from callcenter.questionnaires.answers import (
    AnswerError,
    AnswerErrorCode,
    ChoiceAnswer,
    InvalidAnswers,
    answers_from_fields,
    asked_questions,
    check_answers,
    parse_answer,
    validate_answers,
)
from callcenter.questionnaires.definitions import Lang, ScriptDefinition, fingerprint
from callcenter.questionnaires.loader import ScriptSet
from callcenter.questionnaires.models import Answer, ScriptVersion
from callcenter.questionnaires.render import (
    AgentInfo,
    CallbackInfo,
    CustomerInfo,
    RenderContext,
    Title,
    render_script,
)
from callcenter.questionnaires.schemas import (
    AnswerRead,
    ChoiceRead,
    QuestionRead,
    ScriptRead,
)
from callcenter.users.models import User, UserRole

CORRECTORS = frozenset({UserRole.SUPERVISOR, UserRole.ADMIN})


class NoScript(Conflict):
    pass


# ---------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------


def sync_scripts(uow: UnitOfWork, *, scripts: ScriptSet, now: datetime) -> dict[CallbackType, int]:
    """Store every loaded script whose content is new as the next version of that script.

    Safe when several processes start at once: a version is identified by its content, and
    a process that loses the race to insert it reads the winner's row.
    """
    with uow:
        session = uow.session
        for definition in scripts.scripts.values():
            _store_version(session, definition, now)
        current = current_versions(session)
        uow.commit()
    return current


def _store_version(session: Session, definition: ScriptDefinition, now: datetime) -> None:
    digest = fingerprint(definition)
    known = session.execute(
        sa.select(col(ScriptVersion.id)).where(
            col(ScriptVersion.script_id) == definition.id,
            col(ScriptVersion.fingerprint) == digest,
        )
    ).first()
    if known:
        return
    latest = session.execute(
        sa.select(sa.func.max(col(ScriptVersion.version))).where(
            col(ScriptVersion.script_id) == definition.id
        )
    ).scalar_one()
    with session.begin_nested():
        table = ScriptVersion.__table__  # type: ignore[attr-defined]
        session.execute(
            upsert_into(session, table)
            .values(
                script_id=definition.id,
                callback_type=definition.type,
                version=(latest or 0) + 1,
                fingerprint=digest,
                definition=definition.model_dump(mode="json", by_alias=True),
                created_at=now,
            )
            .on_conflict_do_nothing()
        )


def current_versions(session: Session) -> dict[CallbackType, int]:
    """The newest script version of each callback type: new callbacks get these."""
    newest = (
        sa.select(
            col(ScriptVersion.callback_type), sa.func.max(col(ScriptVersion.version)).label("v")
        )
        .group_by(col(ScriptVersion.callback_type))
        .subquery()
    )
    stmt = sa.select(col(ScriptVersion.callback_type), col(ScriptVersion.id)).join(
        newest,
        sa.and_(
            newest.c.callback_type == col(ScriptVersion.callback_type),
            newest.c.v == col(ScriptVersion.version),
        ),
    )
    return {CallbackType(row[0]): row[1] for row in session.execute(stmt)}


_parsed: dict[str, ScriptDefinition] = {}  # by fingerprint: a version never changes


def definition_of(
    session: Session, script_version_id: int
) -> tuple[ScriptVersion, ScriptDefinition]:
    version = session.get_one(ScriptVersion, script_version_id)
    definition = _parsed.get(version.fingerprint)
    if definition is None:
        definition = ScriptDefinition.model_validate(version.definition)
        _parsed[version.fingerprint] = definition
    return version, definition


# ---------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------


def _stored(value: Any) -> Any:
    """The JSON form of a parsed answer."""
    if isinstance(value, ChoiceAnswer):
        return {"choice": value.choice, "text": value.text}
    return value


def _all_answers(session: Session, callback_id: int) -> list[Answer]:
    stmt = sa.select(Answer).where(col(Answer.callback_id) == callback_id).order_by(col(Answer.id))
    return list(session.execute(stmt).scalars())


def current_answers(rows: Sequence[Answer]) -> dict[str, Answer]:
    """The answer in force for each question: the original, or its latest correction."""
    replaced = {row.corrects_id for row in rows if row.corrects_id is not None}
    return {row.question_id: row for row in rows if row.id not in replaced}


def _answer_read(row: Answer, corrected_by: int | None, usernames: Mapping[int, str]) -> AnswerRead:
    assert row.id is not None
    return AnswerRead(
        id=row.id,
        question_id=row.question_id,
        value=row.value,
        channel=row.channel,
        recorded_by=usernames.get(row.recorded_by_id) if row.recorded_by_id else None,
        recorded_at=row.recorded_at,
        corrects_id=row.corrects_id,
        reason=row.reason,
        corrected_by_id=corrected_by,
    )


def _answer_reads(session: Session, rows: Sequence[Answer]) -> list[AnswerRead]:
    ids = {row.recorded_by_id for row in rows if row.recorded_by_id is not None}
    usernames: dict[int, str] = {}
    if ids:
        stmt = sa.select(col(User.id), col(User.username)).where(col(User.id).in_(ids))
        usernames = {row[0]: row[1] for row in session.execute(stmt)}
    corrected_by: dict[int, int | None] = {
        row.corrects_id: row.id for row in rows if row.corrects_id is not None
    }
    return [
        _answer_read(row, corrected_by.get(row.id) if row.id is not None else None, usernames)
        for row in rows
    ]


def list_answers(uow: UnitOfWork, *, callback_id: int) -> list[AnswerRead]:
    with uow:
        return _answer_reads(uow.session, _all_answers(uow.session, callback_id))


def _holder_callback(session: Session, callback_id: int, user: User, now: datetime) -> Callback:
    # Imported here: the callbacks service imports this module for the completion check.
    from callcenter.callbacks.service import check_holder

    callback = session.get(Callback, callback_id, with_for_update=True)
    if callback is None:
        raise NotFound(f"callback {callback_id} does not exist")
    check_holder(callback, user, now)
    if callback.script_version_id is None:
        raise NoScript(f"callback {callback_id} has no script")
    return callback


def _partial_errors(
    definition: ScriptDefinition, answers: Mapping[str, object], channel: Channel
) -> tuple[AnswerError, ...]:
    # While the call goes on, unanswered required questions are not an error yet.
    return tuple(
        error
        for error in validate_answers(definition, answers, channel=channel)
        if error.code is not AnswerErrorCode.MISSING
    )


def record_answers(
    uow: UnitOfWork,
    *,
    callback_id: int,
    user: User,
    answers: Mapping[str, object],
    now: datetime,
    channel: Channel = Channel.AGENT,
    actor: Actor | None = None,
) -> list[AnswerRead]:
    """Record answers given on the current call, validated against the callback's script
    version. An answer once recorded is never replaced here (rule SV-4): use a correction.
    Raises InvalidAnswers (each error names its question), Conflict, NotFound."""
    with uow:
        session = uow.session
        callback = _holder_callback(session, callback_id, user, now)
        rows = add_answers(
            session, callback, user=user, answers=answers, now=now, channel=channel, actor=actor
        )
        result = _answer_reads(session, rows)
        uow.commit()
        return result


def add_answers(
    session: Session,
    callback: Callback,
    *,
    user: User,
    answers: Mapping[str, object],
    now: datetime,
    channel: Channel = Channel.AGENT,
    complete: bool = False,
    from_form: bool = False,
    actor: Actor | None = None,
) -> list[Answer]:
    """Insert answers to `callback` (held and locked by the caller) in the caller's
    transaction. With `complete`, the answers with those already recorded must be the whole
    questionnaire: every required question on the path the answers take (every error is
    reported at once). With `from_form`, the answers are a form's strings, typed here by
    each question's kind. Audited in the caller's transaction (rule SV-4; `actor` says from
    where, default `user`). Raises InvalidAnswers, Conflict or NoScript."""
    if callback.script_version_id is None or callback.id is None:
        raise NoScript(f"callback {callback.id} has no script")
    _, definition = definition_of(session, callback.script_version_id)
    if from_form:
        answers = answers_from_fields(
            definition, {k: str(v) for k, v in answers.items()}, channel=channel
        )
    existing = current_answers(_all_answers(session, callback.id))
    again = sorted(set(answers) & set(existing))
    if again:
        raise Conflict(
            f"already recorded: {', '.join(again)}; a recorded answer is kept as it is — "
            "record a correction with the reason instead"
        )
    merged: dict[str, object] = {q: row.value for q, row in existing.items()}
    merged.update(answers)
    errors = (
        validate_answers(definition, merged, channel=channel)
        if complete
        else _partial_errors(definition, merged, channel)
    )
    if errors:
        raise InvalidAnswers(errors)
    rows = []
    for question in definition.questions:  # in script order
        if question.id not in answers:
            continue
        parsed = parse_answer(question, answers[question.id])
        # A null passes the partial check above as "not answered yet"; recorded, it must be
        # an answer.
        if isinstance(parsed, AnswerError):
            raise InvalidAnswers((parsed,))
        row = Answer(
            callback_id=callback.id,
            script_version_id=callback.script_version_id,
            claim_id=callback.claim_id,
            question_id=question.id,
            value=_stored(parsed),
            channel=channel,
            recorded_by_id=user.id,
            recorded_at=now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    if rows:
        audit.record(
            session,
            actor=actor_for(user, actor),
            action=AuditAction.ANSWERS_RECORDED,
            subject_type=SubjectType.CALLBACK,
            subject_id=callback.id,
            now=now,
            detail={
                "questions": [row.question_id for row in rows],
                "answers": [row.id for row in rows],
                "channel": channel,
            },
        )
    return rows


def correct_answer(
    uow: UnitOfWork,
    *,
    answer_id: int,
    user: User,
    value: object,
    reason: str,
    now: datetime,
    actor: Actor | None = None,
) -> AnswerRead:
    """Record a correction of an answer: a new row pointing at it, with who and why; the
    original stays visible (rule SV-4). Only the agent who recorded it, a supervisor or an
    admin may correct, and only the answer currently in force."""
    with uow:
        session = uow.session
        original = session.get(Answer, answer_id)
        if original is None:
            raise NotFound(f"answer {answer_id} does not exist")
        if user.role not in CORRECTORS and original.recorded_by_id != user.id:
            raise PermissionDenied("only the agent who recorded it or a supervisor may correct it")
        rows = _all_answers(session, original.callback_id)
        newer = next((row for row in rows if row.corrects_id == answer_id), None)
        if newer is not None:
            raise Conflict(f"answer {answer_id} was already corrected by answer {newer.id}")
        _, definition = definition_of(session, original.script_version_id)
        merged: dict[str, object] = {q: row.value for q, row in current_answers(rows).items()}
        merged[original.question_id] = value
        errors = _partial_errors(definition, merged, original.channel)
        if errors:
            raise InvalidAnswers(errors)
        parsed = parse_answer(definition.question(original.question_id), value)
        # As above: a correction to null passes the partial check, but is no answer.
        if isinstance(parsed, AnswerError):
            raise InvalidAnswers((parsed,))
        row = Answer(
            callback_id=original.callback_id,
            script_version_id=original.script_version_id,
            claim_id=None,
            question_id=original.question_id,
            value=_stored(parsed),
            channel=original.channel,
            recorded_by_id=user.id,
            recorded_at=now,
            corrects_id=answer_id,
            reason=reason,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor_for(user, actor),
            action=AuditAction.ANSWER_CORRECTED,
            subject_type=SubjectType.ANSWER,
            subject_id=answer_id,
            now=now,
            detail={
                "callback": original.callback_id,
                "question": original.question_id,
                "correction": row.id,
                "reason": reason,
            },
        )
        result = _answer_reads(session, [row])[0]
        uow.commit()
        return result


def check_complete(session: Session, callback: Callback) -> None:
    """Raise InvalidAnswers unless the answers in force cover every required question on the
    path the answers took (rule: a callback is not closed half-asked)."""
    if callback.script_version_id is None or callback.id is None:
        return
    _, definition = definition_of(session, callback.script_version_id)
    answers = {
        q: row.value for q, row in current_answers(_all_answers(session, callback.id)).items()
    }
    check_answers(definition, answers)


# ---------------------------------------------------------------------------------------
# The script on screen
# ---------------------------------------------------------------------------------------


def addressed_as(name: str, title: CustomerTitle | None) -> tuple[str, Title | None]:
    """How the agent addresses the customer: family name and title (王女士), or the full name
    when the title is not known."""
    if title is None:
        return name, None
    family = name.strip()
    if family and "\u4e00" <= family[0] <= "\u9fff" and len(family) <= 4:
        family = family[:2] if len(family) == 4 else family[:1]  # 欧阳娜娜 → 欧阳
    return family, Title(title.value)


def script_for_callback(
    uow: UnitOfWork,
    *,
    callback_id: int,
    user: User,
    lang: Lang,
    now: datetime,
    forbidden: Sequence[str],
    draft: Mapping[str, str] | None = None,
) -> ScriptRead:
    """The callback's script (its frozen version), filled in for the agent who holds it.
    Which questions are asked follows the answers recorded and, when given, a `draft` of
    answers typed in the form but not saved yet."""
    with uow:
        session = uow.session
        callback = _holder_callback(session, callback_id, user, now)
        return script_read(
            session, callback, user=user, lang=lang, now=now, forbidden=forbidden, draft=draft
        )


def script_read(
    session: Session,
    callback: Callback,
    *,
    user: User,
    lang: Lang,
    now: datetime,
    forbidden: Sequence[str],
    draft: Mapping[str, str] | None = None,
) -> ScriptRead:
    """`script_for_callback` in the caller's transaction, for a callback already checked."""
    assert callback.script_version_id is not None and callback.id is not None
    callback_id = callback.id
    version, definition = definition_of(session, callback.script_version_id)
    customer = session.get_one(Customer, callback.customer_id)
    name, title = addressed_as(customer.name, customer.title)
    context = RenderContext(
        agent=AgentInfo(
            name=user.display_name, employee_number=user.employee_number or user.username
        ),
        customer=CustomerInfo(name=name, title=title),
        callback=CallbackInfo(
            type=callback.type,
            order_id=callback.order_id,
            late=now > callback.due_at
            and callback.status in (CallbackStatus.PENDING, CallbackStatus.CLAIMED),
        ),
    )
    rendered = render_script(definition, context, lang)
    rows = _all_answers(session, callback_id)
    in_force: dict[str, object] = {q: row.value for q, row in current_answers(rows).items()}
    if draft:
        in_force.update(answers_from_fields(definition, draft))
    asked = {q.id for q in asked_questions(definition, in_force)}
    return ScriptRead(
        callback_id=callback_id,
        script_id=version.script_id,
        version=version.version,
        type=callback.type,
        lang=lang,
        title=rendered.title,
        opening=list(rendered.opening),
        questions=[
            QuestionRead(
                number=q.number,
                id=q.id,
                kind=q.kind,
                required=q.required,
                agent_only=q.agent_only,
                text=q.text,
                hint=q.hint,
                condition=q.condition,
                asked=q.id in asked,
                depends_on=when.question if (when := definition.question(q.id).when) else None,
                shown_when=list(when.values) if when else [],
                choices=[ChoiceRead(value=c.value, text=c.text, other=c.other) for c in q.choices],
            )
            for q in rendered.questions
        ],
        closing=list(rendered.closing),
        forbidden_phrases=list(forbidden),
        answers=_answer_reads(session, rows),
    )


__all__ = [
    "InvalidAnswers",
    "NoScript",
    "add_answers",
    "check_complete",
    "correct_answer",
    "current_versions",
    "list_answers",
    "script_read",
    "record_answers",
    "script_for_callback",
    "sync_scripts",
]
