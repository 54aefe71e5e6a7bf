"""Builds the APScheduler scheduler. Jobs work on many rows and claim them atomically, so any
number of scheduler processes may run against one database."""

from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.db import Database
from scheduler import jobs


def build_scheduler(
    *, database: Database, clock: Clock, settings: Settings, scheduler: BaseScheduler | None = None
) -> BaseScheduler:
    scheduler = scheduler or BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        jobs.release_lapsed,
        "interval",
        seconds=settings.lease_sweep_seconds,
        kwargs={"database": database, "clock": clock},
        id="release-lapsed-claims",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )
    return scheduler
