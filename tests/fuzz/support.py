"""What the fuzz tests share: a seeded app per backend, the users of every role, and a
fingerprint of the whole database to prove that a refused request changed nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from callcenter.db import Database
from callcenter.models import metadata
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_token, create_user
from tests.conftest import IN_WINDOW, Users
from tests.factories import INSTALL_ANSWERS, event, hours

# Each table's row count and a digest of its rows.
Fingerprint = dict[str, tuple[int, str]]

# Who the fuzz tests act as: a name for each identity and the role it has.
IDENTITIES: dict[str, tuple[str, UserRole]] = {
    "system": ("ordersys", UserRole.SYSTEM),
    "agent1": ("agent1", UserRole.AGENT),
    "agent2": ("agent2", UserRole.AGENT),
    "agent3": ("agent3", UserRole.AGENT),
    "supervisor": ("supervisor1", UserRole.SUPERVISOR),
    "lead": ("lead1", UserRole.RETENTION_LEAD),
    "manager": ("manager1", UserRole.MANAGER),
    "admin": ("admin1", UserRole.ADMIN),
}
# No token at all, and a token nobody was given: both must be a documented 401.
ANONYMOUS = "anonymous"
FORGED = "forged"
FORGED_TOKEN = "cc_" + "0" * 40

# The churn script answered for a customer who still leaves (rule Q-CHURN).
CHURN_ANSWERS: dict[str, Any] = {"reason": "price", "retained": False, "reinstall": "not_now"}


class ApiUsers(Users):
    """The same users, made without a console password: they only ever use API tokens, and
    hashing eight passwords per backend and module would cost more than a hundred requests."""

    def make(self, username: str, role: UserRole) -> tuple[User, str]:
        if username not in self._made:
            now = self.clock.now()
            user = create_user(
                self.database.uow(),
                username=username,
                role=role,
                now=now,
                employee_number=f"E{len(self._made) + 1:04d}",
            )
            token = create_token(self.database.uow(), username=username, now=now)
            self._made[username] = (user, token)
        return self._made[username]


@dataclass
class Seeded:
    """The ids of what the seed made, so that fuzzed path parameters can name real rows."""

    ids: dict[str, list[int]] = field(default_factory=dict)
    # agent2's install callback, its script answered in full.
    install_callback: int = 0


@dataclass
class FuzzTarget:
    backend: str
    app: FastAPI
    client: TestClient
    database: Database
    users: Users
    seeded: Seeded

    # The database's fingerprint after the last request the fuzz sent (None: not known).
    last_fingerprint: Fingerprint | None = None

    def state_before(self) -> Fingerprint:
        """The database as it is before a request (the fuzz keeps the state after each of its
        requests, so that one read per request is enough)."""
        before = self.last_fingerprint or fingerprint(self.database)
        self.last_fingerprint = None  # unknown until the request has been answered
        return before

    def check_after(self, before: Fingerprint, status: int, what: str) -> None:
        """A refused request (4xx) changed nothing at all."""
        after = fingerprint(self.database)
        self.last_fingerprint = after
        if 400 <= status < 500:
            changed = changed_tables(before, after)
            assert not changed, f"{what} answered {status} but changed {changed}"

    def headers(self, who: str) -> dict[str, str]:
        if who == ANONYMOUS:
            return {}
        if who == FORGED:
            return {"Authorization": f"Bearer {FORGED_TOKEN}"}
        return self.users.headers(*IDENTITIES[who])


def seed(client: TestClient, users: Users) -> Seeded:
    """A small desk in every state the API can act on: callbacks pending and claimed, answers,
    a follow-up work order, a retention case at level 1, a roster row."""
    system = users.headers(*IDENTITIES["system"])

    def post(path: str, body: Any, who: str, expect: int = 201) -> Any:
        response = client.post(path, json=body, headers=users.headers(*IDENTITIES[who]))
        assert response.status_code == expect, (path, response.text)
        return response.json()

    def claim(who: str) -> int:
        response = client.post("/api/v1/callbacks/claim", headers=users.headers(*IDENTITIES[who]))
        assert response.status_code == 200, response.text
        return int(response.json()["callback"]["id"])

    # agent1 holds a churn callback with its script answered: a retention case at level 1.
    churn = event("cancellation", occurred_at=IN_WINDOW - timedelta(minutes=30))
    assert client.post("/api/v1/events", json=churn, headers=system).status_code == 201
    churn_id = claim("agent1")
    post(f"/api/v1/callbacks/{churn_id}/answers", {"answers": CHURN_ANSWERS}, "agent1")
    # agent2 holds an install callback, answered, with a follow-up work order.
    install = event(occurred_at=IN_WINDOW - hours(1))
    assert client.post("/api/v1/events", json=install, headers=system).status_code == 201
    install_id = claim("agent2")
    post(f"/api/v1/callbacks/{install_id}/answers", {"answers": INSTALL_ANSWERS}, "agent2")
    post(
        f"/api/v1/callbacks/{install_id}/workorders",
        {"subject": "Router light blinks red", "team": "field"},
        "agent2",
    )
    # Callbacks of every kind still waiting in the queue.
    for kind in ("repair_replied", "complaint_replied", "install_accepted", "fault_accepted"):
        payload = event(kind, occurred_at=IN_WINDOW - hours(2))
        assert client.post("/api/v1/events", json=payload, headers=system).status_code == 201
    # Every identity's token exists before the first fingerprint is taken.
    for username, role in IDENTITIES.values():
        users.headers(username, role)
    return Seeded(ids=current_ids(users.database), install_callback=install_id)


# Path parameters that name rows, and the table whose ids they take.
ID_PARAMETERS: dict[str, str] = {
    "callback_id": "callbacks",
    "answer_id": "answers",
    "work_order_id": "work_orders",
    "case_id": "retention_cases",
}


def current_ids(database: Database) -> dict[str, list[int]]:
    with database.engine.connect() as connection:
        return {
            name: sorted(connection.execute(sa.text(f"SELECT id FROM {table}")).scalars())
            for name, table in ID_PARAMETERS.items()
        }


def fingerprint(database: Database) -> Fingerprint:
    """Each table's row count and a digest of its rows in key order. The fuzz desk is small,
    so reading every row is cheaper than keeping triggers or checksum columns for the test."""
    result: Fingerprint = {}
    with database.engine.connect() as connection:
        for table in metadata.sorted_tables:
            key = list(table.primary_key.columns) or list(table.columns)
            rows = connection.execute(sa.select(table).order_by(*key)).all()
            digest = hashlib.blake2b(repr(rows).encode(), digest_size=16).hexdigest()
            result[table.name] = (len(rows), digest)
    return result


def changed_tables(before: Mapping[str, tuple[int, str]], after: Fingerprint) -> list[str]:
    return [
        f"{name}: {before.get(name, (0, ''))[0]} → {after[name][0]} rows"
        for name in after
        if before.get(name) != after[name]
    ]
