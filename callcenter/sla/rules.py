"""SLA rules as pure functions: when a callback is at risk, who owns it, how late it was."""

from __future__ import annotations

from datetime import datetime, timedelta

from callcenter.config import CallbackType, RulesConfig

CENTRE = "10050客服中心"
BRANCH = "分公司"

# chapter 4 §1: who owns each callback (and so receives its urging order, rule WO-4).
OWNER: dict[CallbackType, str] = {
    CallbackType.INSTALL: CENTRE,  # rule CB-1
    CallbackType.REPAIR: CENTRE,  # rule CB-2
    CallbackType.COMPLAINT: CENTRE,  # rule CB-3
    CallbackType.CHURN: BRANCH,  # rule CB-4
    CallbackType.INSTALL_DELAY: CENTRE,  # rule CB-7
    CallbackType.FAULT_DELAY: CENTRE,
    CallbackType.COMPLAINT_CONTACT: CENTRE,
    CallbackType.WIN_BACK: BRANCH,  # rule RT-4: the branch wins its customers back
}


def at_risk_margin(kind: CallbackType, config: RulesConfig) -> timedelta:
    """How long before its target a callback counts as at risk: the part of the time to target
    that is left once the configured share of it has passed."""
    return config.rule_for(kind).target * (1 - config.sla.at_risk_share)


def late_by(at: datetime, due_at: datetime) -> timedelta:
    """How far past its target an instant is (zero when in time)."""
    return max(at - due_at, timedelta(0))
