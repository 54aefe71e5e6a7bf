"""Telephony providers behind one small interface: Twilio, or the local simulator.

Settings pick one (`telephony_for`); nothing outside this package imports `twilio`.
"""

from __future__ import annotations

from callcenter.config import TelephonyProvider, TelephonySettings
from callcenter.telephony.base import (
    CallRequest,
    Gather,
    Hangup,
    PlacedCall,
    ProviderCall,
    Redirect,
    Say,
    Telephony,
    TelephonyError,
    Verb,
)


def telephony_for(settings: TelephonySettings, *, play_simulated: bool = True) -> Telephony:
    """Twilio when an account is configured, else the local simulator."""
    if settings.provider is TelephonyProvider.TWILIO:
        from callcenter.telephony.twilio import TwilioTelephony

        assert settings.account_sid is not None and settings.auth_token is not None
        return TwilioTelephony(
            account_sid=settings.account_sid,
            auth_token=settings.auth_token.get_secret_value(),
            api_base_url=settings.api_base_url,
            timeout_seconds=settings.request_timeout_seconds,
        )
    from callcenter.telephony.simulator import SimulatedTelephony

    return SimulatedTelephony(
        signing_key=settings.signing_key(),
        busy_share=settings.simulator_busy_share,
        no_answer_share=settings.simulator_no_answer_share,
        machine_share=settings.simulator_machine_share,
        play=play_simulated,
    )


__all__ = [
    "CallRequest",
    "Gather",
    "Hangup",
    "PlacedCall",
    "ProviderCall",
    "Redirect",
    "Say",
    "Telephony",
    "TelephonyError",
    "Verb",
    "telephony_for",
]
