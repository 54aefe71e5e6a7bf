"""Every visible string of the console is translated into zh-CN, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from api.console.i18n import UiLang, catalogue_path, translations

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def source_messages() -> set[str]:
    method_map = [
        ("api/console/**.py", "python"),
        ("api/console/templates/**.html", "jinja2"),
    ]
    options = {"api/console/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT,
        method_map=method_map,
        options_map=options,
        keywords={"_": None, "N_": None, "gettext_noop": None, "gettext": None},
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalogue() -> dict[str, str]:
    with catalogue_path(UiLang.ZH_CN).open("rb") as handle:
        return {m.id: m.string for m in read_po(handle) if m.id}


def test_every_message_of_the_console_has_a_chinese_translation() -> None:
    messages = source_messages()
    assert len(messages) > 100  # the extraction found the templates
    translated = catalogue()
    missing = sorted(m for m in messages if not translated.get(m))
    assert missing == [], "run `make i18n` and translate these"


def test_translations_keep_their_placeholders() -> None:
    for message, translation in catalogue().items():
        assert set(PLACEHOLDER.findall(message)) == set(PLACEHOLDER.findall(translation)), message


def test_the_catalogue_holds_no_message_the_console_no_longer_shows() -> None:
    assert sorted(set(catalogue()) - source_messages()) == []


def test_the_compiled_catalogue_translates() -> None:
    assert translations(UiLang.ZH_CN).gettext("Take the next callback") == "取下一个回访"
    assert translations(UiLang.EN).gettext("Take the next callback") == "Take the next callback"
