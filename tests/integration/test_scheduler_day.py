"""Whole days of the scheduler in seconds: the clock is injected and moved in steps, and the
jobs and an agent act at every step (rules CB-5, CB-7, WO-4, SV-5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from callcenter.callbacks.models import CallbackEvent, CallbackEventKind
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.callbacks.schemas import AttemptCreate, ClaimRead
from callcenter.callbacks.service import claim_next, get_callback, ingest_events, record_attempt
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig, Settings
from callcenter.db import Database
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_user
from callcenter.workorders.models import WorkOrder, WorkOrderKind
from callcenter.workorders.schemas import FollowUpCreate
from callcenter.workorders.service import create_follow_up
from scheduler import jobs
from tests.factories import event

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONFIG = RulesConfig()


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def run_until(
    database: Database,
    clock: FixedClock,
    end: datetime,
    *,
    step: timedelta = timedelta(minutes=5),
    each: Callable[[], bool] | None = None,
) -> None:
    """Advance the clock to `end` in steps, running the jobs at each; stop early when `each`
    says so."""
    settings = Settings(database_url=database.url)
    while clock.now() < end:
        clock.advance(step)
        jobs.release_lapsed(database, clock)
        jobs.sla_watch(database, clock, settings)
        if each is not None and each():
            return


def claims_into(
    taken: list[ClaimRead], database: Database, clock: FixedClock, by: User
) -> Callable[[], bool]:
    """A step for `run_until`: the agent tries to claim; stop once something was offered."""

    def try_claim() -> bool:
        claim = claim_next(database.uow(), agent=by, now=clock.now(), config=CONFIG)
        if claim:
            taken.append(claim)
        return claim is not None

    return try_claim


def agent(database: Database, name: str, now: datetime) -> User:
    return create_user(database.uow(), username=name, role=UserRole.AGENT, now=now)


def events_of(database: Database, callback_id: int, kind: CallbackEventKind) -> list[Any]:
    with database.uow() as uow:
        return list(
            uow.session.execute(
                sa.select(CallbackEvent).where(
                    CallbackEvent.callback_id == callback_id,  # type: ignore[arg-type]
                    CallbackEvent.kind == kind,  # type: ignore[arg-type]
                )
            ).scalars()
        )


def test_an_event_at_21_00_is_first_offered_at_08_30(database: Database) -> None:
    clock = FixedClock(local(24, 21))
    ingest_events(
        database.uow(), events=[event(occurred_at=clock.now())], now=clock.now(), config=CONFIG
    )
    li = agent(database, "li", clock.now())
    offered: list[ClaimRead] = []
    run_until(
        database,
        clock,
        local(25, 12),
        step=timedelta(minutes=1),
        each=claims_into(offered, database, clock, li),
    )
    assert offered and clock.now() == local(25, 8, 30)


def test_a_complaint_accepted_at_11_50_is_contacted_at_14_30_with_its_lateness(
    database: Database,
) -> None:
    # rule CB-7: contact within 30 minutes (by 12:20). Every agent is busy until the lunch
    # break (rule CB-5: no calls 12:00-14:30), so the contact is made at 14:30, late.
    clock = FixedClock(local(25, 11, 50))
    batch = ingest_events(
        database.uow(),
        events=[event("complaint_accepted", occurred_at=clock.now())],
        now=clock.now(),
        config=CONFIG,
    )
    callback = batch.results[0].callback
    assert callback is not None and callback.due_at == local(25, 12, 20)
    run_until(database, clock, local(25, 12, 0), step=timedelta(minutes=1))
    wang = agent(database, "wang", clock.now())
    taken: list[ClaimRead] = []
    run_until(
        database,
        clock,
        local(25, 16),
        step=timedelta(minutes=1),
        each=claims_into(taken, database, clock, wang),
    )
    assert clock.now() == local(25, 14, 30)
    assert [c.callback.id for c in taken] == [callback.id]
    recorded = record_attempt(
        database.uow(),
        callback_id=callback.id,
        agent=wang,
        attempt=AttemptCreate(outcome=AttemptOutcome.ANSWERED),
        now=clock.now(),
        config=CONFIG,
    )
    assert recorded.attempts[0].late_by_seconds == int(
        timedelta(hours=2, minutes=10).total_seconds()
    )
    overdue = events_of(database, callback.id, CallbackEventKind.OVERDUE)
    assert [e.at for e in overdue] == [local(25, 12, 21)]  # the first watch after 12:20
    assert len(events_of(database, callback.id, CallbackEventKind.URGED)) == 1


def test_an_overdue_callback_gets_exactly_one_urging_order(database: Database) -> None:
    # rule WO-4
    clock = FixedClock(local(25, 8, 0))
    batch = ingest_events(
        database.uow(),
        events=[event("repair_replied", occurred_at=local(24, 7, 0))],  # due 25th 07:00
        now=clock.now(),
        config=CONFIG,
    )
    callback_id = batch.results[0].callback.id  # type: ignore[union-attr]
    run_until(database, clock, local(25, 12))
    with database.uow() as uow:
        urging = list(
            uow.session.execute(
                sa.select(WorkOrder).where(WorkOrder.urges_callback_id == callback_id)  # type: ignore[arg-type]
            ).scalars()
        )
    assert len(urging) == 1
    assert urging[0].kind is WorkOrderKind.URGING and urging[0].team == "10050客服中心"
    assert urging[0].created_at - local(25, 8, 0) <= timedelta(minutes=30)  # within 30 min
    assert len(events_of(database, callback_id, CallbackEventKind.URGED)) == 1
    assert len(events_of(database, callback_id, CallbackEventKind.OVERDUE)) == 1
    detail = get_callback(database.uow(), callback_id=callback_id, now=clock.now())
    assert detail.overdue_since is not None and detail.at_risk_since is not None


def test_an_overdue_follow_up_gets_exactly_one_urging_order(database: Database) -> None:
    # rules SV-5, WO-4
    clock = FixedClock(local(25, 10, 0))
    ingest_events(
        database.uow(),
        events=[event(occurred_at=clock.now() - timedelta(hours=1))],
        now=clock.now(),
        config=CONFIG,
    )
    zhang = agent(database, "zhang", clock.now())
    claim = claim_next(database.uow(), agent=zhang, now=clock.now(), config=CONFIG)
    assert claim is not None
    order = create_follow_up(
        database.uow(),
        callback_id=claim.callback.id,
        user=zhang,
        follow_up=FollowUpCreate(subject="客户要求改约上门时间", team="装维部"),
        now=clock.now(),
        config=CONFIG,
    )
    run_until(database, clock, local(25, 11, 30), step=timedelta(minutes=1))
    with database.uow() as uow:
        urging = list(
            uow.session.execute(
                sa.select(WorkOrder).where(WorkOrder.urges_work_order_id == order.id)  # type: ignore[arg-type]
            ).scalars()
        )
    assert len(urging) == 1
    assert urging[0].team == "装维部"
    # due at 10:15; the first watch after it (10:16) sends the urging order
    assert urging[0].created_at == local(25, 10, 16)


def test_past_the_hard_limit_a_callback_expires_once(database: Database) -> None:
    clock = FixedClock(local(25, 9, 0))
    batch = ingest_events(
        database.uow(),
        events=[event("cancellation", occurred_at=clock.now())],  # rule CB-4: limit 12:00
        now=clock.now(),
        config=CONFIG,
    )
    callback_id = batch.results[0].callback.id  # type: ignore[union-attr]
    run_until(database, clock, local(25, 15))
    detail = get_callback(database.uow(), callback_id=callback_id, now=clock.now())
    assert detail.status is CallbackStatus.EXPIRED
    assert detail.closed_at == local(25, 12, 0)
    assert "hard limit" in (detail.close_reason or "")
    assert len(events_of(database, callback_id, CallbackEventKind.EXPIRED)) == 1


def test_a_personal_callback_waits_for_its_agent_then_moves_to_the_shared_queue(
    database: Database,
) -> None:
    clock = FixedClock(local(25, 10, 0))
    ingest_events(
        database.uow(),
        events=[event(occurred_at=clock.now() - timedelta(hours=1))],
        now=clock.now(),
        config=CONFIG,
    )
    li, chen = agent(database, "li", clock.now()), agent(database, "chen", clock.now())
    claim = claim_next(database.uow(), agent=li, now=clock.now(), config=CONFIG)
    assert claim is not None
    callback_id = claim.callback.id
    record_attempt(
        database.uow(),
        callback_id=callback_id,
        agent=li,
        attempt=AttemptCreate(outcome=AttemptOutcome.CALL_BACK_LATER, call_back_at=local(25, 15)),
        now=clock.now(),
        config=CONFIG,
    )
    detail = get_callback(database.uow(), callback_id=callback_id, now=clock.now())
    assert detail.assigned_to == "li"
    clock.set(local(25, 15, 5))
    assert claim_next(database.uow(), agent=chen, now=clock.now(), config=CONFIG) is None
    run_until(database, clock, local(25, 15, 29), step=timedelta(minutes=1))
    assert claim_next(database.uow(), agent=chen, now=clock.now(), config=CONFIG) is None
    run_until(database, clock, local(25, 15, 31), step=timedelta(minutes=1))
    moved = events_of(database, callback_id, CallbackEventKind.MOVED_TO_SHARED)
    assert len(moved) == 1 and moved[0].at == local(25, 15, 30)
    taken = claim_next(database.uow(), agent=chen, now=clock.now(), config=CONFIG)
    assert taken is not None and taken.callback.id == callback_id


def test_an_agent_gets_their_own_callback_before_more_urgent_shared_ones(
    database: Database,
) -> None:
    clock = FixedClock(local(25, 10, 0))
    ingest_events(
        database.uow(),
        events=[event("repair_replied", occurred_at=clock.now() - timedelta(hours=1))],
        now=clock.now(),
        config=CONFIG,
    )
    li = agent(database, "li", clock.now())
    first = claim_next(database.uow(), agent=li, now=clock.now(), config=CONFIG)
    assert first is not None
    record_attempt(
        database.uow(),
        callback_id=first.callback.id,
        agent=li,
        attempt=AttemptCreate(outcome=AttemptOutcome.CALL_BACK_LATER, call_back_at=local(25, 11)),
        now=clock.now(),
        config=CONFIG,
    )
    # A more urgent callback arrives (a cancellation: its limit is this window).
    ingest_events(
        database.uow(),
        events=[event("cancellation", occurred_at=clock.now())],
        now=clock.now(),
        config=CONFIG,
    )
    clock.set(local(25, 11, 0))
    mine = claim_next(database.uow(), agent=li, now=clock.now(), config=CONFIG)
    assert mine is not None and mine.callback.id == first.callback.id
