"""Twilio: outbound calls through its REST API (the Calls resource)."""

from __future__ import annotations

from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from callcenter.config import TelephonyProvider
from callcenter.telephony.base import CallRequest, PlacedCall, ProviderCall, TelephonyError

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class TwilioTelephony:
    provider = TelephonyProvider.TWILIO

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base_url: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        from twilio.http.http_client import TwilioHttpClient

        self.client = Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_seconds)
        )
        if api_base_url:
            # The same client against a stand-in of the REST API (tests, a local proxy).
            self.client.api.base_url = api_base_url.rstrip("/")

    def place_call(self, request: CallRequest) -> PlacedCall:
        options: dict[str, Any] = {
            "to": request.to,
            "from_": request.from_,
            "url": request.url,
            "method": "POST",
            "status_callback": request.status_callback,
            "status_callback_method": "POST",
            "status_callback_event": STATUS_EVENTS,
            "timeout": request.ring_timeout_seconds,
            "time_limit": request.time_limit_seconds,
        }
        if request.machine_detection:
            options["machine_detection"] = "Enable"
        try:
            call = self.client.calls.create(**options)
        except TwilioRestException as exc:
            raise TelephonyError(f"Twilio refused the call: {exc.status} {exc.msg}") from exc
        except Exception as exc:  # the HTTP library's errors: refused, reset, timed out
            if "Timeout" in type(exc).__name__:  # sent, perhaps taken: we cannot tell
                raise TelephonyError(
                    f"Twilio did not answer in time: {exc}", certain=False
                ) from exc
            raise TelephonyError(f"Twilio could not be reached: {exc}") from exc
        return PlacedCall(sid=str(call.sid), status=str(call.status or "queued"))

    def fetch_call(self, sid: str) -> ProviderCall:
        try:
            call = self.client.calls(sid).fetch()
        except Exception as exc:
            raise TelephonyError(f"Twilio could not say how call {sid} went: {exc}") from exc
        duration = call.duration
        return ProviderCall(
            sid=sid,
            status=str(call.status),
            answered_by=call.answered_by,
            duration_seconds=int(duration) if duration not in (None, "") else None,
        )
