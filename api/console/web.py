"""What every console page shares: the signed-in session, CSRF, roles, and rendering."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.console import labels
from api.console.i18n import LANG_COOKIE, UiLang, parse_lang, span, translations, when
from api.deps import SUPERVISING, NowDep, SettingsDep, client_address, uow_of
from callcenter.audit.rules import Actor
from callcenter.users.models import User, UserRole
from callcenter.users.service import session_user

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "cc_session"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No live session: the browser goes to the sign-in page and comes back after."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """A signed-in user whose role may not open the page (403, with a page that says so)."""

    def __init__(self, session: ConsoleSession) -> None:
        super().__init__(session.user.username)
        self.session = session


class CsrfFailed(Exception):
    """A form without this session's token: not sent by our page, or from an old session."""


@dataclass(frozen=True)
class ConsoleSession:
    user: User
    csrf_token: str
    lang: UiLang


def request_lang(request: Request) -> UiLang:
    return parse_lang(request.cookies.get(LANG_COOKIE))


def _environment(lang: UiLang) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = lang
    env.globals["labels"] = labels
    env.filters["when"] = lambda at, zone, pattern="yyyy-MM-dd HH:mm": when(at, zone, lang, pattern)
    env.filters["span"] = lambda delta: span(delta, lang)
    env.filters["clock"] = clock
    env.filters["form_values"] = lambda values: [form_value(v) for v in values]
    return env


def clock(delta: timedelta) -> str:
    """A countdown's figure: 2:05:09 (hours without limit, minutes and seconds)."""
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def form_value(value: object) -> str:
    """How a form sends an answer: true/false for yes/no, digits for numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_ENVIRONMENTS = {lang: _environment(lang) for lang in UiLang}


def gettext(lang: UiLang) -> Callable[[str], str]:
    return translations(lang).gettext


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    lang: UiLang | None = None,
    status_code: int = 200,
    session: ConsoleSession | None = None,
) -> HTMLResponse:
    lang = lang or (session.lang if session else request_lang(request))
    env = _ENVIRONMENTS[lang]
    settings = request.app.state.settings
    html = env.get_template(template).render(
        request=request,
        session=session,
        user=session.user if session else None,
        csrf_token=session.csrf_token if session else "",
        refresh_seconds=settings.console.refresh_seconds,
        default_zone=settings.rules.default_timezone,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    # Pages show customer data: never kept by a shared browser's cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def get_console_session(request: Request, settings: SettingsDep, now: NowDep) -> ConsoleSession:
    token = request.cookies.get(SESSION_COOKIE)
    found = None
    if token:
        found = session_user(uow_of(request), token=token, now=now, policy=settings.console)
    if found is None:
        path = request.url.path
        if request.url.query:
            path += "?" + request.url.query
        raise LoginRequired(path if request.method == "GET" else "/console/")
    user, csrf_token = found
    return ConsoleSession(user=user, csrf_token=csrf_token, lang=request_lang(request))


SignedIn = Annotated[ConsoleSession, Depends(get_console_session)]


def console_actor(request: Request, session: ConsoleSession) -> Actor:
    """Who acts in the console and from where, for the audit trail (rule SV-4)."""
    return Actor.of(session.user, address=client_address(request))


async def get_console_actor(request: Request, session: SignedIn) -> Actor:
    # The session is the one the page's role check read (resolved once per request).
    return console_actor(request, session)


ConsoleActor = Annotated[Actor, Depends(get_console_actor)]


def page_for(*roles: UserRole) -> Callable[..., Any]:
    """A dependency: the session, if its user's role may open the page (else 403)."""
    allowed = frozenset(roles)

    async def check(session: SignedIn) -> ConsoleSession:
        if session.user.role not in allowed:
            raise PageForbidden(session)
        return session

    return check


async def check_csrf(request: Request, session: SignedIn) -> ConsoleSession:
    """Every form a signed-in user posts carries the session's CSRF token."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not secrets.compare_digest(sent, session.csrf_token):
        raise CsrfFailed()
    return session


Posted = Annotated[ConsoleSession, Depends(check_csrf)]


def form_for(*roles: UserRole) -> Callable[..., Any]:
    """A dependency for a posted form: the CSRF token checked, then the role (else 403)."""
    allowed = frozenset(roles)

    async def check(session: Posted) -> ConsoleSession:
        if session.user.role not in allowed:
            raise PageForbidden(session)
        return session

    return check


BOARD_READERS = (UserRole.SUPERVISOR, UserRole.RETENTION_LEAD, UserRole.MANAGER, UserRole.ADMIN)
BOARD_ACTORS = SUPERVISING


def home_for(user: User) -> str:
    """Where a user lands after signing in."""
    if user.role is UserRole.AGENT:
        return "/console/desk"
    return "/console/board"
