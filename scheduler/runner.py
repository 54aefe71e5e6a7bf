"""Builds the APScheduler scheduler. A few periodic jobs each work on many rows and claim
them atomically, so any number of scheduler processes may run against one database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.telephony import Telephony, telephony_for
from scheduler import jobs

_COMMON: dict[str, Any] = {
    "replace_existing": True,
    "coalesce": True,  # a backlog of missed runs is one run
    "max_instances": 1,  # never two runs of a job at once in one process
    "misfire_grace_time": 30,
}


def build_scheduler(
    *,
    database: Database,
    clock: Clock,
    settings: Settings,
    scheduler: BaseScheduler | None = None,
    telephony: Telephony | None = None,
) -> BaseScheduler:
    scheduler = scheduler or BackgroundScheduler(timezone="UTC")
    # The interval jobs also run once at start, so that a fresh process (or the demo) does not
    # offer, for a whole interval, what the watch would have expired or released.
    start = datetime.now(UTC)
    scheduler.add_job(
        jobs.release_lapsed,
        "interval",
        seconds=settings.lease_sweep_seconds,
        next_run_time=start,
        kwargs={"database": database, "clock": clock},
        id="release-lapsed-claims",
        **_COMMON,
    )
    scheduler.add_job(
        jobs.sla_watch,
        "interval",
        seconds=settings.sla_watch_seconds,
        next_run_time=start,
        kwargs={"database": database, "clock": clock, "settings": settings},
        id="sla-watch",
        **_COMMON,
    )
    scheduler.add_job(
        jobs.ivr_dial,
        "interval",
        seconds=settings.telephony.dial_seconds,
        next_run_time=start,
        kwargs={
            "database": database,
            "clock": clock,
            "settings": settings,
            # Twilio with an account, else the local simulator (settings decide).
            "telephony": telephony or telephony_for(settings.telephony),
        },
        id="ivr-dial",
        **{**_COMMON, "misfire_grace_time": 5},
    )
    scheduler.add_job(
        jobs.kpi_snapshot,
        "cron",
        hour=settings.snapshot_hour,
        minute=5,
        timezone=settings.rules.default_timezone,
        kwargs={"database": database, "clock": clock, "settings": settings},
        id="kpi-snapshot",
        **{**_COMMON, "misfire_grace_time": 3600},
    )
    scheduler.add_job(
        jobs.calendar_check,
        "cron",
        hour=8,
        minute=0,
        timezone=settings.rules.default_timezone,
        kwargs={"clock": clock, "settings": settings},
        id="calendar-check",
        **{**_COMMON, "misfire_grace_time": 3600},
    )
    return scheduler
