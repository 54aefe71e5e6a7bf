"""A hand-made day of history whose report figures are known (rules KPI-1..KPI-3, RT-1..RT-4).

The day is 2026-11-24 in Shanghai, the day before the tests' clock (`IN_WINDOW`), so that it
is the last day of the dashboards' default period. Rows are written as the services leave
them; the nightly snapshot then reads them like any other day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.config import CallbackType, Channel
from callcenter.customers.models import Customer
from callcenter.db import Database
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.questionnaires.models import Answer
from callcenter.questionnaires.service import current_versions, sync_scripts
from callcenter.reports.service import snapshot_day
from callcenter.retention.models import RetentionCase, RetentionStep
from callcenter.retention.rules import CaseState, StepOutcome
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_user
from callcenter.workorders.models import WorkOrder, WorkOrderKind, WorkOrderStatus
from tests.factories import INSTALL_ANSWERS

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)
WIN_BACK_ON = DAY + timedelta(days=90)
PHONE = "+8613812345678"  # every customer's number: it must never appear in a report


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# What the day's figures are, worked out by hand from the rows below.
EXPECTED: dict[str, Any] = {
    "timeliness": (3, 5),  # 6 closed, 1 cancelled; #1, #3 (failed in time), #6 in time
    "satisfaction": (2, 3),  # 3 completed, #2 dissatisfied
    "transfer_timeliness": (2, 4),  # 4 follow-ups: 2 in time, 1 late, 1 never handed over
    "within_target": (2, 3),
    "within_hard_limit": (3, 3),
    "attempts_per_completed": (4, 3),  # 1 + 2 + 1 attempts over 3 completed
    "ivr_share": (1, 3),
    "answer_rate": (3, 7),
    "hours": {9: (2, 0), 10: (2, 1), 11: (1, 1), 14: (1, 1), 15: (1, 0)},
    "pareto": [("price", 3, 0.75, 0.75), ("competitor_offer", 1, 0.25, 1.0)],
    "levels": [(1, 4, 1, 0), (2, 3, 1, 0), (3, 2, 0, 2)],  # level, reached, retained, lost
    "offers": {
        "discount_10_6m": (1, 1, 60),
        "speed_up_6m": (1, 0, 0),
        "free_month_1": (1, 1, 100),
        "discount_20_12m": (1, 0, 0),
    },
}


def _user(database: Database, username: str, team: str, now: datetime) -> User:
    user = create_user(database.uow(), username=username, role=UserRole.AGENT, now=now)
    with database.uow() as uow:
        uow.session.execute(sa.update(User).where(col(User.id) == user.id).values(team=team))
        uow.commit()
    user.team = team
    return user


def load_day(database: Database, *, snapshot: bool = True) -> dict[str, int]:
    """Write the day's rows (and take its snapshot); the ids of what was made."""
    now = at(8)
    sync_scripts(database.uow(), scripts=shipped_scripts(), now=now - timedelta(days=2))
    li = _user(database, "li", "一组", now - timedelta(days=2))
    ids: dict[str, int] = {"li": li.id or 0}
    with database.uow() as uow:
        session = uow.session
        versions = current_versions(session)
        customers = []
        for n, region in enumerate(["福州", "福州", "福州", "厦门", "福州", "福州"], start=1):
            customer = Customer(
                external_id=f"RPT-{n}",
                name=f"客户{n}",
                phone=PHONE,
                timezone="Asia/Shanghai",
                region=region,
                info_as_of=now,
                created_at=now,
            )
            session.add(customer)
            customers.append(customer)
        session.flush()

        def callback(
            kind: CallbackType,
            status: CallbackStatus,
            *,
            closed: datetime,
            due: datetime,
            hard: datetime,
            attempts: int = 0,
            channel: Channel = Channel.AGENT,
            customer: Customer = customers[0],
        ) -> Callback:
            row = Callback(
                type=kind,
                status=status,
                channel=channel,
                customer_id=customer.id or 0,
                order_id=f"ORD-{kind}-{closed.isoformat()}",
                event_id=f"evt-{kind}-{closed.isoformat()}",
                script_version_id=versions.get(kind),
                anchor_at=due - timedelta(hours=24),
                available_at=due - timedelta(hours=24),
                due_at=due,
                hard_due_at=hard,
                attempt_count=attempts,
                closed_at=closed,
                created_at=due - timedelta(hours=24),
                updated_at=closed,
            )
            session.add(row)
            session.flush()
            return row

        def attempt(
            cb: Callback,
            number: int,
            outcome: AttemptOutcome,
            when: datetime,
            agent: User | None = li,
            channel: Channel = Channel.AGENT,
        ) -> None:
            session.add(
                Attempt(
                    callback_id=cb.id or 0,
                    number=number,
                    agent_id=agent.id if agent else None,
                    channel=channel,
                    outcome=outcome,
                    recorded_at=when,
                )
            )

        def answers(cb: Callback, values: dict[str, Any], when: datetime) -> None:
            for question, value in values.items():
                session.add(
                    Answer(
                        callback_id=cb.id or 0,
                        script_version_id=cb.script_version_id or 0,
                        question_id=question,
                        value=value,
                        channel=Channel.AGENT,
                        recorded_by_id=li.id,
                        recorded_at=when,
                    )
                )

        install, repair = CallbackType.INSTALL, CallbackType.REPAIR
        done, failed = CallbackStatus.COMPLETED, CallbackStatus.FAILED
        # 1: completed in time, satisfied
        one = callback(install, done, closed=at(10), due=at(12), hard=at(20), attempts=1)
        attempt(one, 1, AttemptOutcome.ANSWERED, at(10))
        answers(one, INSTALL_ANSWERS, at(10))
        # 2: completed late (within the hard limit), dissatisfied
        two = callback(install, done, closed=at(11), due=at(9), hard=at(20), attempts=2)
        attempt(two, 1, AttemptOutcome.NO_ANSWER, at(9, 30))
        attempt(two, 2, AttemptOutcome.ANSWERED, at(11))
        answers(two, {**INSTALL_ANSWERS, "overall": 1}, at(11))
        # 3: failed (not reached after 3 attempts) before its target: not overdue
        three = callback(install, failed, closed=at(15), due=at(18), hard=at(20), attempts=3)
        attempt(three, 1, AttemptOutcome.NO_ANSWER, at(9))
        attempt(three, 2, AttemptOutcome.BUSY, at(10, 30))
        attempt(three, 3, AttemptOutcome.NO_ANSWER, at(15))
        # 4: expired at its hard limit: overdue
        callback(install, CallbackStatus.EXPIRED, closed=at(20), due=at(10), hard=at(20))
        # 5: cancelled upstream: not an order the centre is measured on
        callback(install, CallbackStatus.CANCELLED, closed=at(12), due=at(20), hard=at(22))
        # 6: a repair completed by the IVR in time
        six = callback(
            repair,
            done,
            closed=at(14, 30),
            due=at(23),
            hard=at(23),
            attempts=1,
            channel=Channel.IVR,
        )
        attempt(six, 1, AttemptOutcome.ANSWERED, at(14, 30), agent=None, channel=Channel.IVR)
        # Follow-up orders (rule SV-5, KPI-3): due 15 minutes after they were raised.
        for raised, handed in [
            (at(10), at(10, 5)),
            (at(11), at(11, 15)),
            (at(12), at(12, 40)),
            (at(16), None),
        ]:
            session.add(
                WorkOrder(
                    kind=WorkOrderKind.FOLLOW_UP,
                    status=WorkOrderStatus.HANDED_OVER if handed else WorkOrderStatus.OPEN,
                    callback_id=one.id,
                    customer_id=one.customer_id,
                    subject="跟进",
                    team="装维",
                    created_by_id=li.id,
                    created_at=raised,
                    due_at=raised + timedelta(minutes=15),
                    handed_over_at=handed,
                )
            )
        # Retention cases decided on the day; their churn callbacks closed the day before.
        day_before = DAY - timedelta(days=1)

        def case(
            n: int,
            state: CaseState,
            level: int,
            reason: str,
            steps: list[dict[str, Any]],
        ) -> RetentionCase:
            churn = callback(
                CallbackType.CHURN,
                done,
                closed=at(10, day=day_before),
                due=at(12, day=day_before),
                hard=at(20, day=day_before),
                customer=customers[n],
            )
            row = RetentionCase(
                callback_id=churn.id or 0,
                customer_id=customers[n].id or 0,
                order_id=churn.order_id,
                state=state,
                level=level,
                level_since=at(9),
                due_at=at(9),
                reason_code=reason,
                closed_at=at(16) if state is not CaseState.OPEN else None,
                created_at=at(9, day=day_before),
                updated_at=at(16),
            )
            session.add(row)
            session.flush()
            for step in steps:
                session.add(
                    RetentionStep(
                        case_id=row.id or 0, recorded_at=at(15), reason_code=reason, **step
                    )
                )
            return row

        esc, kept, gone = StepOutcome.ESCALATED, StepOutcome.RETAINED, StepOutcome.LOST
        a = case(
            0,
            CaseState.RETAINED,
            1,
            "price",
            [
                {
                    "level": 1,
                    "outcome": kept,
                    "offer_code": "discount_10_6m",
                    "offer_cost_yuan": 60,
                    "offer_accepted": True,
                }
            ],
        )
        case(
            1,
            CaseState.RETAINED,
            2,
            "price",
            [
                {
                    "level": 1,
                    "outcome": esc,
                    "escalated_to": 2,
                    "offer_code": "speed_up_6m",
                    "offer_cost_yuan": 60,
                    "offer_accepted": False,
                },
                {
                    "level": 2,
                    "outcome": kept,
                    "offer_code": "free_month_1",
                    "offer_cost_yuan": 100,
                    "offer_accepted": True,
                },
            ],
        )
        c = case(
            2,
            CaseState.LOST,
            3,
            "competitor_offer",
            [
                {"level": 1, "outcome": esc, "escalated_to": 2},
                {
                    "level": 2,
                    "outcome": esc,
                    "escalated_to": 3,
                    "offer_code": "discount_20_12m",
                    "offer_cost_yuan": 240,
                    "offer_accepted": False,
                },
                {"level": 3, "outcome": gone, "win_back": True, "win_back_on": WIN_BACK_ON},
            ],
        )
        d = case(
            3,
            CaseState.LOST,
            3,
            "price",
            [
                {"level": 1, "outcome": esc, "escalated_to": 2},
                {"level": 2, "outcome": esc, "escalated_to": 3},
                {"level": 3, "outcome": gone, "win_back": False},
            ],
        )
        case(
            4,
            CaseState.OPEN,
            2,
            "network_quality",
            [{"level": 1, "outcome": esc, "escalated_to": 2}],
        )
        ids.update(retained_case=a.id or 0, lost_case=c.id or 0, lost_xiamen=d.id or 0)
        uow.commit()
    if snapshot:
        snapshot_day(database.uow(), day=DAY, zone=SHANGHAI, now=at(1, day=DAY + timedelta(days=1)))
    return ids
