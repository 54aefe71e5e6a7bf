"""Signing in and out, and the choice of language."""

from __future__ import annotations

import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.console.i18n import LANG_COOKIE, UiLang, parse_lang, translations
from api.console.web import SESSION_COOKIE, Posted, SignedIn, home_for, render, request_lang
from api.deps import NowDep, SettingsDep, UowDep
from callcenter.users.service import (
    AccountLocked,
    AddressThrottled,
    LoginRefused,
    session_user,
    sign_in,
    sign_out,
)

router = APIRouter(prefix="/console", include_in_schema=False)

# Before a session exists, the sign-in form's CSRF token is a cookie and a hidden field
# that must match (double submit).
LOGIN_CSRF_COOKIE = "cc_login_csrf"
_YEAR = 365 * 24 * 3600


def _safe_next(value: str | None) -> str | None:
    # Only a page of the console: never another site (no open redirect).
    if value and value.startswith("/console/") and not value.startswith("//"):
        return value
    return None


def _login_page(
    request: Request,
    *,
    next_path: str | None,
    error: str | None = None,
    status_code: int = 200,
    username: str = "",
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next_path": next_path or "", "error": error, "username": username},
        status_code=status_code,
    )
    secure = request.app.state.settings.secure_cookies
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/console"
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    return _login_page(request, next_path=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=500)] = "",  # noqa: A002
) -> Response:
    _ = translations(request_lang(request)).gettext
    next_path = _safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, csrf_token):
        return _login_page(
            request,
            next_path=next_path,
            error=_("The sign-in form had expired. Please sign in again."),
            status_code=403,
            username=username,
        )
    address = request.client.host if request.client else None
    try:
        signed = sign_in(
            uow,
            username=username,
            password=password,
            now=now,
            address=address,
            policy=settings.console,
        )
    except AddressThrottled as exc:
        # Password spraying from one address: said plainly, and when to come back.
        seconds = max(1, math.ceil((exc.until - now).total_seconds()))
        response = _login_page(
            request,
            next_path=next_path,
            error=_(
                "Too many failed sign-ins from your network address. Try again in "
                "%(minutes)s minutes."
            )
            % {"minutes": math.ceil(seconds / 60)},
            status_code=429,
            username=username,
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    except AccountLocked as exc:
        minutes = max(1, int((exc.until - now).total_seconds() // 60) + 1)
        return _login_page(
            request,
            next_path=next_path,
            error=_(
                "Too many wrong passwords: this account is locked. Try again in %(minutes)s "
                "minutes, or ask a supervisor."
            )
            % {"minutes": minutes},
            status_code=423,
            username=username,
        )
    except LoginRefused:
        return _login_page(
            request,
            next_path=next_path,
            error=_("Wrong username or password."),
            status_code=401,
            username=username,
        )
    response = RedirectResponse(next_path or home_for(signed.user), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, uow: UowDep, now: NowDep, _session: Posted) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    sign_out(uow, token=token, now=now)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang")
def choose_language(
    request: Request,
    uow: UowDep,
    now: NowDep,
    settings: SettingsDep,
    lang: Annotated[str, Form(max_length=8)] = "",
    back: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Signed in or not (the sign-in page has the switch too): the form carries the session's
    CSRF token, or the sign-in form's."""
    expected = [request.cookies.get(LOGIN_CSRF_COOKIE, "")]
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        found = session_user(uow, token=token, now=now, policy=settings.console)
        if found is not None:
            expected.append(found[1])
    if not any(e and secrets.compare_digest(e, csrf_token) for e in expected):
        return RedirectResponse(_safe_next(back) or "/console/", status_code=303)
    chosen = parse_lang(lang)
    response = RedirectResponse(_safe_next(back) or "/console/", status_code=303)
    response.set_cookie(LANG_COOKIE, chosen.value, max_age=_YEAR, samesite="lax", path="/")
    return response


@router.get("/")
def home(session: SignedIn) -> Response:
    return RedirectResponse(home_for(session.user), status_code=303)


__all__ = ["UiLang", "router"]
