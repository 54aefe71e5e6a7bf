"""Builders of test inputs with sensible defaults."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

_serial = itertools.count(1)


def event(
    type_: str = "install_completed",
    *,
    occurred_at: datetime,
    event_id: str | None = None,
    order_id: str | None = None,
    customer_id: str | None = None,
    phone: str | None = None,
    timezone: str | None = None,
    name: str = "王芳",
) -> dict[str, Any]:
    n = next(_serial)
    customer: dict[str, Any] = {
        "id": customer_id or f"C-{n}",
        "name": name,
        "phone": phone or f"138{n:08d}",
    }
    if timezone:
        customer["timezone"] = timezone
    return {
        "event_id": event_id or f"evt-{n}",
        "type": type_,
        "occurred_at": occurred_at.isoformat(),
        "order_id": order_id or f"ORD-{n}",
        "customer": customer,
    }


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# A complete, satisfied answer set for the install script (rule Q-INSTALL).
INSTALL_ANSWERS: dict[str, Any] = {
    "working": True,
    "appointment_kept": True,
    "conduct_standard": True,
    "overall": 5,
}
