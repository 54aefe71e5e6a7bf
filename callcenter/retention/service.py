"""Retention use cases (rules CB-6, RT-1..RT-4): each level's queue, one case with its whole
history, the offers a user may make, recording a step; and the SLA watch's retention steps
(escalating a level 1 that ended unreached, urging overdue levels, rule WO-4).

The case is opened with its churn callback at intake (`callcenter/callbacks/service.py`).
Level 1 is the churn call itself: its step is recorded by the agent who holds the claim on the
churn callback, together with the answered attempt on it (`record_attempt` with a
`retention_step`), so that an answered churn call always carries its level-1 record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.audit import service as audit
from callcenter.audit.rules import Actor, AuditAction, SubjectType, actor_for
from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import TERMINAL, AttemptOutcome, CallbackStatus, deadlines_for
from callcenter.callbacks.schemas import AttemptCreate
from callcenter.callbacks.service import callback_views, customer_read, record_attempt
from callcenter.config import CallbackType, OfferSpec, ReasonSpec, RulesConfig
from callcenter.customers.models import Customer, DoNotCall
from callcenter.db import UnitOfWork, upsert_into
from callcenter.errors import Conflict, InvalidFields, NotFound
from callcenter.questionnaires.service import current_versions
from callcenter.retention import rules
from callcenter.retention.models import RetentionCase, RetentionStep
from callcenter.retention.rules import FIRST_LEVEL, CaseState, StepFields, StepOutcome
from callcenter.retention.schemas import (
    CaseDetail,
    CaseFilters,
    CasePage,
    CaseRead,
    CatalogueOffer,
    CatalogueRead,
    OfferRead,
    ReasonRead,
    StepCreate,
    StepRead,
)
from callcenter.sla.rules import BRANCH
from callcenter.users.models import User
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus

# ---------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------


def _reason_read(reason: ReasonSpec) -> ReasonRead:
    return ReasonRead(code=reason.code, zh=reason.zh, en=reason.en, needs_text=reason.needs_text)


def _offer_read(offer: OfferSpec) -> OfferRead:
    return OfferRead(
        code=offer.code,
        zh=offer.zh,
        en=offer.en,
        kind=offer.kind,
        cost_yuan=offer.cost_yuan,
        lowest_level=offer.lowest_level,
    )


def catalogue(*, user: User, config: RulesConfig) -> CatalogueRead:
    """The reasons taxonomy and every offer, each marked whether `user` may make it."""
    level = rules.acting_level(user.role)
    return CatalogueRead(
        acting_level=level,
        reading_level=rules.reading_level(user.role),
        reasons=[_reason_read(reason) for reason in config.retention.reasons],
        offers=[
            CatalogueOffer(
                **_offer_read(offer).model_dump(),
                allowed=level is not None and offer.lowest_level <= level,
            )
            for offer in config.retention.offers
        ],
    )


def offers_for_user(*, user: User, config: RulesConfig) -> list[OfferRead]:
    """The offers `user` may make: those up to the level of their role (rules RT-1..RT-3)."""
    level = rules.acting_level(user.role)
    return [_offer_read(offer) for offer in rules.offers_for(level, config.retention)]


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def _on_list() -> sa.ColumnElement[bool]:
    return (
        sa.select(sa.literal(1)).where(col(DoNotCall.phone) == col(Customer.phone)).exists()
    ).label("do_not_call")


def _select_cases() -> sa.Select[*tuple[Any, ...]]:
    return sa.select(RetentionCase, Customer, _on_list()).join(
        Customer, col(Customer.id) == col(RetentionCase.customer_id)
    )


def _case_read(case: RetentionCase, customer: Customer, on_list: bool, now: datetime) -> CaseRead:
    assert case.id is not None
    return CaseRead(
        id=case.id,
        callback_id=case.callback_id,
        customer=customer_read(customer),
        do_not_call=bool(on_list),
        order_id=case.order_id,
        state=case.state,
        level=case.level,
        level_since=case.level_since,
        due_at=case.due_at,
        overdue=case.state is CaseState.OPEN and now > case.due_at,
        reason_code=case.reason_code,
        closed_at=case.closed_at,
        win_back_callback_id=case.win_back_callback_id,
        created_at=case.created_at,
    )


def _visible_levels(user: User, asked: Sequence[int]) -> list[int]:
    top = rules.reading_level(user.role)
    for level in asked:
        rules.check_may_read(user.role, level)
    if top is None:
        rules.check_may_read(user.role, FIRST_LEVEL)  # raises: the role reads no case
    assert top is not None
    return list(asked) or list(range(FIRST_LEVEL, top + 1))


def list_cases(
    uow: UnitOfWork,
    *,
    user: User,
    filters: CaseFilters,
    now: datetime,
    limit: int = 50,
    offset: int = 0,
) -> CasePage:
    """Cases of the levels `user` may read (each queue: that role and above), due first.
    Asking for a level above the user's raises `LevelForbidden`."""
    levels = _visible_levels(user, filters.level)
    conditions: list[sa.ColumnElement[bool]] = [col(RetentionCase.level).in_(levels)]
    if filters.state:
        conditions.append(col(RetentionCase.state).in_(filters.state))
    if filters.overdue is not None:
        late = sa.and_(col(RetentionCase.state) == CaseState.OPEN, col(RetentionCase.due_at) < now)
        conditions.append(late if filters.overdue else sa.not_(late))
    if filters.callback_id is not None:
        conditions.append(col(RetentionCase.callback_id) == filters.callback_id)
    if filters.customer_id is not None:
        conditions.append(col(Customer.external_id) == filters.customer_id)
    with uow:
        session = uow.session
        total = session.execute(
            sa.select(sa.func.count())
            .select_from(RetentionCase)
            .join(Customer, col(Customer.id) == col(RetentionCase.customer_id))
            .where(*conditions)
        ).scalar_one()
        stmt = (
            _select_cases()
            .where(*conditions)
            .order_by(col(RetentionCase.due_at), col(RetentionCase.id))
            .limit(limit)
            .offset(offset)
        )
        items = [_case_read(case, cu, dnc, now) for case, cu, dnc in session.execute(stmt)]
    return CasePage(items=items, total=total, limit=limit, offset=offset)


def list_queue(
    uow: UnitOfWork,
    *,
    user: User,
    level: int,
    now: datetime,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> CasePage:
    """One level's queue: its open cases, due first. Level 1 for agents and above, level 2
    for supervisors and above, level 3 for the retention lead; managers and admins read all."""
    rules.check_may_read(user.role, level)
    filters = CaseFilters(state=[CaseState.OPEN], level=[level], overdue=overdue)
    return list_cases(uow, user=user, filters=filters, now=now, limit=limit, offset=offset)


def _step_reads(session: Session, case_id: int, config: RulesConfig) -> list[StepRead]:
    stmt = (
        sa.select(RetentionStep, col(User.username))
        .outerjoin(User, col(User.id) == col(RetentionStep.recorded_by_id))
        .where(col(RetentionStep.case_id) == case_id)
        .order_by(col(RetentionStep.level), col(RetentionStep.id))
    )
    reads = []
    for step, username in session.execute(stmt):
        assert step.id is not None
        reason = config.retention.reason(step.reason_code) if step.reason_code else None
        offer = config.retention.offer(step.offer_code) if step.offer_code else None
        reads.append(
            StepRead(
                id=step.id,
                level=step.level,
                outcome=step.outcome,
                escalated_to=step.escalated_to,
                reason=_reason_read(reason) if reason else None,
                reason_text=step.reason_text,
                offer=_offer_read(offer) if offer else None,
                offer_code=step.offer_code,
                offer_cost_yuan=step.offer_cost_yuan,
                offer_accepted=step.offer_accepted,
                customer_answer=step.customer_answer,
                win_back=step.win_back,
                win_back_on=step.win_back_on,
                win_back_callback_id=step.win_back_callback_id,
                attempt_id=step.attempt_id,
                recorded_by=username,
                recorded_at=step.recorded_at,
                note=step.note,
            )
        )
    return reads


def _detail(
    session: Session,
    case_id: int,
    *,
    user: User,
    now: datetime,
    config: RulesConfig,
    check_read: bool = True,
) -> CaseDetail:
    row = session.execute(_select_cases().where(col(RetentionCase.id) == case_id)).one_or_none()
    if row is None:
        raise NotFound(f"retention case {case_id} does not exist")
    case, customer, on_list = row
    if check_read:
        rules.check_may_read(user.role, case.level)
    views = callback_views(
        session,
        [i for i in (case.callback_id, case.win_back_callback_id) if i is not None],
        now=now,
    )
    urging = session.execute(
        sa.select(col(WorkOrder.id))
        .where(col(WorkOrder.urges_retention_case_id) == case_id)
        .order_by(col(WorkOrder.id))
    ).scalars()
    is_open = case.state is CaseState.OPEN
    allow_skip = config.retention.allow_skip_levels
    return CaseDetail(
        **_case_read(case, customer, on_list, now).model_dump(),
        steps=_step_reads(session, case_id, config),
        churn_callback=views[case.callback_id],
        win_back_callback=views.get(case.win_back_callback_id)
        if case.win_back_callback_id
        else None,
        urging_order_ids=list(urging),
        allowed_outcomes=list(rules.allowed_outcomes(case.level, allow_skip=allow_skip))
        if is_open
        else [],
        escalation_targets=list(rules.escalation_targets(case.level, allow_skip=allow_skip))
        if is_open
        else [],
    )


def get_case(
    uow: UnitOfWork, *, case_id: int, user: User, now: datetime, config: RulesConfig
) -> CaseDetail:
    """One case with its whole history (every step, the churn and win-back callbacks, its
    urging orders) and what its level may record now. Readable by the roles that read its
    level."""
    with uow:
        return _detail(uow.session, case_id, user=user, now=now, config=config)


def case_for_callback(
    uow: UnitOfWork, *, callback_id: int, user: User, now: datetime, config: RulesConfig
) -> CaseDetail:
    """The case a churn callback opened (what the agent on the churn call records against)."""
    with uow:
        session = uow.session
        case_id = session.execute(
            sa.select(col(RetentionCase.id)).where(col(RetentionCase.callback_id) == callback_id)
        ).scalar_one_or_none()
        if case_id is None:
            raise NotFound(f"callback {callback_id} has no retention case")
        return _detail(session, case_id, user=user, now=now, config=config)


# ---------------------------------------------------------------------------------------
# Recording a step
# ---------------------------------------------------------------------------------------


def record_step(
    uow: UnitOfWork,
    *,
    case_id: int,
    user: User,
    step: StepCreate,
    now: datetime,
    config: RulesConfig,
    actor: Actor | None = None,
) -> CaseDetail:
    """Record what the case's current level did (rule RT-4; inserted, never updated, SV-4)
    and move the case: retained, escalated to the next level (due the configured time after
    this outcome), or lost (with a win-back callback on the day the customer named).

    Level 1 is the churn call: only the agent holding the claim on the churn callback records
    it, and the answered attempt on the callback is recorded with it (which closes the
    callback; its questionnaire must be complete). Raises NotFound, LevelForbidden,
    OfferAboveLevel (403), IllegalMove, NotYourClaim, LeaseExpired (409), InvalidFields,
    InvalidAnswers (422). Audited with the attempt (level 1) or alone (rule SV-4; `actor`
    default `user`)."""
    actor = actor_for(user, actor)
    with uow:
        case = uow.session.get(RetentionCase, case_id)
        if case is None:
            raise NotFound(f"retention case {case_id} does not exist")
        at_level_one = case.state is CaseState.OPEN and case.level == FIRST_LEVEL
        callback_id = case.callback_id
    if at_level_one and step.level == FIRST_LEVEL:
        # rule RT-1: the first agent who handles the churn callback records level 1.
        record_attempt(
            uow,
            callback_id=callback_id,
            agent=user,
            attempt=AttemptCreate(outcome=AttemptOutcome.ANSWERED),
            now=now,
            config=config,
            retention_step=step,
            actor=actor,
        )
    else:
        with uow:
            session = uow.session
            locked = _lock_case(session, case_id)
            _apply_step(session, locked, step, user=user, now=now, config=config, actor=actor)
            uow.commit()
    with uow:
        # Shown to whoever recorded it, also when it went up to a level above their queue.
        return _detail(uow.session, case_id, user=user, now=now, config=config, check_read=False)


def _lock_case(session: Session, case_id: int) -> RetentionCase:
    case: RetentionCase | None = session.execute(
        sa.select(RetentionCase).where(col(RetentionCase.id) == case_id).with_for_update()
    ).scalar_one_or_none()
    if case is None:
        raise NotFound(f"retention case {case_id} does not exist")
    return case


def _apply_step(
    session: Session,
    case: RetentionCase,
    step: StepCreate,
    *,
    user: User,
    now: datetime,
    config: RulesConfig,
    actor: Actor,
    attempt_id: int | None = None,
) -> RetentionStep:
    """Check and record one person's step on a locked case, in the caller's transaction,
    with its audit row (rule SV-4): the offer made and the customer's answer are in it."""
    assert case.id is not None
    if case.state is not CaseState.OPEN:
        raise rules.IllegalMove(
            f"retention case {case.id} is closed ({case.state}); a closed case takes no more steps"
        )
    if step.level != case.level:
        raise rules.IllegalMove(
            f"retention case {case.id} is at level {case.level}, not {step.level}; "
            "reload it before recording"
        )
    rules.check_may_act(user.role, case.level)
    customer = session.get_one(Customer, case.customer_id)
    zone = ZoneInfo(customer.timezone)
    fields = StepFields(
        outcome=step.outcome,
        reason_code=step.reason_code,
        reason_text=step.reason_text,
        offer_code=step.offer_code,
        offer_accepted=step.offer_accepted,
        escalate_to=step.escalate_to,
        win_back=step.win_back,
        win_back_on=step.win_back_on,
    )
    problems = rules.step_problems(
        fields, today=rules.local_today(now, zone), rules=config.retention
    )
    if problems:
        raise InvalidFields(problems)
    offer = config.retention.offer(step.offer_code) if step.offer_code else None
    if offer is not None:
        rules.check_offer(offer, rules.acting_level(user.role))  # rules RT-1..RT-3
    move = rules.next_move(
        case.state,
        case.level,
        step.outcome,
        escalate_to=step.escalate_to,
        allow_skip=config.retention.allow_skip_levels,
    )
    win_back_id = None
    if step.outcome is StepOutcome.LOST and step.win_back and step.win_back_on is not None:
        win_back_id = _create_win_back(session, case, customer, step, now=now, config=config)
    row = RetentionStep(
        case_id=case.id,
        level=case.level,
        outcome=step.outcome,
        escalated_to=move.level if step.outcome is StepOutcome.ESCALATED else None,
        reason_code=step.reason_code,
        reason_text=step.reason_text,
        offer_code=step.offer_code,
        offer_cost_yuan=offer.cost_yuan if offer else None,
        offer_accepted=step.offer_accepted,
        customer_answer=step.customer_answer,
        win_back=step.win_back,
        win_back_on=step.win_back_on,
        win_back_callback_id=win_back_id,
        attempt_id=attempt_id,
        recorded_by_id=user.id,
        recorded_at=now,
    )
    session.add(row)
    case.state = move.state
    case.reason_code = step.reason_code
    case.updated_at = now
    if move.closed:
        case.closed_at = now  # rule CB-6: never closed without a reason (checked above)
        case.win_back_callback_id = win_back_id
    else:
        case.level = move.level
        case.level_since = now
        case.due_at = rules.level_due_at(move.level, since=now, rules=config.retention)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.RETENTION_STEP_RECORDED,
        subject_type=SubjectType.RETENTION_CASE,
        subject_id=case.id,
        now=now,
        detail={
            "step": row.id,
            "level": row.level,
            "outcome": row.outcome,
            "escalated_to": row.escalated_to,
            "reason_code": row.reason_code,
            "offer_code": row.offer_code,
            "offer_cost_yuan": row.offer_cost_yuan,
            "offer_accepted": row.offer_accepted,
            "attempt": attempt_id,
            "win_back_callback": win_back_id,
        },
    )
    return row


def _create_win_back(
    session: Session,
    case: RetentionCase,
    customer: Customer,
    step: StepCreate,
    *,
    now: datetime,
    config: RulesConfig,
) -> int:
    """rule RT-4: a lost customer who might come back is called on the day they named, from
    the first calling window of that day (rule CB-5)."""
    assert step.win_back_on is not None
    zone = ZoneInfo(customer.timezone)
    opening = rules.win_back_opening(step.win_back_on, zone, config.windows)
    deadlines = deadlines_for(CallbackType.WIN_BACK, opening, zone, config)
    callback = Callback(
        type=CallbackType.WIN_BACK,
        status=CallbackStatus.PENDING,
        channel=config.rule_for(CallbackType.WIN_BACK).channel,
        customer_id=case.customer_id,
        order_id=case.order_id,
        # Not an order-system event: named after the case that asked for it.
        event_id=f"retention-case-{case.id}",
        script_version_id=current_versions(session).get(CallbackType.WIN_BACK),
        anchor_at=deadlines.anchor_at,
        available_at=deadlines.available_at,
        due_at=deadlines.due_at,
        hard_due_at=deadlines.hard_due_at,
        created_at=now,
        updated_at=now,
    )
    session.add(callback)
    session.flush()
    assert callback.id is not None
    return callback.id


def after_attempts(
    session: Session,
    recorded: Sequence[tuple[Attempt, Callback]],
    *,
    agent: User,
    step: StepCreate | None,
    now: datetime,
    config: RulesConfig,
    actor: Actor | None = None,
) -> None:
    """What attempts on churn callbacks do to their retention cases, in the attempt's
    transaction (called by `record_attempt`; the first pair is the callback the attempt was
    recorded on, the others its claim siblings):

    - with `step`: the answered churn call records its level-1 step (rule RT-1);
    - an answered churn call without it is refused: level 1 is never left unrecorded;
    - a churn callback closed without an answer (refused, wrong number, do not call, attempts
      used up) escalates its case to level 2 (rule RT-2), as the SLA watch does when one
      expires.
    """
    if step is not None:
        attempt, primary = recorded[0]
        if primary.type is not CallbackType.CHURN:
            raise Conflict(
                f"callback {primary.id} is a {primary.type} callback; a retention step goes "
                "with a churn callback"
            )
        if attempt.outcome is not AttemptOutcome.ANSWERED:
            raise Conflict("the level-1 retention step goes with an answered attempt")
    churn = [(a, cb) for a, cb in recorded if cb.type is CallbackType.CHURN]
    if not churn:
        return
    cases = {
        case.callback_id: case
        for case in session.execute(
            sa.select(RetentionCase)
            .where(
                col(RetentionCase.callback_id).in_([cb.id for _, cb in churn]),
                col(RetentionCase.state) == CaseState.OPEN,
                col(RetentionCase.level) == FIRST_LEVEL,
            )
            .with_for_update()
        ).scalars()
    }
    for index, (attempt, callback) in enumerate(churn):
        case = cases.get(callback.id)
        is_primary = index == 0 and callback is recorded[0][1]
        if step is not None and is_primary:
            if case is None:
                raise Conflict(f"callback {callback.id} has no retention case waiting for level 1")
            _apply_step(
                session,
                case,
                step,
                user=agent,
                now=now,
                config=config,
                actor=actor_for(agent, actor),
                attempt_id=attempt.id,
            )
        elif case is None:
            continue
        elif attempt.outcome is AttemptOutcome.ANSWERED:
            raise Conflict(
                f"callback {callback.id} is a churn call: record its level-1 retention step "
                f"(POST /api/v1/retention/cases/{case.id}/steps), which records the answered "
                "attempt with it (rules CB-6, RT-1)"
            )
        elif callback.status in TERMINAL:
            _escalate_unreached(
                session, [(case, callback.status, callback.close_reason)], now, config
            )


def _escalate_unreached(
    session: Session,
    cases: Sequence[tuple[RetentionCase, CallbackStatus, str | None]],
    now: datetime,
    config: RulesConfig,
) -> None:
    """rule RT-2: a churn callback that ended without the customer's answer leaves level 1
    without a record; the case goes to the supervisors, due the configured time from now.
    The system records why (a step without reason: nobody learned it yet)."""
    target = FIRST_LEVEL + 1
    due = rules.level_due_at(target, since=now, rules=config.retention)
    for case, status, reason in cases:
        session.add(
            RetentionStep(
                case_id=case.id,  # type: ignore[arg-type]
                level=FIRST_LEVEL,
                outcome=StepOutcome.ESCALATED,
                escalated_to=target,
                recorded_at=now,
                note=f"level 1 ended without the customer's answer: the churn callback is "
                f"{status}" + (f" ({reason})" if reason else ""),
            )
        )
        case.level = target
        case.level_since = now
        case.due_at = due
        case.updated_at = now
    session.flush()


# ---------------------------------------------------------------------------------------
# The SLA watch's retention steps (each a batch in the caller's transaction)
# ---------------------------------------------------------------------------------------


def escalate_unreached(uow: UnitOfWork, *, now: datetime, config: RulesConfig, limit: int) -> int:
    """Escalate up to `limit` level-1 cases whose churn callback closed without the
    customer's answer (above all: expired at its hard limit) to level 2 (rule RT-2)."""
    session = uow.session
    stmt = (
        sa.select(RetentionCase, col(Callback.status), col(Callback.close_reason))
        .join(Callback, col(Callback.id) == col(RetentionCase.callback_id))
        .where(
            col(RetentionCase.state) == CaseState.OPEN,
            col(RetentionCase.level) == FIRST_LEVEL,
            col(Callback.status).in_(list(TERMINAL)),
        )
        .order_by(col(RetentionCase.id))
        .limit(limit)
        .with_for_update(of=RetentionCase, skip_locked=True)
    )
    rows = [
        (case, CallbackStatus(status), reason) for case, status, reason in session.execute(stmt)
    ]
    _escalate_unreached(session, rows, now, config)
    return len(rows)


def urge_overdue_cases(uow: UnitOfWork, *, now: datetime, config: RulesConfig, limit: int) -> int:
    """rule WO-4: each open case at level 2 or 3 past its due time gets one urging order per
    level, to the branch that owns the churn flow (level 1 is urged as its churn callback)."""
    session = uow.session
    urged = (
        sa.select(sa.literal(1))
        .where(
            col(WorkOrder.urges_retention_case_id) == col(RetentionCase.id),
            col(WorkOrder.urges_retention_level) == col(RetentionCase.level),
        )
        .exists()
    )
    stmt = (
        sa.select(RetentionCase)
        .where(
            col(RetentionCase.state) == CaseState.OPEN,
            col(RetentionCase.level) > FIRST_LEVEL,
            col(RetentionCase.due_at) < now,
            ~urged,
        )
        .order_by(col(RetentionCase.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    cases = list(session.execute(stmt).scalars())
    if not cases:
        return 0
    orders = [
        {
            "kind": WorkOrderKind.URGING,
            "status": WorkOrderStatus.OPEN,
            "callback_id": case.callback_id,
            "customer_id": case.customer_id,
            "subject": f"催办：挽留工单 #{case.id} 第{case.level}级挽留已超时",
            "details": f"应于 {case.due_at.isoformat()} 前完成第{case.level}级挽留，尚未记录结果。",
            "team": BRANCH,
            "created_at": now,
            "due_at": now + config.sla.urging_within,
            "urges_retention_case_id": case.id,
            "urges_retention_level": case.level,
        }
        for case in cases
    ]
    table = WorkOrder.__table__  # type: ignore[attr-defined]
    inserted = session.execute(
        upsert_into(session, table)
        .values(orders)
        .on_conflict_do_nothing(
            index_elements=["urges_retention_case_id", "urges_retention_level"],
            index_where=table.c.urges_retention_case_id.is_not(None),
        )
        .returning(table.c.id)
    ).all()
    return len(inserted)
