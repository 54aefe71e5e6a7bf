"""The web console: server-rendered pages for agents and supervisors, zh-CN first."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.console import audit, board, desk, ivr, login, reports, retention
from api.console.web import STATIC_DIR, CsrfFailed, LoginRequired, PageForbidden, render


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = f"/console/login?next={quote(exc.next_path, safe='/')}"
    if request.headers.get("HX-Request"):
        # A fragment asked for by the page: send the whole page to the sign-in form.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageForbidden)
    return render(request, "forbidden.html", {}, session=exc.session, status_code=403)


async def _csrf_failed(request: Request, exc: Exception) -> Response:
    return render(request, "csrf.html", {}, status_code=403)


def install_console(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.include_router(login.router)
    app.include_router(desk.router)
    app.include_router(board.router)
    app.include_router(ivr.router)
    app.include_router(retention.router)
    app.include_router(reports.router)
    app.include_router(audit.router)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageForbidden, _forbidden)
    app.add_exception_handler(CsrfFailed, _csrf_failed)
