"""The manager's figures as pure functions: how one closed callback counts, the KPI formulas
of the handbook, how a figure compares with its target, the Pareto of churn reasons and the
retention rate per level (rules KPI-1..KPI-3, CB-6, RT-1..RT-4).

Nothing here reads the clock or the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from callcenter.callbacks.rules import CallbackStatus
from callcenter.config import RETENTION_LEVELS, Channel, KpiTargets


@dataclass(frozen=True)
class ClosedCallback:
    """What the figures need of one callback closed in the period."""

    status: CallbackStatus
    closed_at: datetime
    due_at: datetime
    hard_due_at: datetime
    attempts: int = 0  # the attempts it took
    channel: Channel | None = None  # the channel of its last attempt
    dissatisfied: bool = False  # the customer said so in the survey (rule KPI-2)


@dataclass
class Tally:
    """The counts of a set of closed callbacks, attempts and follow-up orders; they add up
    over days, teams, agents and types, so that a period is the sum of its days."""

    closed: int = 0
    cancelled: int = 0
    closed_in_time: int = 0
    completed: int = 0
    within_target: int = 0
    within_hard_limit: int = 0
    expired: int = 0
    failed: int = 0
    completed_attempts: int = 0
    dissatisfied: int = 0
    by_ivr: int = 0
    attempts: int = 0
    answered: int = 0
    transfers_sent: int = 0
    transfers_in_time: int = 0

    def add(self, callback: ClosedCallback) -> None:
        """Count one closed callback."""
        self.closed += 1
        if callback.status is CallbackStatus.CANCELLED:
            # The order itself went away (cancelled upstream): not an order the centre is
            # measured on.
            self.cancelled += 1
            return
        in_time = callback.closed_at <= callback.due_at
        if callback.status is CallbackStatus.COMPLETED:
            self.completed += 1
            self.within_target += in_time
            self.within_hard_limit += callback.closed_at <= callback.hard_due_at
            self.completed_attempts += callback.attempts
            self.dissatisfied += callback.dissatisfied
            self.by_ivr += callback.channel is Channel.IVR
            self.closed_in_time += in_time  # rule KPI-1
        elif callback.status is CallbackStatus.FAILED:
            # Closed as not reachable after every attempt: overdue only if that was late.
            self.failed += 1
            self.closed_in_time += in_time  # rule KPI-1
        elif callback.status is CallbackStatus.EXPIRED:
            self.expired += 1  # the hard limit passed: overdue by definition

    def add_transfer(self, *, due_at: datetime, handed_over_at: datetime | None) -> None:
        """Count one follow-up order the hotline raised (rules SV-5, KPI-3)."""
        self.transfers_sent += 1
        self.transfers_in_time += handed_over_at is not None and handed_over_at <= due_at

    def merge(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def orders(self) -> int:
        """The orders the centre is measured on: closed, except the cancelled ones."""
        return self.closed - self.cancelled


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        """The share, or None when there is nothing to divide by."""
        return self.numerator / self.denominator if self.denominator else None


def timeliness_rate(tally: Tally) -> Ratio:
    """rule KPI-1: orders not overdue / all orders. An order is a callback closed in the
    period (cancelled ones aside); not overdue: completed, or closed as unreachable, no
    later than its target."""
    return Ratio(tally.closed_in_time, tally.orders)


def satisfaction_rate(tally: Tally) -> Ratio:
    """rule KPI-2: orders where the customer did not say they were dissatisfied / all
    orders, over the completed callbacks (the orders whose customer was asked)."""
    return Ratio(tally.completed - tally.dissatisfied, tally.completed)


def transfer_timeliness(tally: Tally) -> Ratio:
    """rule KPI-3: orders transferred in time / orders the hotline sent: follow-up orders
    handed over no later than they were due (rule SV-5: within 15 minutes)."""
    return Ratio(tally.transfers_in_time, tally.transfers_sent)


def within_target_rate(tally: Tally) -> Ratio:
    """Completed callbacks closed no later than their target (CB-1..CB-4) / completed."""
    return Ratio(tally.within_target, tally.completed)


def within_hard_limit_rate(tally: Tally) -> Ratio:
    """Completed callbacks closed no later than their hard limit / completed."""
    return Ratio(tally.within_hard_limit, tally.completed)


def attempts_per_completed(tally: Tally) -> float | None:
    """The attempts the completed callbacks took / completed callbacks."""
    return tally.completed_attempts / tally.completed if tally.completed else None


def ivr_share(tally: Tally) -> Ratio:
    """Completed callbacks whose last attempt was the IVR's / completed."""
    return Ratio(tally.by_ivr, tally.completed)


def answer_rate(attempts: int, answered: int) -> Ratio:
    """Attempts the customer answered / attempts."""
    return Ratio(answered, attempts)


class Grade(StrEnum):
    """How a figure compares with its target: the colour it is shown in."""

    MET = "met"  # at or above the target
    NEAR = "near"  # below, by less than the configured margin
    MISSED = "missed"
    NONE = "none"  # no data, or no target


def grade(value: float | None, target: float | None, near: float) -> Grade:
    if value is None or target is None:
        return Grade.NONE
    if value >= target:
        return Grade.MET
    return Grade.NEAR if value >= target - near else Grade.MISSED


class Kpi(StrEnum):
    TIMELINESS = "timeliness"  # rule KPI-1
    SATISFACTION = "satisfaction"  # rule KPI-2
    TRANSFER = "transfer_timeliness"  # rule KPI-3


def target_of(kpi: Kpi, targets: KpiTargets) -> float:
    return {
        Kpi.TIMELINESS: targets.timeliness,
        Kpi.SATISFACTION: targets.satisfaction,
        Kpi.TRANSFER: targets.transfer_timeliness,
    }[kpi]


# ---------------------------------------------------------------------------------------
# Churn
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParetoBar:
    code: str
    count: int
    share: float  # of all cases
    cumulative: float  # this bar and every bar before it


def pareto(counts: Mapping[str, int]) -> list[ParetoBar]:
    """Reasons by count, largest first (ties by code), each with its share and the
    cumulative share: the few reasons that make most of the churn come first."""
    total = sum(counts.values())
    bars: list[ParetoBar] = []
    running = 0
    for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count <= 0:
            continue
        running += count
        bars.append(ParetoBar(code, count, count / total, running / total))
    return bars


@dataclass(frozen=True)
class LevelRate:
    level: int
    reached: int  # decided cases that reached this level
    retained: int  # … retained at it
    lost: int  # … lost at it

    @property
    def rate(self) -> float | None:
        """rules RT-1..RT-3: the share of the customers a level tried that it kept."""
        return self.retained / self.reached if self.reached else None


def retention_by_level(decided: Iterable[tuple[int, str, int]]) -> list[LevelRate]:
    """From `(level where decided, retained|lost, cases)`: for each level, the decided cases
    that reached it (decided at it or above) and those it retained and lost."""
    retained: dict[int, int] = dict.fromkeys(RETENTION_LEVELS, 0)
    lost: dict[int, int] = dict.fromkeys(RETENTION_LEVELS, 0)
    for level, state, cases in decided:
        if state == "retained":
            retained[level] = retained.get(level, 0) + cases
        elif state == "lost":
            lost[level] = lost.get(level, 0) + cases
    rates = []
    for level in sorted(retained):
        reached = sum(retained[n] + lost.get(n, 0) for n in retained if n >= level)
        rates.append(LevelRate(level, reached, retained[level], lost.get(level, 0)))
    return rates


@dataclass(frozen=True)
class OfferFigures:
    offer_code: str
    made: int
    accepted: int
    accepted_cost_yuan: int

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.made if self.made else None

    @property
    def cost_per_retained(self) -> float | None:
        """What one customer kept by this offer cost."""
        return self.accepted_cost_yuan / self.accepted if self.accepted else None
