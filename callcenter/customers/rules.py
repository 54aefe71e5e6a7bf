"""Phone numbers and zones of customers, as pure functions."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: str, default_region: str) -> str:
    """The number in E.164 (`+8613812345678`), or `InvalidPhone` saying what is wrong."""
    return _normalize(raw, default_region)


# The order system sends the same customers' numbers again and again, and parsing one costs
# more than the rest of taking its event in; a valid number's answer never changes.
@functools.lru_cache(maxsize=16_384)
def _normalize(raw: str, default_region: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidPhone("the phone number is empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{raw!r} is not a phone number ({exc})") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"{raw!r} is not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


# Every claim and every attempt shows the customer's number masked; parsing it costs more than
# the rest of building the answer, and a number's mask never changes.
@functools.lru_cache(maxsize=16_384)
def mask_phone(e164: str) -> str:
    """`+8613812345678` → `+86 138****5678`: enough to recognise, not enough to dial."""
    try:
        number = phonenumbers.parse(e164, None)
        country = f"+{number.country_code} "
        national = str(number.national_number)
    except phonenumbers.NumberParseException:
        country, national = "", e164.lstrip("+")
    if len(national) <= 4:
        return country + "*" * len(national)
    keep_head = 3 if len(national) >= 10 else 1
    hidden = len(national) - keep_head - 4
    return f"{country}{national[:keep_head]}{'*' * hidden}{national[-4:]}"


def check_zone(name: str) -> str:
    """The IANA zone name if it exists, else `ValueError` saying so."""
    try:
        ZoneInfo(name)
    # A folder of the zone database (`America`) is found but cannot be read as a zone.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (for example Asia/Shanghai)") from exc
    return name
