"""The PRC holiday schedule from the `chinesecalendar` library, behind a small typed interface.

The library carries the State Council's yearly notices (放假安排) as two tables: `holidays` (days
off, weekends of a holiday included) and `workdays` (the weekend days that are make-up working
days, 调休). It answers every date between the first and the last year of its `holidays` table
by those tables and the weekday, and raises `NotImplementedError` outside them. A year inside
that span with no entry at all would be answered by the weekday alone, so only the years the
table actually lists count as covered.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Protocol

import chinese_calendar  # type: ignore[import-untyped]


class HolidaySource(Protocol):
    """Where the official calendar comes from; `WorkdayCalendar` asks only this."""

    @property
    def name(self) -> str:
        """Names the source (and its version) in messages to the operator."""
        ...

    def years(self) -> range | frozenset[int]:
        """The years whose official schedule the source has."""
        ...

    def is_working_day(self, day: date) -> bool | None:
        """The official answer for `day`, or None when the source does not know the day."""
        ...


class ChineseCalendarSource:
    """`HolidaySource` backed by the `chinesecalendar` package (import name `chinese_calendar`)."""

    @property
    def name(self) -> str:
        return f"chinesecalendar {_version()}"

    def years(self) -> range | frozenset[int]:
        return _years()

    def is_working_day(self, day: date) -> bool | None:
        if day.year not in _years():
            return None
        return _is_workday(day)


def _version() -> str:
    return str(getattr(chinese_calendar, "__version__", "?"))


@lru_cache(maxsize=1)
def _years() -> range | frozenset[int]:
    listed: set[int] = {day.year for day in chinese_calendar.holidays}
    if not listed:
        return range(0)
    span = range(min(listed), max(listed) + 1)
    return span if len(listed) == len(span) else frozenset(listed)


@lru_cache(maxsize=16_384)  # about 8,400 covered days in chinesecalendar 1.11
def _is_workday(day: date) -> bool | None:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None
