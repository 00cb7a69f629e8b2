"""A small HTTP/1.1 server: asyncio streams for I/O, h11 for the protocol.

h11 (already installed with httpx, the client's dependency) parses and frames
HTTP/1.1 correctly (keep-alive, chunked bodies, `Expect: 100-continue`,
pipelining refused cleanly), so the gateway needs no web framework and its
image stays small. A handler takes a `Request` and returns a `Response`; it
never sees a socket.

>>> async def hello(request):                                     # doctest: +SKIP
...     return Response.json(200, {"hello": request.path})
>>> server = HttpServer(hello, max_body_bytes=1 << 20)            # doctest: +SKIP
>>> await server.start("127.0.0.1", 8000)                         # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from http import HTTPStatus
from typing import Awaitable, Callable

import h11
import orjson

__all__ = ["Request", "Response", "HttpServer"]

log = logging.getLogger("gateway")

#: bytes read from a socket at a time
_READ_SIZE = 65536
#: an idle keep-alive connection is closed after this many seconds
KEEP_ALIVE_TIMEOUT = 75.0


@dataclasses.dataclass
class Request:
    method: str
    path: str           # without the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    client: str = ""


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload, *, option: int = 0) -> "Response":
        return cls(status, orjson.dumps(payload, option=option))


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves `handler` on a TCP port; `stop()` waits for requests in flight."""

    def __init__(self, handler: Handler, *, max_body_bytes: int, error_body: Callable[[int, str], bytes],
                 access_log: bool = True):
        self._handler = handler
        self._max_body = max_body_bytes
        self._error_body = error_body
        self._access_log = access_log
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(self._connection, host, port, reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` s), close every connection."""
        if self._server is not None:
            self._server.close()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except asyncio.TimeoutError:
            log.warning("stopping with %d request(s) still in flight after %.0f s", self._busy, grace)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                request = await self._read_request(conn, reader, writer, client)
                if request is None:
                    break
                self._busy += 1
                self._idle.clear()
                try:
                    started = time.perf_counter()
                    response = await self._handler(request)
                    await self._send(conn, writer, response)
                    if self._access_log:
                        log.info('%s "%s %s" %d %.1f ms', client, request.method, request.path,
                                 response.status, (time.perf_counter() - started) * 1e3)
                finally:
                    self._busy -= 1
                    if not self._busy:
                        self._idle.set()
                if conn.our_state is h11.MUST_CLOSE or self._server is None or not self._server.is_serving():
                    break
                conn.start_next_cycle()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, h11.LocalProtocolError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _read_request(self, conn: h11.Connection, reader, writer, client: str) -> Request | None:
        """The next full request, or None when the client is gone (or was answered with an error)."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._refuse(conn, writer, exc.error_status_hint, f"bad HTTP request: {exc}")
                return None
            if event is h11.NEED_DATA:
                if head is not None and conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
                timeout = KEEP_ALIVE_TIMEOUT if head is None else None
                data = await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
                length = dict(event.headers).get(b"content-length")
                if length is not None and length.isdigit() and int(length) > self._max_body:
                    await self._refuse(conn, writer, 413, f"request body of {int(length)} bytes is over the "
                                                          f"limit of {self._max_body} bytes")
                    return None
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body:
                    await self._refuse(conn, writer, 413, f"request body is over the limit of "
                                                          f"{self._max_body} bytes")
                    return None
            elif isinstance(event, h11.EndOfMessage):
                target = head.target.decode("latin-1")
                return Request(method=head.method.decode("ascii"), path=target.split("?", 1)[0],
                               headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers},
                               body=bytes(body), client=client)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _refuse(self, conn: h11.Connection, writer, status: int, message: str) -> None:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response = Response(status, self._error_body(status, message), headers=(("connection", "close"),))
            await self._send(conn, writer, response)

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
        headers = [("content-type", response.content_type), ("content-length", str(len(response.body))),
                   *response.headers]
        try:
            reason = HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason)))
        writer.write(conn.send(h11.Data(data=response.body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
