"""Parameter types the routers share."""

import json
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

# Row ids are 32-bit integers on PostgreSQL (and SQLite cannot bind beyond 64 bits): a larger
# number names no row, and is refused as such instead of failing in the driver.
MAX_ROW_ID = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="The row's id.")]


def _first_nul(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """The path of the first key or string in a parsed JSON value that holds a NUL."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = (*path, key) if "\x00" in key else _first_nul(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_nul(item, (*path, index))
            if found is not None:
                return found
    return None


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters `route` reads, its dependencies' included (kept on the route:
    routes are not hashable)."""
    names: frozenset[str] | None = getattr(route, "_callcenter_query_names", None)
    if names is None:
        found: set[str] = set()
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            found.update(field.alias for field in dependant.query_params)
            pending.extend(dependant.dependencies)
        names = frozenset(found)
        route._callcenter_query_names = names  # type: ignore[attr-defined]
    return names


async def refuse_nul(request: Request) -> None:
    """Refuse text holding the NUL character in a query parameter or a JSON body that the
    endpoint reads. PostgreSQL cannot store it (nor compare with it), so it would fail there
    and not on SQLite; no field of this product has a use for it. Parameters the endpoint does
    not read are ignored, as everywhere else."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    names = _query_names(route)
    for name, value in request.query_params.multi_items():
        if name in names and "\x00" in value:
            raise _nul_error(("query", name))
    if route.body_field is None or "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    # The raw scan is cheap; the body is parsed again only when it may hold an escaped NUL.
    if b"\\u0000" not in body and b"\x00" not in body:
        return
    try:
        found = _first_nul(json.loads(body))
    except ValueError:
        return  # not JSON: the endpoint's own parsing says so
    if found is not None:
        raise _nul_error(("body", *found))


def _nul_error(loc: tuple[str | int, ...]) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "string_nul",
                "loc": loc,
                "msg": "must not contain the NUL character (U+0000)",
                "input": None,
            }
        ]
    )
