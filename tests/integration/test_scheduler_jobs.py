"""The scheduler's jobs: registered once with stable ids, and each doing its one service call."""

from __future__ import annotations

from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from callcenter.callbacks.rules import CallbackStatus
from callcenter.callbacks.service import claim_next, get_callback, ingest_events
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig, Settings
from callcenter.db import Database
from callcenter.users.models import UserRole
from callcenter.users.service import create_user
from scheduler import jobs
from scheduler.runner import build_scheduler
from tests.conftest import IN_WINDOW
from tests.factories import event


def test_jobs_are_registered_with_stable_ids_and_no_overlap(database: Database) -> None:
    scheduler = build_scheduler(
        database=database,
        clock=FixedClock(IN_WINDOW),
        settings=Settings(database_url=database.url),
        scheduler=BackgroundScheduler(timezone="UTC"),
    )
    job = scheduler.get_job("release-lapsed-claims")
    assert job is not None
    assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 30


def test_release_lapsed_returns_lapsed_claims_to_the_queue(database: Database) -> None:
    config = RulesConfig()
    clock = FixedClock(IN_WINDOW)
    ingest_events(
        database.uow(),
        events=[event(occurred_at=IN_WINDOW - timedelta(hours=1))],
        now=IN_WINDOW,
        config=config,
    )
    agent = create_user(database.uow(), username="a", role=UserRole.AGENT, now=IN_WINDOW)
    claim = claim_next(database.uow(), agent=agent, now=clock.now(), config=config)
    assert claim is not None
    assert jobs.release_lapsed(database, clock) == 0  # the lease still runs
    clock.advance(config.attempts.lease)
    assert jobs.release_lapsed(database, clock) == 1
    after = get_callback(database.uow(), callback_id=claim.callback.id, now=clock.now())
    assert after.status is CallbackStatus.PENDING
    assert after.claimed_by is None and after.lease_expires_at is None
