"""For the fault tests: the app served over real HTTP from a thread, and API users."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import uvicorn
from fastapi import FastAPI

from callcenter.db import Database
from callcenter.users.models import UserRole
from callcenter.users.service import create_token, create_user


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free localhost port; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def api_token(database: Database, username: str, role: UserRole, now: datetime) -> str:
    """A user of `role` and a bearer token for it."""
    create_user(database.uow(), username=username, role=role, now=now)
    return create_token(database.uow(), username=username, now=now)
