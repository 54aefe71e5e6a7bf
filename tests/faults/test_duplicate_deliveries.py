"""The order system delivers each of 250 events four times, shuffled, one by one and in
batches, from several connections at once: each event makes exactly one callback, every
delivery of it answers with that callback (created once, then duplicate), nothing fails, and a
CB-7 contact whose closing event exists ends cancelled whichever of the two came first."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col

from api.app import create_app
from callcenter.callbacks.models import Callback
from callcenter.callbacks.rules import CallbackStatus
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.users.models import UserRole
from tests.conftest import IN_WINDOW
from tests.factories import event
from tests.faults.support import api_token, served

# rule CB-7: the event that makes a proactive contact, and the one that makes it pointless.
PAIRS = [
    ("install_accepted", "install_completed"),
    ("fault_accepted", "repair_replied"),
    ("complaint_accepted", "complaint_replied"),
]
SINGLES = [
    "install_completed",
    "repair_replied",
    "complaint_replied",
    "cancellation",
    "install_accepted",
    "fault_accepted",
    "complaint_accepted",
]
PAIR_COUNT, SINGLE_COUNT, COPIES, SENDERS = 60, 130, 4, 8


def make_events(rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """250 distinct events; and, for each CB-7 contact event, its closing event."""
    anchor = IN_WINDOW - timedelta(hours=2)
    events: list[dict[str, Any]] = []
    closer_of: dict[str, str] = {}
    for i in range(PAIR_COUNT):
        opening, closing = PAIRS[i % len(PAIRS)]
        order, customer = f"PAIR-{i}", f"PC-{i}"
        contact = event(
            opening, occurred_at=anchor, event_id=f"open-{i}", order_id=order, customer_id=customer
        )
        closed = event(
            closing,
            occurred_at=anchor + timedelta(minutes=rng.randint(1, 90)),
            event_id=f"close-{i}",
            order_id=order,
            customer_id=customer,
        )
        events += [contact, closed]
        closer_of[contact["event_id"]] = closed["event_id"]
    for i in range(SINGLE_COUNT):
        # Some customers have several orders: their rows are shared between deliveries.
        events.append(
            event(
                SINGLES[i % len(SINGLES)],
                occurred_at=anchor - timedelta(minutes=i),
                event_id=f"single-{i}",
                customer_id=f"SC-{i % 90}",
                phone=f"137{i % 90:08d}",
            )
        )
    assert len(events) == 2 * PAIR_COUNT + SINGLE_COUNT == 250
    return events, closer_of


def make_sends(events: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Every event `COPIES` times, shuffled, cut into single posts and batches of 2 to 30."""
    deliveries = [e for e in events for _ in range(COPIES)]
    rng.shuffle(deliveries)
    sends: list[list[dict[str, Any]]] = []
    while deliveries:
        size = 1 if rng.random() < 0.4 else rng.randint(2, 30)
        sends.append(deliveries[:size])
        deliveries = deliveries[size:]
    return sends


@dataclass
class Answers:
    lock: threading.Lock = field(default_factory=threading.Lock)
    # event_id → (status, callback id) of every delivery
    seen: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)

    def add(self, event_id: str, status: str, callback_id: int) -> None:
        with self.lock:
            self.seen[event_id].append((status, callback_id))

    def fail(self, text: str) -> None:
        with self.lock:
            self.failures.append(text)


def sender(base: str, token: str, work: list[list[dict[str, Any]]], answers: Answers) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for send in work:
            if len(send) == 1:
                response = client.post("/api/v1/events", json=send[0])
                if response.status_code not in (200, 201):
                    answers.fail(f"single {response.status_code}: {response.text[:300]}")
                    continue
                status = "created" if response.status_code == 201 else "duplicate"
                answers.add(send[0]["event_id"], status, response.json()["id"])
                continue
            response = client.post("/api/v1/events/batch", json=send)
            if response.status_code != 200:
                answers.fail(f"batch {response.status_code}: {response.text[:300]}")
                continue
            for result in response.json()["results"]:
                if result["callback"] is None:
                    answers.fail(f"batch result without a callback: {result}")
                    continue
                answers.add(result["event_id"], result["status"], result["callback"]["id"])


def test_a_thousand_shuffled_duplicate_deliveries_make_one_callback_per_event(
    database: Database, clock: FixedClock
) -> None:
    rng = random.Random(20261125)
    events, closer_of = make_events(rng)
    sends = make_sends(events, rng)
    settings = Settings(database_url=database.url, scheduler_enabled=False)
    token = api_token(database, "ordersys", UserRole.SYSTEM, clock.now())
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    answers = Answers()
    with served(app) as base:
        start = threading.Barrier(SENDERS)

        def run(work: list[list[dict[str, Any]]]) -> None:
            start.wait()  # all at once, for the most overlap
            try:
                sender(base, token, work, answers)
            except Exception as exc:  # reported by the test, not lost in the thread
                answers.fail(repr(exc))

        threads = [threading.Thread(target=run, args=(sends[i::SENDERS],)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not answers.failures, answers.failures[:5]
    assert not any(thread.is_alive() for thread in threads)

    assert sum(len(seen) for seen in answers.seen.values()) == len(events) * COPIES
    callback_of: dict[str, int] = {}
    for event_id, seen in answers.seen.items():
        statuses = sorted(status for status, _ in seen)
        assert statuses == ["created"] + ["duplicate"] * (COPIES - 1), (event_id, seen)
        assert len({callback_id for _, callback_id in seen}) == 1, (event_id, seen)
        callback_of[event_id] = seen[0][1]
    assert len(set(callback_of.values())) == len(events)  # one callback each, none shared

    with database.uow() as uow:
        rows = uow.session.execute(
            sa.select(col(Callback.id), col(Callback.event_id), col(Callback.status))
        )
        stored = {row.event_id: (row.id, row.status) for row in rows}
    assert {event_id: callback_id for event_id, (callback_id, _) in stored.items()} == callback_of
    # rule CB-7: every contact whose closing event came is cancelled, whatever the order.
    still_open = [
        (opening, stored[opening][1])
        for opening in closer_of
        if stored[opening][1] is not CallbackStatus.CANCELLED
    ]
    assert not still_open, f"contacts that outlived their closing event: {still_open}"
    assert all(stored[closing][1] is CallbackStatus.PENDING for closing in closer_of.values())
    singles = [status for event_id, (_, status) in stored.items() if event_id.startswith("s")]
    assert set(singles) == {CallbackStatus.PENDING}
