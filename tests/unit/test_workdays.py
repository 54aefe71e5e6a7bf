"""Working days (chapter 4 §1, rule CB-7): the PRC calendar with its make-up working days
(调休), the operator's declarations, and loud failures for dates nobody knows.

The 2024-2026 examples are the State Council's notices as the holiday library carries them;
the properties compare the calendar with the library's own day lists."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar  # type: ignore[import-untyped]
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from callcenter.config import WorkdayRule, load_settings
from callcenter.windows.rules import NaiveInstant
from callcenter.workdays import (
    CalendarWarning,
    InstallDueDates,
    UnknownReason,
    UnknownYear,
    WorkdayCalendar,
    calendar_warnings,
    log_unknown,
    log_warnings,
)
from tests.unit.strategies import FAST

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)

CALENDAR = WorkdayCalendar(WorkdayRule())
YEARS = CALENDAR.covered_years()
assert isinstance(YEARS, range)  # chinesecalendar lists every year in its span
FIRST_KNOWN = date(YEARS.start, 1, 1)
LAST_KNOWN = date(YEARS.stop - 1, 12, 28)  # 29-31 December wait for the next New Year notice


def calendar(*, working: tuple[date, ...] = (), holidays: tuple[date, ...] = ()) -> WorkdayCalendar:
    return WorkdayCalendar(WorkdayRule(declared_working_days=working, declared_holidays=holidays))


def days(first: date, last: date) -> list[date]:
    return [first + offset * DAY for offset in range((last - first).days + 1)]


# -- coverage ---------------------------------------------------------------------------------


def test_covered_years_are_the_library_years() -> None:
    listed = {day.year for day in chinese_calendar.holidays}
    assert set(YEARS) == listed
    assert {2024, 2025, 2026} <= set(YEARS)
    for year in YEARS:
        assert chinese_calendar.is_workday(date(year, 6, 30)) in (True, False)
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(YEARS.stop, 1, 1))


def test_the_end_of_the_last_covered_december_waits_for_the_next_new_year() -> None:
    last = YEARS.stop - 1
    assert CALENDAR.known(date(last, 12, 28))
    for day in (29, 30, 31):
        assert not CALENDAR.known(date(last, 12, day))
        with pytest.raises(UnknownYear) as caught:
            CALENDAR.is_working_day(date(last, 12, day))
        assert caught.value.reason is UnknownReason.NEXT_NEW_YEAR_UNPUBLISHED
        assert f"{last + 1} New Year" in str(caught.value)
    # Earlier years are settled: the library carries the next year's New Year too.
    assert CALENDAR.is_working_day(date(2018, 12, 29))  # make-up Saturday for New Year 2019
    assert not CALENDAR.is_working_day(date(2018, 12, 31))  # Monday, New Year 2019 holiday
    plain = WorkdayCalendar(WorkdayRule(), unsettled_december_days=0)
    assert plain.known(date(last, 12, 31))


# -- the PRC calendar, 2024-2026 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        # Spring Festival 2024: 10-17 February off, Sundays 4 and 18 February worked.
        (date(2024, 2, 4), True),
        (date(2024, 2, 12), False),
        (date(2024, 2, 16), False),
        (date(2024, 2, 18), True),
        # Mid-Autumn and National Day 2024: Saturday 14 September, Sunday 29 September and
        # Saturday 12 October worked; 16-17 September and 1-7 October off.
        (date(2024, 9, 14), True),
        (date(2024, 9, 16), False),
        (date(2024, 9, 29), True),
        (date(2024, 10, 7), False),
        (date(2024, 10, 12), True),
        # Spring Festival 2025: 28 January - 4 February off; Sunday 26 January and
        # Saturday 8 February worked.
        (date(2025, 1, 25), False),
        (date(2025, 1, 26), True),
        (date(2025, 1, 27), True),
        (date(2025, 1, 28), False),
        (date(2025, 2, 3), False),
        (date(2025, 2, 4), False),
        (date(2025, 2, 5), True),
        (date(2025, 2, 8), True),
        (date(2025, 2, 9), False),
        # National Day and Mid-Autumn 2025: 1-8 October off; Sunday 28 September and
        # Saturday 11 October worked.
        (date(2025, 9, 28), True),
        (date(2025, 10, 6), False),
        (date(2025, 10, 8), False),
        (date(2025, 10, 11), True),
        (date(2025, 10, 12), False),
        # New Year 2026: 1-3 January off, Sunday 4 January worked.
        (date(2026, 1, 2), False),
        (date(2026, 1, 4), True),
        # Mid-Autumn 2026: Friday 25 September - Sunday 27 September off.
        (date(2026, 9, 25), False),
        (date(2026, 9, 27), False),
        # National Day 2026: 1-7 October off; Sunday 20 September and Saturday 10 October
        # worked.
        (date(2026, 9, 19), False),
        (date(2026, 9, 20), True),
        (date(2026, 10, 1), False),
        (date(2026, 10, 5), False),
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),
        (date(2026, 10, 11), False),
        # An ordinary week.
        (date(2026, 3, 13), True),
        (date(2026, 3, 14), False),
        (date(2026, 3, 15), False),
    ],
)
def test_prc_calendar(day: date, working: bool) -> None:
    assert CALENDAR.is_working_day(day) is working
    assert chinese_calendar.is_workday(day) is working
    assert CALENDAR.known(day)


def test_national_day_2026_working_days() -> None:
    assert [
        d for d in days(date(2026, 9, 18), date(2026, 10, 13)) if CALENDAR.is_working_day(d)
    ] == [
        date(2026, 9, 18),
        date(2026, 9, 20),
        date(2026, 9, 21),
        date(2026, 9, 22),
        date(2026, 9, 23),
        date(2026, 9, 24),
        date(2026, 9, 28),
        date(2026, 9, 29),
        date(2026, 9, 30),
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),
        date(2026, 10, 12),
        date(2026, 10, 13),
    ]


def test_add_working_days_over_spring_festival_2025() -> None:
    friday = date(2025, 1, 24)
    assert CALENDAR.add_working_days(friday, 0) == friday
    assert CALENDAR.add_working_days(friday, 1) == date(2025, 1, 26)  # the make-up Sunday
    assert CALENDAR.add_working_days(friday, 2) == date(2025, 1, 27)
    assert CALENDAR.add_working_days(friday, 3) == date(2025, 2, 5)
    assert CALENDAR.add_working_days(friday, 6) == date(2025, 2, 8)  # the make-up Saturday
    assert CALENDAR.add_working_days(friday, 7) == date(2025, 2, 10)
    assert CALENDAR.working_days_between(friday, date(2025, 2, 10)) == 7
    assert CALENDAR.working_days_between(date(2025, 2, 10), friday) == -7
    assert CALENDAR.working_days_between(friday, friday) == 0


def test_add_working_days_refuses_a_negative_count_and_a_datetime() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        CALENDAR.add_working_days(date(2025, 1, 24), -1)
    with pytest.raises(TypeError, match="local date"):
        CALENDAR.is_working_day(datetime(2025, 1, 24, 9, tzinfo=UTC))


# -- install due dates (chapter 4 §1) ---------------------------------------------------------


def test_install_accepted_on_the_friday_before_national_day_2025() -> None:
    accepted = datetime(2025, 9, 26, 16, 0, tzinfo=SHANGHAI)
    # 28 September (make-up Sunday), 29, 30; then 9, 10, 11 October (make-up Saturday), 13.
    assert CALENDAR.install_due_dates(accepted, SHANGHAI) == InstallDueDates(
        due=date(2025, 9, 30), latest=date(2025, 10, 13)
    )


def test_install_accepted_on_the_friday_before_national_day_2026() -> None:
    # Friday 25 September 2026 is itself the Mid-Autumn holiday.
    accepted = datetime(2026, 9, 25, 10, 0, tzinfo=SHANGHAI)
    due, latest = CALENDAR.install_due_dates(accepted, SHANGHAI)
    assert (due, latest) == (date(2026, 9, 30), date(2026, 10, 12))


def test_install_due_dates_count_from_the_local_date() -> None:
    # 17:30 UTC on Thursday is 01:30 on Friday in Shanghai.
    accepted = datetime(2025, 9, 25, 17, 30, tzinfo=UTC)
    assert CALENDAR.install_due_dates(accepted, SHANGHAI) == (date(2025, 9, 30), date(2025, 10, 13))
    assert CALENDAR.install_due_dates(accepted, ZoneInfo("UTC")) == (
        date(2025, 9, 29),
        date(2025, 10, 11),
    )
    with pytest.raises(NaiveInstant):
        CALENDAR.install_due_dates(datetime(2025, 9, 26, 10, 0), SHANGHAI)


def test_install_due_dates_follow_the_rule() -> None:
    rule = WorkdayRule(install_due_working_days=1, install_latest_working_days=2)
    accepted = datetime(2025, 9, 26, 16, 0, tzinfo=SHANGHAI)
    assert WorkdayCalendar(rule).install_due_dates(accepted, SHANGHAI) == (
        date(2025, 9, 28),
        date(2025, 9, 29),
    )


# -- declarations -----------------------------------------------------------------------------


def test_declarations_win_over_the_library() -> None:
    declared = calendar(working=(date(2026, 10, 1),), holidays=(date(2026, 10, 10),))
    assert declared.is_working_day(date(2026, 10, 1))
    assert not declared.is_working_day(date(2026, 10, 10))
    assert declared.is_working_day(date(2026, 10, 2)) is False  # the library, undeclared
    assert declared.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 1)
    assert declared.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 12)


def test_a_far_future_year_is_unknown() -> None:
    day = date(2099, 3, 2)
    assert not CALENDAR.known(day)
    with pytest.raises(UnknownYear) as caught:
        CALENDAR.is_working_day(day)
    exc = caught.value
    assert exc.day == day
    assert exc.reason is UnknownReason.YEAR_NOT_COVERED
    for text in (str(exc), exc.zh):
        assert "2099-03-02" in text
        assert "CALLCENTER_RULES__WORKDAYS__DECLARED_WORKING_DAYS" in text
        assert "CALLCENTER_RULES__WORKDAYS__DECLARED_HOLIDAYS" in text
        assert "[rules.workdays]" in text
    with pytest.raises(UnknownYear):
        CALENDAR.add_working_days(date(2099, 3, 1), 1)
    with pytest.raises(UnknownYear):
        CALENDAR.working_days_between(date(2099, 3, 1), date(2099, 3, 3))
    with pytest.raises(UnknownYear):
        CALENDAR.install_due_dates(datetime(2099, 3, 2, 9, tzinfo=SHANGHAI), SHANGHAI)


def test_declaring_some_days_of_an_unknown_year_answers_exactly_those() -> None:
    # Monday 5 January 2099 declared worked, Tuesday 6 declared off; nothing else.
    declared = calendar(working=(date(2099, 1, 5),), holidays=(date(2099, 1, 6),))
    assert declared.known(date(2099, 1, 5)) and declared.known(date(2099, 1, 6))
    assert declared.is_working_day(date(2099, 1, 5))
    assert not declared.is_working_day(date(2099, 1, 6))
    assert declared.add_working_days(date(2099, 1, 4), 1) == date(2099, 1, 5)
    for unknown in (date(2099, 1, 4), date(2099, 1, 7)):
        assert not declared.known(unknown)
        with pytest.raises(UnknownYear):
            declared.is_working_day(unknown)
    with pytest.raises(UnknownYear):
        declared.add_working_days(date(2099, 1, 4), 2)  # needs 6 (off), then 7 (unknown)
    assert declared.unknown_dates(days(date(2099, 1, 4), date(2099, 1, 7))) == [
        date(2099, 1, 4),
        date(2099, 1, 7),
    ]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Only what a test sets: no CALLCENTER_* variable from the shell leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("CALLCENTER_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_declarations_from_the_settings_the_message_names(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("CALLCENTER_RULES__WORKDAYS__DECLARED_HOLIDAYS", '["2099-01-01"]')
    clean_environment.setenv("CALLCENTER_RULES__WORKDAYS__DECLARED_WORKING_DAYS", '["2099-01-03"]')
    declared = WorkdayCalendar(load_settings().rules.workdays)
    assert not declared.is_working_day(date(2099, 1, 1))
    assert declared.is_working_day(date(2099, 1, 3))


def test_declarations_from_the_rules_file(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[rules.workdays]\ndeclared_working_days = [2099-01-03]\n"
        'declared_holidays = ["2099-01-01"]\n',
        encoding="utf-8",
    )
    declared = WorkdayCalendar(load_settings(rules_file=rules).rules.workdays)
    assert declared.is_working_day(date(2099, 1, 3))
    assert not declared.is_working_day(date(2099, 1, 1))


# -- warnings ---------------------------------------------------------------------------------


def test_no_warnings_inside_the_known_years() -> None:
    assert calendar_warnings(CALENDAR, today=date(2025, 6, 1)) == []
    assert CALENDAR.unknown_dates(days(date(2024, 1, 1), date(2025, 12, 31))) == []


def test_warnings_list_the_unknown_dates_in_the_horizon() -> None:
    last_year = YEARS.stop - 1
    today = date(last_year, 12, 1)
    warnings = calendar_warnings(CALENDAR, today=today, horizon_days=60)
    assert len(warnings) == 1
    (warning,) = warnings
    assert isinstance(warning, CalendarWarning)
    assert warning.first == date(last_year, 12, 29)
    assert warning.last == today + 60 * DAY
    assert warning.days == (warning.last - warning.first).days + 1
    for text in (warning.zh, warning.en, str(warning)):
        assert warning.first.isoformat() in text and warning.last.isoformat() in text
        assert "CALLCENTER_RULES__WORKDAYS__DECLARED_HOLIDAYS" in text
    assert "元旦" in warning.zh and f"没有 {last_year + 1} 年" in warning.zh
    assert f"not {last_year + 1}" in warning.en
    # The horizon is inclusive at both ends.
    assert calendar_warnings(CALENDAR, today=date(last_year, 11, 29), horizon_days=29) == []
    (edge,) = calendar_warnings(CALENDAR, today=date(last_year, 11, 29), horizon_days=30)
    assert (edge.first, edge.last, edge.days) == (date(last_year, 12, 29),) * 2 + (1,)


def test_declared_days_split_the_warnings() -> None:
    declared = calendar(
        working=(date(2099, 1, 5),), holidays=(date(2099, 1, 1), date(2099, 1, 2), date(2099, 1, 3))
    )
    warnings = calendar_warnings(declared, today=date(2099, 1, 1), horizon_days=9)
    assert [(w.first, w.last, w.days) for w in warnings] == [
        (date(2099, 1, 4), date(2099, 1, 4), 1),
        (date(2099, 1, 6), date(2099, 1, 10), 5),
    ]
    with pytest.raises(ValueError, match="0 or more"):
        calendar_warnings(declared, today=date(2099, 1, 1), horizon_days=-1)


def test_unknown_dates_are_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="callcenter.workdays"):
        try:
            CALENDAR.is_working_day(date(2099, 1, 1))
        except UnknownYear as exc:
            log_unknown(exc)
        log_warnings(calendar_warnings(CALENDAR, today=date(2099, 1, 1), horizon_days=3))
    records = [r for r in caplog.records if r.name == "callcenter.workdays"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert "2099-01-01" in records[0].getMessage() and "年" in records[0].getMessage()
    assert "2099-01-01 to 2099-01-04" in records[1].getMessage()


# -- properties -------------------------------------------------------------------------------

known_days = st.dates(min_value=FIRST_KNOWN + 5 * DAY, max_value=LAST_KNOWN - 60 * DAY)
counts = st.integers(min_value=0, max_value=25)


@st.composite
def calendars_and_starts(draw: st.DrawFn) -> tuple[WorkdayCalendar, date]:
    """A start date, and the library alone or with declarations around that date (where they
    change the answers), some of them swapping a working day and a day off."""
    start = draw(known_days)
    near = st.dates(min_value=start - 5 * DAY, max_value=start + 60 * DAY)
    chosen = draw(st.lists(near, max_size=12, unique=True))
    split = draw(st.integers(min_value=0, max_value=len(chosen)))
    cal = calendar(working=tuple(chosen[:split]), holidays=tuple(chosen[split:]))
    return cal, start


def count_working(cal: WorkdayCalendar, after: date, through: date) -> int:
    """Brute force: the working days in (after, through]."""
    return sum(1 for day in days(after + DAY, through) if cal.is_working_day(day))


@FAST
@given(known_days, counts)
def test_add_working_days_matches_the_library(start: date, n: int) -> None:
    result = CALENDAR.add_working_days(start, n)
    assert len(chinese_calendar.get_workdays(start + DAY, result)) == n
    if n:
        assert chinese_calendar.is_workday(result)


@FAST
@given(calendars_and_starts(), counts)
def test_add_working_days_lands_on_the_n_th_working_day(
    case: tuple[WorkdayCalendar, date], n: int
) -> None:
    cal, start = case
    result = cal.add_working_days(start, n)
    if n == 0:
        assert result == start
    else:
        assert result > start
        assert cal.is_working_day(result)
    assert count_working(cal, start, result) == n
    assert cal.working_days_between(start, result) == n


@FAST
@given(calendars_and_starts(), counts)
def test_add_working_days_is_strictly_monotonic(case: tuple[WorkdayCalendar, date], n: int) -> None:
    cal, start = case
    assert cal.add_working_days(start, n) < cal.add_working_days(start, n + 1)


@FAST
@given(calendars_and_starts(), st.integers(min_value=-45, max_value=45))
def test_working_days_between_agrees_with_add_working_days(
    case: tuple[WorkdayCalendar, date], shift: int
) -> None:
    cal, start = case
    end = start + shift * DAY
    # A start in the first weeks of the library's years with a shift back lands before them,
    # where the calendar rightly refuses to answer (tested above).
    assume(end >= FIRST_KNOWN)
    between = cal.working_days_between(start, end)
    assert between == -cal.working_days_between(end, start)
    if end >= start:
        assert between == count_working(cal, start, end)
        # The between-th working day after start is on or before end; the next one is after.
        assert (
            cal.add_working_days(start, between) <= end < cal.add_working_days(start, between + 1)
        )


@FAST
@given(calendars_and_starts(), st.integers(min_value=-5, max_value=60))
def test_every_covered_day_is_known_and_declarations_win(
    case: tuple[WorkdayCalendar, date], shift: int
) -> None:
    cal, start = case
    day = start + shift * DAY
    assert cal.known(day)
    if day in cal.rule.declared_working_days:
        assert cal.is_working_day(day)
    elif day in cal.rule.declared_holidays:
        assert not cal.is_working_day(day)
    else:
        assert cal.is_working_day(day) is chinese_calendar.is_workday(day)
