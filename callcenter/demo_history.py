"""Two months of closed history for the demo, so that the manager's dashboards have
something to show: callbacks with their attempts and answers, follow-up orders, decided
retention cases with their steps, and the nightly snapshot of every day.

Rows are written as the services leave them once the work is done (records of the past).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.config import CallbackType, Channel, RulesConfig
from callcenter.customers.models import Customer
from callcenter.db import Database
from callcenter.questionnaires.models import Answer
from callcenter.questionnaires.service import current_versions, definition_of
from callcenter.reports.service import snapshot_day
from callcenter.retention.models import RetentionCase, RetentionStep
from callcenter.retention.rules import CaseState, StepOutcome
from callcenter.users.models import User, UserRole
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus

PREFIX = "HIST-"
REGIONS = ("福州", "厦门", "泉州", "漳州", "莆田")
TEAMS = ("一组", "二组")
# How often each reason is given: a few reasons make most of the churn.
REASON_WEIGHTS = {
    "price": 34,
    "competitor_offer": 22,
    "network_quality": 16,
    "moving_house": 12,
    "no_longer_needed": 8,
    "service_attitude": 5,
    "other": 3,
}
_SURVEYED = (CallbackType.INSTALL, CallbackType.REPAIR, CallbackType.COMPLAINT)


def load_history(
    database: Database,
    *,
    now: datetime,
    config: RulesConfig,
    days: int = 60,
    per_day: int = 40,
    sample_answers: Any,
) -> int:
    """Write `days` days of history ending the day before yesterday and snapshot every day
    up to yesterday; the number of callbacks written (0 when it is already there)."""
    zone = ZoneInfo(config.default_timezone)
    today = now.astimezone(zone).date()
    rng = random.Random(95)
    with database.uow() as uow:
        session = uow.session
        if session.execute(
            sa.select(col(Customer.id)).where(col(Customer.external_id).startswith(PREFIX)).limit(1)
        ).first():
            return 0
        agents = list(
            session.execute(
                sa.select(User).where(col(User.role) == UserRole.AGENT).order_by(col(User.id))
            ).scalars()
        )
        for n, agent in enumerate(agents):
            if agent.team is None:
                agent.team = TEAMS[n % len(TEAMS)]
        customers = [
            Customer(
                external_id=f"{PREFIX}{n:04d}",
                name=rng.choice("王李张刘陈杨黄赵吴周")
                + rng.choice(("芳", "伟", "敏", "静", "强")),
                phone=f"+86139{n:08d}",
                timezone=config.default_timezone,
                region=rng.choice(REGIONS),
                info_as_of=now,
                created_at=now,
            )
            for n in range(300)
        ]
        session.add_all(customers)
        session.flush()
        versions = current_versions(session)
        definitions = {kind: definition_of(session, v)[1] for kind, v in versions.items()}
        written = 0
        for back in range(days + 1, 1, -1):
            day = today - timedelta(days=back)
            for _ in range(per_day):
                _callback(
                    session,
                    rng,
                    day,
                    zone,
                    agents,
                    customers,
                    versions,
                    definitions,
                    sample_answers,
                )
                written += 1
            _follow_ups(session, rng, day, zone, agents)
            _retention(session, rng, day, zone, customers, config)
        uow.commit()
    for back in range(days + 1, 0, -1):
        day = today - timedelta(days=back)
        snapshot_day(database.uow(), day=day, zone=zone, now=now)
    return written


def _at(day: date, zone: ZoneInfo, hour: float) -> datetime:
    local = datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=hour)
    return local.astimezone(UTC)


def _callback(
    session: Session,
    rng: random.Random,
    day: date,
    zone: ZoneInfo,
    agents: list[User],
    customers: list[Customer],
    versions: dict[CallbackType, int],
    definitions: dict[CallbackType, Any],
    sample_answers: Any,
) -> None:
    kind = rng.choices(_SURVEYED, weights=(5, 4, 2))[0]
    ivr = kind is CallbackType.REPAIR and rng.random() < 0.4
    closed_at = _at(day, zone, rng.uniform(8.6, 20.4))
    status = rng.choices(
        (
            CallbackStatus.COMPLETED,
            CallbackStatus.FAILED,
            CallbackStatus.EXPIRED,
            CallbackStatus.CANCELLED,
        ),
        weights=(84, 8, 5, 3),
    )[0]
    # Most are closed before their target; a few after it, within the hard limit.
    due_at = closed_at + timedelta(
        hours=rng.uniform(-6, 20) if rng.random() < 0.12 else rng.uniform(0.5, 20)
    )
    if status is CallbackStatus.EXPIRED:
        due_at = closed_at - timedelta(hours=24)
    tries = 1 if status is CallbackStatus.COMPLETED and rng.random() < 0.6 else rng.randint(1, 3)
    if status in (CallbackStatus.EXPIRED, CallbackStatus.CANCELLED):
        tries = 0
    agent = None if ivr else rng.choice(agents)
    callback = Callback(
        type=kind,
        status=status,
        channel=Channel.IVR if ivr else Channel.AGENT,
        customer_id=rng.choice(customers).id or 0,
        order_id=f"{PREFIX}{day.isoformat()}-{rng.randrange(10**9)}",
        event_id=f"{PREFIX}{day.isoformat()}-{rng.randrange(10**9)}",
        script_version_id=versions.get(kind),
        anchor_at=due_at - timedelta(hours=24),
        available_at=due_at - timedelta(hours=24),
        due_at=due_at,
        hard_due_at=due_at + timedelta(hours=24),
        attempt_count=tries,
        closed_at=closed_at,
        created_at=due_at - timedelta(hours=24),
        updated_at=closed_at,
    )
    session.add(callback)
    session.flush()
    for number in range(1, tries + 1):
        last = number == tries
        answered = last and status is CallbackStatus.COMPLETED
        session.add(
            Attempt(
                callback_id=callback.id or 0,
                number=number,
                agent_id=agent.id if agent else None,
                channel=callback.channel,
                outcome=AttemptOutcome.ANSWERED
                if answered
                else rng.choice((AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY)),
                recorded_at=closed_at - timedelta(hours=2.5 * (tries - number)),
            )
        )
    if status is CallbackStatus.COMPLETED and kind in definitions:
        for question, value in sample_answers(definitions[kind], rng).items():
            session.add(
                Answer(
                    callback_id=callback.id or 0,
                    script_version_id=callback.script_version_id or 0,
                    question_id=question,
                    value=value,
                    channel=callback.channel,
                    recorded_by_id=agent.id if agent else None,
                    recorded_at=closed_at,
                )
            )


def _follow_ups(
    session: Session, rng: random.Random, day: date, zone: ZoneInfo, agents: list[User]
) -> None:
    for _ in range(rng.randint(2, 5)):
        raised = _at(day, zone, rng.uniform(9, 20))
        late = rng.random() < 0.03
        handed = raised + timedelta(minutes=rng.uniform(16, 60) if late else rng.uniform(1, 15))
        session.add(
            WorkOrder(
                kind=WorkOrderKind.FOLLOW_UP,
                status=WorkOrderStatus.HANDED_OVER,
                customer_id=None,
                callback_id=session.execute(
                    sa.select(col(Callback.id))
                    .where(col(Callback.order_id).startswith(f"{PREFIX}{day.isoformat()}"))
                    .limit(1)
                ).scalar_one(),
                subject="跟进：客户反映的问题需装维处理",
                team="装维",
                created_by_id=rng.choice(agents).id,
                created_at=raised,
                due_at=raised + timedelta(minutes=15),
                handed_over_at=handed,
            )
        )


def _retention(
    session: Session,
    rng: random.Random,
    day: date,
    zone: ZoneInfo,
    customers: list[Customer],
    config: RulesConfig,
) -> None:
    codes = [r.code for r in config.retention.reasons if r.code in REASON_WEIGHTS]
    for _ in range(rng.randint(2, 6)):
        customer = rng.choice(customers)
        decided = _at(day, zone, rng.uniform(9, 20))
        churn = Callback(
            type=CallbackType.CHURN,
            status=CallbackStatus.COMPLETED,
            channel=Channel.AGENT,
            customer_id=customer.id or 0,
            order_id=f"{PREFIX}churn-{rng.randrange(10**9)}",
            event_id=f"{PREFIX}churn-{rng.randrange(10**9)}",
            anchor_at=decided - timedelta(days=3),
            available_at=decided - timedelta(days=3),
            due_at=decided - timedelta(days=3),
            hard_due_at=decided - timedelta(days=3) + timedelta(hours=3),
            attempt_count=1,
            closed_at=decided - timedelta(days=3),
            created_at=decided - timedelta(days=3),
            updated_at=decided - timedelta(days=3),
        )
        session.add(churn)
        session.flush()
        reason = rng.choices(codes, weights=[REASON_WEIGHTS[c] for c in codes])[0]
        # Level 1 keeps ~35 %, level 2 ~25 % of the rest, level 3 ~15 % of what is left.
        level, state = 1, CaseState.RETAINED
        for at_level, keep in ((1, 0.35), (2, 0.25), (3, 0.15)):
            level = at_level
            if rng.random() < keep:
                state = CaseState.RETAINED
                break
            state = CaseState.LOST
        case = RetentionCase(
            callback_id=churn.id or 0,
            customer_id=customer.id or 0,
            order_id=churn.order_id,
            state=state,
            level=level,
            level_since=decided,
            due_at=decided,
            reason_code=reason,
            closed_at=decided,
            created_at=decided - timedelta(days=3),
            updated_at=decided,
        )
        session.add(case)
        session.flush()
        for step_level in range(1, level + 1):
            final = step_level == level
            offers = [o for o in config.retention.offers if o.lowest_level <= step_level]
            offer = rng.choice(offers) if offers and rng.random() < 0.8 else None
            kept = final and state is CaseState.RETAINED
            lost = final and state is CaseState.LOST
            back = lost and rng.random() < 0.3
            session.add(
                RetentionStep(
                    case_id=case.id or 0,
                    level=step_level,
                    outcome=StepOutcome.RETAINED
                    if kept
                    else StepOutcome.LOST
                    if lost
                    else StepOutcome.ESCALATED,
                    escalated_to=None if final else step_level + 1,
                    reason_code=reason,
                    reason_text="客户原话" if reason == "other" else None,
                    offer_code=offer.code if offer else None,
                    offer_cost_yuan=offer.cost_yuan if offer else None,
                    offer_accepted=(kept if offer else None),
                    win_back=back if lost else None,
                    win_back_on=day + timedelta(days=rng.randint(30, 200)) if back else None,
                    recorded_at=decided - timedelta(hours=2 * (level - step_level)),
                )
            )
