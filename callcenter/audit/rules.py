"""What the audit trail records and the pure logic around it (rule SV-4): who acted, the
actions it knows, and how a configuration is compared with the one recorded before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callcenter.users.models import User


class AuditAction(StrEnum):
    """Every action the trail records. Masked views are not recorded: only what reveals a
    customer's full phone number or changes a record (rule SV-4)."""

    PHONE_VIEWED = "phone_viewed"
    ATTEMPT_RECORDED = "attempt_recorded"
    ANSWERS_RECORDED = "answers_recorded"
    ANSWER_CORRECTED = "answer_corrected"
    CALLBACK_REASSIGNED = "callback_reassigned"
    LEASE_RELEASED = "lease_released"
    WORKORDER_CREATED = "workorder_created"
    WORKORDER_HANDED_OVER = "workorder_handed_over"
    RETENTION_STEP_RECORDED = "retention_step_recorded"
    CONFIG_CHANGED = "config_changed"


class SubjectType(StrEnum):
    """What an action was about; its id is the subject's id as the product shows it."""

    CUSTOMER = "customer"  # the order system's customer id
    CALLBACK = "callback"
    ANSWER = "answer"
    WORK_ORDER = "work_order"
    RETENTION_CASE = "retention_case"
    CONFIGURATION = "configuration"


SYSTEM_ROLE = "system"


@dataclass(frozen=True)
class Actor:
    """Who did something and from which address (None: a job, the IVR, the command line)."""

    user_id: int | None
    username: str
    role: str
    address: str | None = None

    @classmethod
    def of(cls, user: User, address: str | None = None) -> Actor:
        return cls(user_id=user.id, username=user.username, role=str(user.role), address=address)


# The machine's own actors: no user account, no address.
IVR = Actor(user_id=None, username="ivr", role=SYSTEM_ROLE)


def system_actor(process: str) -> Actor:
    """The process that noticed something by itself (`api`, `scheduler`)."""
    return Actor(user_id=None, username=process, role=SYSTEM_ROLE)


def actor_for(user: User, actor: Actor | None) -> Actor:
    """The actor a service records: the one the caller built (with the address), else the
    acting user without an address (jobs, the command line, tests)."""
    return actor if actor is not None else Actor.of(user)


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested JSON value as dotted keys (`attempts.max_attempts`); lists stay whole (the
    offers catalogue changes as one)."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key in sorted(value, key=str):
            flat.update(flatten(value[key], f"{prefix}{key}."))
        return flat
    return {prefix.removesuffix("."): value}


def fingerprint(flat: Mapping[str, Any]) -> str:
    encoded = json.dumps(flat, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def config_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The keys whose value differs, each with its old and new value (None: absent)."""
    before = old or {}
    keys = sorted(set(before) | set(new))
    return {
        key: {"old": before.get(key), "new": new.get(key)}
        for key in keys
        if before.get(key) != new.get(key)
    }
