"""The IVR calls the machine placed, as supervisors watch them: status, keys, outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.console.web import BOARD_READERS, ConsoleSession, page_for, render
from api.deps import UowDep
from callcenter.ivr.service import list_ivr_calls

router = APIRouter(prefix="/console/ivr", include_in_schema=False)

IvrPage = Annotated[ConsoleSession, Depends(page_for(*BOARD_READERS))]


@router.get("")
def ivr_calls_page(request: Request, uow: UowDep, session: IvrPage) -> Response:
    return render(request, "ivr.html", {"calls": list_ivr_calls(uow, limit=100)}, session=session)


@router.get("/panel")
def ivr_calls_panel(request: Request, uow: UowDep, session: IvrPage) -> Response:
    """The list alone: the page swaps it in place when it refreshes itself."""
    return render(
        request, "_ivr_calls.html", {"calls": list_ivr_calls(uow, limit=100)}, session=session
    )
