"""The small interface every telephony provider offers, and the voice verbs of a call.

The IVR's logic speaks in these verbs; `twiml.py` turns them into TwiML, which both Twilio and
the local simulator execute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callcenter.config import TelephonyProvider


@dataclass(frozen=True)
class CallRequest:
    """One outbound call to place: the customer's number and where the call asks us what to
    say and tells us how it went."""

    to: str
    from_: str
    url: str  # the voice webhook: what to say once answered
    status_callback: str  # every change of the call's status
    machine_detection: bool
    ring_timeout_seconds: int
    time_limit_seconds: int


@dataclass(frozen=True)
class PlacedCall:
    sid: str
    status: str  # as the provider names it ("queued", "initiated", …)


@dataclass(frozen=True)
class ProviderCall:
    """A call as the provider knows it (to settle a call whose final status never came)."""

    sid: str
    status: str
    answered_by: str | None
    duration_seconds: int | None


class TelephonyError(Exception):
    """The provider did not take the call. `certain` is False when we cannot tell whether it
    did (a timeout): such a call is never placed again, it is settled later."""

    def __init__(self, message: str, *, certain: bool = True) -> None:
        super().__init__(message)
        self.certain = certain


class Telephony(Protocol):
    provider: TelephonyProvider

    def place_call(self, request: CallRequest) -> PlacedCall:
        """Ask the provider to call; raise `TelephonyError` when it refuses or fails."""
        ...

    def fetch_call(self, sid: str) -> ProviderCall:
        """The provider's view of a call; raise `TelephonyError` when it cannot say."""
        ...


# -- voice verbs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Gather:
    """Say the texts and listen for keys; the keys go to `action`. Without input the call
    goes on with the next verb."""

    texts: tuple[str, ...]
    action: str
    num_digits: int | None  # complete after this many keys …
    finish_on_key: str | None  # … or when this key is pressed
    timeout_seconds: int


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Hangup:
    pass


Verb = Say | Gather | Redirect | Hangup
