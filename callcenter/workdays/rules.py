"""Working days (chapter 4 §1, rule CB-7): the official PRC calendar, as pure functions.

A working day is what the State Council's yearly notice makes it: weekdays, minus the declared
holidays, plus the weekend days declared make-up working days (调休). The answer for a date
comes, in this order, from
1. the operator's declarations (`WorkdayRule.declared_working_days` / `declared_holidays`),
   which win over everything else;
2. the holiday library (`chinesecalendar`), for the years it covers.
A date that neither knows raises `UnknownYear`: the calendar never guesses from the weekday.

The next year's New Year holiday can reach back into 29-31 December (2007-12-29 and 2018-12-29
were make-up working days, 2018-12-31 a holiday), and that schedule is published in the autumn.
So the last days of December of a covered year count as known only when the library also
covers the year after.

`calendar_warnings` lists the unknown dates ahead, for the supervisor's board and the log;
`callcenter.workdays.alerts` writes them (and a failed lookup) to the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo

from callcenter.config import WorkdayRule
from callcenter.windows.rules import NaiveInstant
from callcenter.workdays.library import ChineseCalendarSource, HolidaySource

DAY = timedelta(days=1)

# The earliest reach of a New Year holiday into the December before it: 29 December.
UNSETTLED_DECEMBER_DAYS = 3

_SETTINGS = (
    "CALLCENTER_RULES__WORKDAYS__DECLARED_WORKING_DAYS",
    "CALLCENTER_RULES__WORKDAYS__DECLARED_HOLIDAYS",
)
_HOW_TO_DECLARE_EN = (
    f"Declare each such day as a working day or a holiday in the settings {_SETTINGS[0]} / "
    f"{_SETTINGS[1]} (a JSON list of dates, e.g. '[\"2027-01-01\"]'), or as "
    "declared_working_days / declared_holidays under [rules.workdays] in the rules file; "
    "or upgrade chinesecalendar to a release that has the year"
)
_HOW_TO_DECLARE_ZH = (
    f"请在设置 {_SETTINGS[0]}（调休上班日）/ {_SETTINGS[1]}（放假日）中逐日声明"
    "（JSON 日期列表，如 '[\"2027-01-01\"]'），或在规则文件 [rules.workdays] 的 "
    "declared_working_days / declared_holidays 中声明；或升级已收录该年的 chinesecalendar"
)


class UnknownReason(StrEnum):
    """Why the calendar cannot answer for a date."""

    YEAR_NOT_COVERED = "year_not_covered"
    # The year is covered, but the next year's New Year schedule (which can move 29-31
    # December) is not.
    NEXT_NEW_YEAR_UNPUBLISHED = "next_new_year_unpublished"


def _years_text(years: range | frozenset[int]) -> str:
    if not years:
        return "none"
    if isinstance(years, range):
        return f"{years.start}-{years.stop - 1}"
    return ", ".join(str(year) for year in sorted(years))


def _reason_text(
    reasons: Iterable[tuple[UnknownReason, int]], source: str, years: range | frozenset[int]
) -> tuple[str, str]:
    zh: list[str] = []
    en: list[str] = []
    for reason, year in reasons:
        if reason is UnknownReason.YEAR_NOT_COVERED:
            zh.append(f"节假日库 {source} 只收录 {_years_text(years)} 年，没有 {year} 年")
            en.append(f"the holiday library {source} covers {_years_text(years)}, not {year}")
        else:
            zh.append(
                f"节假日库 {source} 没有 {year + 1} 年元旦的放假安排，它可能调整 {year} 年 "
                "12 月 29-31 日"
            )
            en.append(
                f"the holiday library {source} lacks the {year + 1} New Year schedule, "
                f"which can move 29-31 December {year}"
            )
    return "；".join(zh), "; ".join(en)


class UnknownYear(Exception):
    """The calendar has no answer for `day`: never a weekday guess.

    `str(exc)` is the English message; `zh` and `en` carry both languages for the board.
    """

    def __init__(
        self, day: date, *, reason: UnknownReason, source: str, covered: range | frozenset[int]
    ) -> None:
        why_zh, why_en = _reason_text([(reason, day.year)], source, covered)
        self.day = day
        self.reason = reason
        self.covered = covered
        self.zh = f"{day.isoformat()} 的工作日未知：{why_zh}。{_HOW_TO_DECLARE_ZH}。"
        self.en = f"working day unknown for {day.isoformat()}: {why_en}. {_HOW_TO_DECLARE_EN}."
        super().__init__(self.en)


class InstallDueDates(NamedTuple):
    """Chapter 4 §1: the local dates by which an install is due (≤3 working days after its
    acceptance) and by which it must be done at the latest (at most 7)."""

    due: date
    latest: date


class WorkdayCalendar:
    """The PRC working-day calendar: the operator's declarations over the holiday library."""

    def __init__(
        self,
        rule: WorkdayRule,
        *,
        source: HolidaySource | None = None,
        unsettled_december_days: int = UNSETTLED_DECEMBER_DAYS,
    ) -> None:
        if not 0 <= unsettled_december_days <= 31:
            raise ValueError("unsettled_december_days must be between 0 and 31")
        self.rule = rule
        self._source: HolidaySource = source if source is not None else ChineseCalendarSource()
        self._years = self._source.years()
        self._working = frozenset(rule.declared_working_days)
        self._holidays = frozenset(rule.declared_holidays)
        self._unsettled_from = 32 - unsettled_december_days  # first unsettled day of December

    @property
    def source_name(self) -> str:
        return self._source.name

    def covered_years(self) -> range | frozenset[int]:
        """The years the holiday library covers; declarations add single dates, not years."""
        return self._years

    def _unknown_reason(self, day: date) -> UnknownReason | None:
        """Why the library cannot answer for `day`, or None when it can (declarations aside)."""
        if day.year not in self._years:
            return UnknownReason.YEAR_NOT_COVERED
        if day.month == 12 and day.day >= self._unsettled_from and day.year + 1 not in self._years:
            return UnknownReason.NEXT_NEW_YEAR_UNPUBLISHED
        return None

    def _unknown(self, day: date, reason: UnknownReason) -> UnknownYear:
        return UnknownYear(day, reason=reason, source=self._source.name, covered=self._years)

    def known(self, day: date) -> bool:
        """Can the calendar answer for `day` (declared, or in the library's settled span)?"""
        _require_date(day)
        if day in self._working or day in self._holidays:
            return True
        return self._unknown_reason(day) is None

    def is_working_day(self, day: date) -> bool:
        """Is `day` an official working day? Raises `UnknownYear` rather than guess."""
        _require_date(day)
        if day in self._working:
            return True
        if day in self._holidays:
            return False
        reason = self._unknown_reason(day)
        if reason is not None:
            raise self._unknown(day, reason)
        answer = self._source.is_working_day(day)
        if answer is None:
            raise self._unknown(day, UnknownReason.YEAR_NOT_COVERED)
        return answer

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (start itself not counted); `start` when n == 0."""
        _require_date(start)
        if n < 0:
            raise ValueError(f"n must be 0 or more, not {n}")
        day = start
        while n:
            day += DAY
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """The working days in (start, end]; negative, counting (end, start], when end < start.

        So `working_days_between(d, add_working_days(d, n)) == n`.
        """
        _require_date(start)
        _require_date(end)
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start + DAY
        while day <= end:
            if self.is_working_day(day):
                count += 1
            day += DAY
        return count

    def install_due_dates(self, accepted_at: datetime, zone: ZoneInfo) -> InstallDueDates:
        """The install's due and latest dates, counted in working days from the local date of
        acceptance (chapter 4 §1: ≤3 working days, at most 7; rule CB-7 quotes them)."""
        if accepted_at.tzinfo is None or accepted_at.utcoffset() is None:
            raise NaiveInstant(f"{accepted_at.isoformat()} has no UTC offset")
        accepted_on = accepted_at.astimezone(zone).date()
        return InstallDueDates(
            due=self.add_working_days(accepted_on, self.rule.install_due_working_days),
            latest=self.add_working_days(accepted_on, self.rule.install_latest_working_days),
        )

    def unknown_dates(self, days: Iterable[date]) -> list[date]:
        """The dates among `days` the calendar cannot answer for, sorted, each once."""
        return sorted({day for day in days if not self.known(day)})

    def explain_unknown(self, days: Iterable[date]) -> tuple[str, str]:
        """Why the calendar cannot answer for these days, in zh and en (empty when it can)."""
        reasons = sorted(
            {
                (reason, day.year)
                for day in days
                if not self.known(day) and (reason := self._unknown_reason(day)) is not None
            },
            key=lambda item: (item[1], item[0]),
        )
        return _reason_text(reasons, self._source.name, self._years)


def _require_date(day: date) -> None:
    # A datetime is a date to Python; refuse it so that the caller picks the zone's local date.
    if isinstance(day, datetime):
        raise TypeError(f"expected a local date, got the datetime {day.isoformat()}")


@dataclass(frozen=True)
class CalendarWarning:
    """A run of consecutive days ahead that the calendar cannot answer for."""

    first: date
    last: date
    days: int
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


def calendar_warnings(
    calendar: WorkdayCalendar, *, today: date, horizon_days: int = 60
) -> list[CalendarWarning]:
    """Warnings for the dates in [today, today + horizon_days] that the calendar cannot answer
    for, one per run of consecutive days, in date order. Empty when all of them are known."""
    if horizon_days < 0:
        raise ValueError(f"horizon_days must be 0 or more, not {horizon_days}")
    span = (today + offset * DAY for offset in range(horizon_days + 1))
    runs: list[list[date]] = []
    for day in calendar.unknown_dates(span):
        if runs and runs[-1][-1] + DAY == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return [_warning(calendar, run) for run in runs]


def _warning(calendar: WorkdayCalendar, run: list[date]) -> CalendarWarning:
    first, last = run[0], run[-1]
    why_zh, why_en = calendar.explain_unknown(run)
    return CalendarWarning(
        first=first,
        last=last,
        days=len(run),
        zh=(
            f"工作日历缺失：{first.isoformat()} 至 {last.isoformat()}"
            f"（{len(run)} 天）的工作日未知，涉及这些日期的装机时限无法计算。"
            f"原因：{why_zh}。{_HOW_TO_DECLARE_ZH}。"
        ),
        en=(
            f"Working-day calendar missing: {first.isoformat()} to {last.isoformat()} "
            f"({len(run)} days) cannot be answered, so install due dates that reach them "
            f"cannot be computed. Why: {why_en}. {_HOW_TO_DECLARE_EN}."
        ),
    )
