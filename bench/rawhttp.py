"""A lean HTTP/1.1 keep-alive client for load generators.

httpx costs the load generator ~1 ms of CPU per request, and the load generator shares the
machine's cores with the server and PostgreSQL: at a few hundred requests per second it takes
a third of a core that the server would otherwise have. This client writes a request as one
buffer and reads the answer by its `content-length`, nothing more: enough for our own server
(uvicorn answers every request with a `content-length`, or with none on a 204), and no use
against anything else (no chunked bodies, no redirects, no TLS).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class HttpError(Exception):
    """The server closed the connection or answered something this client does not read."""


class Connection:
    """One keep-alive connection to `host:port`, one request at a time."""

    def __init__(self, host: str, port: int, *, headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._fixed = f"host: {host}:{port}\r\n{extra}".encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = self._reader = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request (`body` as JSON if given) and return its status and body. A
        connection the server closed is opened again once."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed
            + (b"content-type: application/json\r\n" if body is not None else b"")
            + f"content-length: {len(payload)}\r\n\r\n".encode("latin-1")
        )
        for retry in (False, True):
            if self._writer is None:
                await self._connect()
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(head + payload)
                return await self._read()
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                await self.close()
                if retry:
                    raise HttpError(f"{method} {path}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _read(self) -> tuple[int, bytes]:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        closing = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise HttpError("chunked answers are not read by this client")
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        body = await self._reader.readexactly(length) if length else b""
        if closing:
            await self.close()
        return status, body
