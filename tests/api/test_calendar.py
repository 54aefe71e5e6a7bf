"""Working days where a rule counts them: a day-5 install contact carries the install's due
dates (≤3 working days, at most 7), and days the calendar does not know are said loudly."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from callcenter.users.models import UserRole
from tests.conftest import Users
from tests.factories import event


def test_an_install_contact_carries_the_working_day_due_dates(
    client: TestClient, users: Users
) -> None:
    # Accepted Wednesday 2026-11-25: 3 working days → Monday 11-30, 7 → Friday 12-04.
    accepted = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    body = client.post(
        "/api/v1/events", json=event("install_accepted", occurred_at=accepted), headers=users.system
    ).json()
    assert body["type"] == "install_delay"
    assert body["install_due_on"] == "2026-11-30"
    assert body["install_latest_on"] == "2026-12-04"
    other = client.post(
        "/api/v1/events", json=event("repair_replied", occurred_at=accepted), headers=users.system
    ).json()
    assert other["install_due_on"] is None


def test_a_date_the_calendar_does_not_know_is_loud_not_guessed(
    client: TestClient, users: Users, clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    # Accepted 2026-12-24: the 7th working day falls at the turn of the year, whose
    # make-up days the calendar does not know yet. No weekday guess: no dates, a warning.
    accepted = datetime(2026, 12, 24, 1, 0, tzinfo=UTC)
    clock.set(accepted)  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="callcenter.workdays"):
        body = client.post(
            "/api/v1/events",
            json=event("install_accepted", occurred_at=accepted),
            headers=users.system,
        ).json()
    assert body["install_due_on"] is None and body["install_latest_on"] is None
    assert any("2026-12-29" in record.getMessage() for record in caplog.records)


def test_supervisors_see_the_unknown_days_ahead(client: TestClient, users: Users) -> None:
    supervisor = users.headers("sup", UserRole.SUPERVISOR)
    warnings = client.get("/api/v1/calendar/warnings", headers=supervisor)
    assert warnings.status_code == 200
    first = warnings.json()[0]
    assert date.fromisoformat(first["first"]) == date(2026, 12, 29)
    assert "2026-12-29" in first["zh"] and "2026-12-29" in first["en"]
    agent = client.get("/api/v1/calendar/warnings", headers=users.headers("agent1"))
    assert agent.status_code == 403
