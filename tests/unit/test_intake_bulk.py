"""The intake's PostgreSQL batch statements name their columns by hand
(callcenter/callbacks/bulk.py): a column added to a table must not be left out silently."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.callbacks import service
from callcenter.callbacks.models import Callback, IntakeEvent
from callcenter.customers.models import Customer


def _required(table: Any) -> set[str]:
    """Columns a row cannot be inserted without: NOT NULL and with no default of their own."""
    return {
        column.name
        for column in table.columns
        if not column.nullable
        and column.default is None
        and column.server_default is None
        and not (column.primary_key and column.autoincrement in (True, "auto"))
    }


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        (Callback.__table__, service._CALLBACK_COLUMNS),  # type: ignore[attr-defined]
        (IntakeEvent.__table__, service._EVENT_COLUMNS),  # type: ignore[attr-defined]
        (Customer.__table__, service._CUSTOMER_COLUMNS),  # type: ignore[attr-defined]
    ],
)
def test_batch_inserts_name_real_columns_and_every_required_one(
    table: Any, columns: list[tuple[str, type]]
) -> None:
    names = {name for name, _ in columns}
    assert names <= set(table.columns.keys()), names - set(table.columns.keys())
    assert _required(table) <= names, _required(table) - names


def test_the_callbacks_insert_leaves_out_only_what_a_new_callback_has_not_got() -> None:
    # Everything else a new callback has must be written (rule SV-4: nothing half-written).
    left_out = set(Callback.__table__.columns.keys()) - {  # type: ignore[attr-defined]
        name for name, _ in service._CALLBACK_COLUMNS
    }
    assert left_out == {
        "claim_id",
        "claimed_by_id",
        "claimed_at",
        "lease_expires_at",
        "assigned_agent_id",
        "at_risk_since",
        "overdue_since",
    }
