"""Dates and instants as the API accepts them: ISO 8601 text only.

Pydantic's lax mode also reads a number (or a numeric string such as `0.0`) as seconds since
1970, so an order system that sent the wrong field would create callbacks dated 1970, and a
report asked for `end=0` would answer for 1970-01-01; both are mistakes to refuse."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

# A date, or a date and time, starts with a four-digit year and a dash.
_ISO_START = re.compile(r"^\s*\d{4}-")


def _iso_text(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value
    if isinstance(value, str) and _ISO_START.match(value):
        return value
    raise ValueError("must be ISO 8601 text, e.g. 2026-11-25 or 2026-11-25T10:15:00+08:00")


IsoDate = Annotated[date, BeforeValidator(_iso_text)]
IsoAwareDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
