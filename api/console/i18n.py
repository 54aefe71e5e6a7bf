"""The console's languages: zh-CN first, English second, from Babel catalogues.

Templates and code mark strings with `_()` (English message ids); `locales/<lang>/LC_MESSAGES/
messages.po` translates them. English needs no catalogue: its message ids are the text.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"
LANG_COOKIE = "cc_lang"


class UiLang(StrEnum):
    ZH_CN = "zh_CN"
    EN = "en"

    @property
    def html(self) -> str:
        return "zh-CN" if self is UiLang.ZH_CN else "en"


DEFAULT_LANG = UiLang.ZH_CN


def parse_lang(value: str | None) -> UiLang:
    try:
        return UiLang(value) if value else DEFAULT_LANG
    except ValueError:
        return DEFAULT_LANG


def catalogue_path(lang: UiLang) -> Path:
    return LOCALES_DIR / lang.value / "LC_MESSAGES" / "messages.po"


@cache
def translations(lang: UiLang) -> NullTranslations:
    """The language's translations, compiled from its .po file when first asked for."""
    path = catalogue_path(lang)
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=lang.value)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return Translations(fp=buffer)


def gettext_noop(message: str) -> str:
    """Marks a message for extraction where it is defined; translated where it is shown."""
    return message


# The few layouts pages use, as strftime formats: Babel's formatter is exact but slow for
# the hundreds of times a board shows.
_LAYOUTS = {
    "yyyy-MM-dd HH:mm": "%Y-%m-%d %H:%M",
    "MM-dd HH:mm": "%m-%d %H:%M",
    "MM-dd HH:mm:ss": "%m-%d %H:%M:%S",
    "HH:mm": "%H:%M",
    "yyyy-MM-dd": "%Y-%m-%d",
}
_WEEKDAYS = {
    UiLang.ZH_CN: ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    UiLang.EN: ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def when(at: datetime | None, zone: str, lang: UiLang, pattern: str = "yyyy-MM-dd HH:mm") -> str:
    """An instant on the customer's (or the centre's) local clock; `... EEE` adds the
    weekday in the language."""
    if at is None:
        return ""
    local = at.astimezone(_zone(zone))
    weekday = pattern.endswith(" EEE")
    layout = _LAYOUTS.get(pattern.removesuffix(" EEE"))
    if layout is None:
        return format_datetime(at, pattern, tzinfo=_zone(zone), locale=lang.value)
    text = local.strftime(layout)
    return f"{text} {_WEEKDAYS[lang][local.weekday()]}" if weekday else text


def span(delta: timedelta, lang: UiLang) -> str:
    """A duration in words of the language ("2 小时", "2 hours")."""
    return format_timedelta(delta, threshold=1.5, locale=lang.value)
