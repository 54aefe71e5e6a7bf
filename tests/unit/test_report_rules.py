"""The manager's figures on hand-made data sets whose answers are known (rules KPI-1..KPI-3,
RT-1..RT-4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.callbacks.rules import CallbackStatus
from callcenter.config import Channel, KpiTargets
from callcenter.reports import rules
from callcenter.reports.rules import ClosedCallback, Grade, Tally

T = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def closed(
    status: CallbackStatus,
    *,
    late_by: timedelta = -H,
    hard_late_by: timedelta = -2 * H,
    attempts: int = 1,
    channel: Channel | None = Channel.AGENT,
    dissatisfied: bool = False,
) -> ClosedCallback:
    """A callback closed at T, its target `late_by` before T (negative: after T)."""
    return ClosedCallback(
        status=status,
        closed_at=T,
        due_at=T - late_by,
        hard_due_at=T - hard_late_by,
        attempts=attempts,
        channel=channel,
        dissatisfied=dissatisfied,
    )


def known_day() -> Tally:
    """10 closed callbacks: 6 completed (4 in time, 1 late within the hard limit, 1 past the
    hard limit), 1 failed in time, 1 failed late, 1 expired, 1 cancelled."""
    done, failed = CallbackStatus.COMPLETED, CallbackStatus.FAILED
    tally = Tally()
    for callback in [
        closed(done, attempts=1),
        closed(done, attempts=2, dissatisfied=True),
        closed(done, attempts=1, channel=Channel.IVR),
        closed(done, attempts=3, channel=Channel.IVR),
        closed(done, late_by=H, attempts=2),  # late, within the hard limit
        closed(done, late_by=3 * H, hard_late_by=H, attempts=3, dissatisfied=True),
        closed(failed, attempts=3),  # unreachable, closed before the target
        closed(failed, late_by=H, attempts=3),
        closed(CallbackStatus.EXPIRED, late_by=5 * H, hard_late_by=0 * H, attempts=0),
        closed(CallbackStatus.CANCELLED, attempts=0),
    ]:
        tally.add(callback)
    for handed_after in [5, 10, 15, 16, None]:  # minutes after raised; due after 15
        raised = T
        tally.add_transfer(
            due_at=raised + timedelta(minutes=15),
            handed_over_at=None
            if handed_after is None
            else raised + timedelta(minutes=handed_after),
        )
    tally.attempts, tally.answered = 20, 8
    return tally


def test_kpi_1_timeliness_is_orders_not_overdue_over_all_orders() -> None:
    tally = known_day()
    # 9 orders (the cancelled one aside); not overdue: 4 completed + 1 failed in time.
    assert rules.timeliness_rate(tally) == rules.Ratio(5, 9)
    assert rules.timeliness_rate(tally).value == pytest.approx(5 / 9)


def test_kpi_2_satisfaction_counts_orders_without_a_dissatisfied_answer() -> None:
    assert rules.satisfaction_rate(known_day()) == rules.Ratio(4, 6)


def test_kpi_3_transfer_timeliness_is_in_time_over_sent() -> None:
    # handed over at 5, 10, 15 minutes: in time; 16: late; never: not in time.
    assert rules.transfer_timeliness(known_day()) == rules.Ratio(3, 5)


def test_completed_within_target_and_hard_limit() -> None:
    tally = known_day()
    assert rules.within_target_rate(tally) == rules.Ratio(4, 6)
    assert rules.within_hard_limit_rate(tally) == rules.Ratio(5, 6)


def test_attempts_per_completed_ivr_share_and_answer_rate() -> None:
    tally = known_day()
    assert rules.attempts_per_completed(tally) == pytest.approx(12 / 6)
    assert rules.ivr_share(tally) == rules.Ratio(2, 6)
    assert rules.answer_rate(tally.attempts, tally.answered).value == pytest.approx(0.4)


def test_a_period_is_the_sum_of_its_days() -> None:
    first, second = known_day(), known_day()
    first.merge(second)
    assert rules.timeliness_rate(first) == rules.Ratio(10, 18)
    assert first.closed == 20 and first.cancelled == 2


def test_no_data_gives_no_value_rather_than_zero() -> None:
    empty = Tally()
    assert rules.timeliness_rate(empty).value is None
    assert rules.attempts_per_completed(empty) is None
    assert rules.grade(None, 0.9, 0.05) is Grade.NONE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.95, Grade.MET),
        (0.90, Grade.MET),
        (0.86, Grade.NEAR),
        (0.85, Grade.NEAR),
        (0.84, Grade.MISSED),
    ],
)
def test_a_figure_is_graded_by_its_target(value: float, expected: Grade) -> None:
    targets = KpiTargets()
    target = rules.target_of(rules.Kpi.TIMELINESS, targets)
    assert target == 0.90  # rule KPI-1
    assert rules.grade(value, target, targets.near) is expected


def test_the_handbook_targets_are_the_defaults() -> None:
    targets = KpiTargets()
    assert (targets.timeliness, targets.satisfaction, targets.transfer_timeliness) == (
        0.90,
        0.95,
        0.99,
    )


def test_pareto_puts_the_largest_reasons_first_with_cumulative_shares() -> None:
    bars = rules.pareto({"moving_house": 10, "price": 50, "network_quality": 30, "other": 10})
    assert [(b.code, b.count) for b in bars] == [
        ("price", 50),
        ("network_quality", 30),
        ("moving_house", 10),
        ("other", 10),
    ]
    assert [round(b.share, 2) for b in bars] == [0.5, 0.3, 0.1, 0.1]
    assert [round(b.cumulative, 2) for b in bars] == [0.5, 0.8, 0.9, 1.0]
    assert rules.pareto({}) == []


def test_retention_rate_per_level_counts_the_cases_that_reached_it() -> None:
    # 100 decided: 40 kept at level 1, 60 escalated; 20 kept at level 2; 10 kept and 30 lost
    # at level 3.
    levels = rules.retention_by_level(
        [(1, "retained", 40), (2, "retained", 20), (3, "retained", 10), (3, "lost", 30)]
    )
    assert [(r.level, r.reached, r.retained, r.lost) for r in levels] == [
        (1, 100, 40, 0),
        (2, 60, 20, 0),
        (3, 40, 10, 30),
    ]
    assert [r.rate for r in levels] == [0.4, pytest.approx(1 / 3), 0.25]


def test_offer_figures() -> None:
    offer = rules.OfferFigures("free_month_1", made=8, accepted=2, accepted_cost_yuan=200)
    assert offer.acceptance == 0.25
    assert offer.cost_per_retained == 100
    assert rules.OfferFigures("x", 0, 0, 0).acceptance is None
