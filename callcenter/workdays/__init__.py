"""Working days: the PRC calendar with its make-up working days (调休), the operator's
declarations for years the holiday library does not know yet, and loud warnings when a date is
outside both (chapter 4 §1)."""

from callcenter.workdays.alerts import log_unknown, log_warnings
from callcenter.workdays.library import ChineseCalendarSource, HolidaySource
from callcenter.workdays.rules import (
    CalendarWarning,
    InstallDueDates,
    UnknownReason,
    UnknownYear,
    WorkdayCalendar,
    calendar_warnings,
)

__all__ = [
    "CalendarWarning",
    "ChineseCalendarSource",
    "HolidaySource",
    "InstallDueDates",
    "UnknownReason",
    "UnknownYear",
    "WorkdayCalendar",
    "calendar_warnings",
    "log_unknown",
    "log_warnings",
]
