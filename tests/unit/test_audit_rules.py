"""The audit trail's pure parts (rule SV-4): who an action is recorded as, and how two
configurations are compared."""

from __future__ import annotations

from datetime import UTC, datetime

from callcenter.audit.rules import (
    IVR,
    Actor,
    config_changes,
    fingerprint,
    flatten,
    system_actor,
)
from callcenter.users.models import User, UserRole


def test_an_actor_is_the_user_as_they_are_now_with_the_address() -> None:
    user = User(
        id=7,
        username="agent7",
        display_name="Agent Seven",
        role=UserRole.AGENT,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert Actor.of(user, "10.0.0.1") == Actor(7, "agent7", "agent", "10.0.0.1")
    assert Actor.of(user).address is None
    assert (IVR.user_id, IVR.role, IVR.address) == (None, "system", None)
    assert system_actor("scheduler").username == "scheduler"


def test_a_configuration_is_compared_key_by_key() -> None:
    old = flatten({"rules": {"attempts": {"max_attempts": 3, "lease": "PT15M"}, "windows": [1]}})
    assert old == {
        "rules.attempts.lease": "PT15M",
        "rules.attempts.max_attempts": 3,
        "rules.windows": [1],
    }
    new = {**old, "rules.attempts.max_attempts": 4, "rules.windows": [1, 2], "console.x": True}
    del new["rules.attempts.lease"]
    assert config_changes(old, new) == {
        "console.x": {"old": None, "new": True},
        "rules.attempts.lease": {"old": "PT15M", "new": None},
        "rules.attempts.max_attempts": {"old": 3, "new": 4},
        "rules.windows": {"old": [1], "new": [1, 2]},
    }
    assert config_changes(old, dict(old)) == {}
    assert fingerprint(old) == fingerprint(dict(reversed(old.items())))  # order does not count
    assert fingerprint(old) != fingerprint(new)
