"""Voice verbs → TwiML (the markup Twilio and the local simulator execute).

Written out directly, as the Twilio library's `VoiceResponse` writes it (attributes sorted,
escaped as ElementTree escapes them; a unit test holds the two to the same text), without
building an element tree for each answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from callcenter.telephony.base import Gather, Hangup, Redirect, Say, Verb

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def _text(value: str) -> str:
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def _attribute(value: str) -> str:
    value = _text(value)
    for char, entity in (('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;")):
        if char in value:
            value = value.replace(char, entity)
    return value


def _element(name: str, attributes: dict[str, str], inner: str) -> str:
    attrs = "".join(f' {key}="{_attribute(attributes[key])}"' for key in sorted(attributes))
    if not inner:
        return f"<{name}{attrs} />"
    return f"<{name}{attrs}>{inner}</{name}>"


def to_twiml(verbs: Sequence[Verb], *, voice: str, language: str) -> str:
    speech = {"language": language, "voice": voice}

    def say(text: str) -> str:
        return _element("Say", speech, _text(text))

    parts: list[str] = []
    for verb in verbs:
        if isinstance(verb, Say):
            parts.append(say(verb.text))
        elif isinstance(verb, Gather):
            options = {
                "input": "dtmf",
                "action": verb.action,
                "method": "POST",
                "timeout": str(verb.timeout_seconds),
            }
            if verb.num_digits is not None:
                options["numDigits"] = str(verb.num_digits)
            if verb.finish_on_key is not None:
                options["finishOnKey"] = verb.finish_on_key
            parts.append(_element("Gather", options, "".join(say(t) for t in verb.texts)))
        elif isinstance(verb, Redirect):
            parts.append(_element("Redirect", {"method": "POST"}, _text(verb.url)))
        elif isinstance(verb, Hangup):
            parts.append("<Hangup />")
    return _DECLARATION + _element("Response", {}, "".join(parts))
