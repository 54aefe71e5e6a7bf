"""Jobs: each opens its units of work around one service call and logs what it did: its
name, the rows it touched and how long it took. A failure is logged and counted; the job
runs again at its next tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from zoneinfo import ZoneInfo

from callcenter.callbacks.service import release_lapsed_claims
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.ivr.schemas import DialReport
from callcenter.ivr.service import place_planned, plan_dials, settle_unconfirmed
from callcenter.reports.service import snapshot_day
from callcenter.sla.service import watch
from callcenter.telephony import Telephony
from callcenter.workdays import WorkdayCalendar, calendar_warnings, log_warnings
from scheduler.metrics import JOB_FAILURES, JOB_ROWS, JOB_SECONDS

log = logging.getLogger("callcenter.scheduler")


@contextmanager
def _measured(name: str, *, quiet_when_idle: bool = False) -> Iterator[Callable[[int], None]]:
    started = time.perf_counter()
    touched = 0

    def rows(count: int) -> None:
        nonlocal touched
        touched += count

    try:
        yield rows
    except Exception:
        JOB_FAILURES.labels(name).inc()
        log.exception("job=%s failed after %.3fs", name, time.perf_counter() - started)
        raise
    finally:
        elapsed = time.perf_counter() - started
        JOB_SECONDS.labels(name).observe(elapsed)
        JOB_ROWS.labels(name).inc(touched)
    level = logging.DEBUG if quiet_when_idle and touched == 0 else logging.INFO
    log.log(level, "job=%s rows=%d seconds=%.3f", name, touched, elapsed)


def release_lapsed(database: Database, clock: Clock) -> int:
    """Callbacks whose lease lapsed go back to the queue."""
    with _measured("release_lapsed") as rows:
        count = release_lapsed_claims(database.uow(), now=clock.now())
        rows(count)
    return count


def sla_watch(database: Database, clock: Clock, settings: Settings) -> int:
    """Expire what passed its hard limit, flag at-risk and overdue callbacks, send urging
    orders (rule WO-4), move personal callbacks nobody took to the shared queue."""
    with _measured("sla_watch") as rows:
        report = watch(database.uow, now=clock.now(), config=settings.rules)
        rows(report.rows)
        for failure in report.failures:
            JOB_FAILURES.labels("sla_watch").inc()
            log.error("job=sla_watch batch failed: %s", failure)
    log.info(
        "job=sla_watch expired=%d at_risk=%d overdue=%d urged=%d/%d moved_to_shared=%d",
        report.expired,
        report.at_risk,
        report.overdue,
        report.urged_callbacks,
        report.urged_work_orders,
        report.moved_to_shared,
    )
    return report.rows


def kpi_snapshot(database: Database, clock: Clock, settings: Settings) -> int | None:
    """Snapshot yesterday's KPI figures (local days in the default zone)."""
    zone = ZoneInfo(settings.rules.default_timezone)
    with _measured("kpi_snapshot") as rows:
        yesterday = (clock.now().astimezone(zone) - timedelta(days=1)).date()
        written = snapshot_day(database.uow(), day=yesterday, zone=zone, now=clock.now())
        if written is None:
            log.info("job=kpi_snapshot skipped: another process holds the snapshot lock")
        else:
            rows(written)
    return written


def calendar_check(clock: Clock, settings: Settings) -> int:
    """Say loudly, every day, which coming days the working-day calendar does not know."""
    zone = ZoneInfo(settings.rules.default_timezone)
    with _measured("calendar_check") as rows:
        warnings = calendar_warnings(
            WorkdayCalendar(settings.rules.workdays), today=clock.now().astimezone(zone).date()
        )
        log_warnings(warnings)
        rows(len(warnings))
    return len(warnings)


def ivr_dial(
    database: Database,
    clock: Clock,
    settings: Settings,
    telephony: Telephony,
    sleep: Callable[[float], None] = time.sleep,
) -> DialReport:
    """Settle calls whose end never came, then place calls for due IVR callbacks, each at its
    slot under the calls-per-second limit shared by every replica."""
    report = DialReport()
    tel = settings.telephony
    with _measured("ivr_dial", quiet_when_idle=True) as rows:
        report.settled = settle_unconfirmed(
            database.uow(),
            telephony=telephony,
            now=clock.now(),
            config=settings.rules,
            settings=tel,
        )
        planned = plan_dials(
            database.uow(),
            now=clock.now(),
            config=settings.rules,
            telephony=tel,
            provider=telephony.provider,
            horizon=timedelta(seconds=tel.dial_seconds),
            report=report,
        )
        for call in planned:
            wait = (call.dial_at - clock.now()).total_seconds()
            if wait > 0:
                sleep(wait)
            try:
                placed = place_planned(
                    database.uow(),
                    telephony=telephony,
                    planned=call,
                    now=clock.now(),
                    config=settings.rules,
                    settings=tel,
                )
            except Exception:  # one call's failure never stops the others
                JOB_FAILURES.labels("ivr_dial").inc()
                log.exception("job=ivr_dial call %s failed", call.ref)
                continue
            report.placed += placed
            report.refused += not placed
        rows(report.settled + report.planned + report.handed_to_agents)
    if report.planned or report.settled or report.handed_to_agents:
        log.info(
            "job=ivr_dial planned=%d placed=%d refused=%d settled=%d handed_to_agents=%d",
            report.planned,
            report.placed,
            report.refused,
            report.settled,
            report.handed_to_agents,
        )
    return report
