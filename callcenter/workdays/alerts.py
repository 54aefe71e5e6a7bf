"""Loud warnings about the working-day calendar, in the log (`callcenter.workdays`).

The rules only raise and return; the services and jobs that call them log through here, and the
supervisor's board shows the same `CalendarWarning`s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from callcenter.workdays.rules import CalendarWarning, UnknownYear

logger = logging.getLogger("callcenter.workdays")


def log_unknown(exc: UnknownYear) -> None:
    """A lookup hit a date the calendar does not know: say which, and how to declare it."""
    logger.warning(
        "%s | %s", exc.en, exc.zh, extra={"unknown_day": exc.day.isoformat(), "reason": exc.reason}
    )


def log_warnings(warnings: Iterable[CalendarWarning]) -> None:
    """One warning line per run of unknown days ahead (see `calendar_warnings`)."""
    for warning in warnings:
        logger.warning(
            "%s | %s",
            warning.en,
            warning.zh,
            extra={
                "unknown_from": warning.first.isoformat(),
                "unknown_to": warning.last.isoformat(),
            },
        )
