"""Webhook signatures (X-Twilio-Signature): HMAC-SHA1 of the URL and the sorted form fields,
keyed with the account's auth token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

HEADER = "X-Twilio-Signature"


def sign(key: str, url: str, params: Mapping[str, str]) -> str:
    """The signature Twilio sends with a POST of `params` to `url`."""
    return str(RequestValidator(key).compute_signature(url, dict(params)))


def _signature(key: str, url: str, params: Mapping[str, str]) -> bytes:
    # What `sign` computes (the URL, then each field's name and value in the names' order),
    # without the validator's object and copies: every webhook checks one.
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest)


def is_valid(key: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """Whether `signature` was made with `key` over exactly this URL and these fields."""
    if not signature:
        return False
    # The URL as it was called is one of the forms Twilio signs (with or without its port):
    # checked first, with one HMAC; the validator tries the other form when that fails.
    if hmac.compare_digest(_signature(key, url, params), signature.encode("utf-8", "replace")):
        return True
    return bool(RequestValidator(key).validate(url, dict(params), signature))
