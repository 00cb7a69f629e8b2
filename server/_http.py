"""HTTP/1.1 for the REST front end: connections, requests, responses.

A thread per connection (keep-alive); bodies are read as `_http_body`
delimits and bounds them; a whole request (headers and body) must arrive
within `Limits.read_timeout` seconds (408), which is also how long an idle
connection is kept. Every refusal, http.server's own included, is a
`ServingError` answered as `{"error": ...}` with `_errors.http_status`; an
unexpected exception is logged with its traceback and answered with a
generic text; a client that leaves costs one log line at most.

>>> app = lambda method, path, body: Response(200, b'{"ok":true}')
>>> httpd = HttpServer(("127.0.0.1", 0), app, Limits(max_body_bytes=1 << 20))  # doctest: +SKIP
>>> httpd.serve_forever()                                                        # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import io
import logging
import socket
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from ._errors import (INTERNAL_MESSAGE, ExpectationFailed, HeaderFieldsTooLarge, InvalidArgument,
                      Internal, RequestTimeout, ServingError, Unimplemented, UriTooLong,
                      VersionNotSupported, http_status)
from ._http_body import PIECE, framing, read_body
from ._tensors import dumps

__all__ = ["HttpServer", "Limits", "Response", "error_response", "listen_backlog"]

log = logging.getLogger("server")

_MAX_LINE = 65536  # the request line (as http.server)
_LINGER = 2.0      # seconds to drain an unread body after refusing it


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one request. `max_body_bytes` holds after gzip inflation;
    `read_timeout` covers a whole request, headers and body, and is also how
    long an idle keep-alive connection is kept."""
    max_body_bytes: int = 256 * 1024 * 1024
    read_timeout: float = 30.0


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    close: bool = False


def error_response(exc: ServingError, close: bool = False) -> Response:
    """`{"error": message}` with the error's HTTP status."""
    return Response(http_status(exc), dumps({"error": exc.message}), close=close)


def listen_backlog() -> int:
    """The kernel's cap on a listen backlog, as production servers ask for it
    (TF Serving's libevent listener passes the system maximum)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(int(f.read()), socket.SOMAXCONN)
    except (OSError, ValueError):
        return socket.SOMAXCONN


# The statuses http.server refuses with on its own, as domain errors.
_STDLIB_ERRORS = {http_status(cls("")): cls for cls in (
    InvalidArgument, UriTooLong, HeaderFieldsTooLarge, Unimplemented, VersionNotSupported,
    ExpectationFailed, RequestTimeout)}


class _DeadlineSocketReader(io.RawIOBase):
    """Socket reads that share one deadline, so a request trickled in a byte
    at a time cannot hold its thread longer than `Limits.read_timeout`."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline: float | None = None
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request read deadline passed")
            self.sock.settimeout(left)
        n = self.sock.recv_into(buf)
        self.received += n
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TensorFlowServing"
    server: "HttpServer"

    def setup(self):
        super().setup()
        # Small responses on keep-alive connections: do not let Nagle wait for an ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile.close()  # the stdlib's reader; ours shares one deadline per request
        self._reader = _DeadlineSocketReader(self.connection)
        self.rfile = io.BufferedReader(self._reader, PIECE)

    def log_message(self, fmt, *args):  # access logs would flood stderr under load
        pass

    # -- one request --------------------------------------------------------
    def handle_one_request(self):
        self._reader.deadline = time.monotonic() + self.server.limits.read_timeout
        self._reader.received = 0
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > _MAX_LINE:
                self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
                self._refuse(UriTooLong("The request line is longer than 65536 bytes"))
                return
            if not self.parse_request():  # it has answered through send_error
                return
            handler = getattr(self, "do_" + self.command, None)
            if handler is None:
                self._refuse(Unimplemented(f"Unsupported method: {self.command!r}"))
                return
            handler()
        except TimeoutError:
            self.close_connection = True
            if self._reader.received:  # an idle keep-alive connection just closes
                self._refuse(RequestTimeout(f"The request did not arrive within "
                                            f"{self.server.limits.read_timeout:g} s"))

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (bad request line, header limits,
        unknown Expect), in JSON like every other error."""
        text = message or HTTPStatus(code).phrase
        if explain and explain != message:
            text = f"{text}: {explain}"
        self._refuse(_STDLIB_ERRORS.get(code, InvalidArgument)(text))

    def handle_expect_100(self):
        try:  # refuse a body we would not read before the client sends it
            framing(self.headers, self.command, self.request_version, self.server.limits.max_body_bytes)
        except ServingError as e:
            self._refuse(e)
            return False
        return super().handle_expect_100()

    def _refuse(self, exc: ServingError) -> None:
        """Answer a request that is not read to its end, and close."""
        if self._respond(error_response(exc, close=True)):
            self._linger()

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ServingError as e:
            self._refuse(e)
            return
        try:
            response = self.server.app(self.command, self.path, body)
        except ServingError as e:
            response = error_response(e)
        except Exception:  # a bug: its details go to the log, never to the client
            log.exception("REST request failed: %s %s", self.command, self.path)
            response = error_response(Internal(INTERNAL_MESSAGE))
        self._respond(response)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _read_body(self):
        limit = self.server.limits.max_body_bytes
        return read_body(self.rfile, self.headers, framing(self.headers, self.command,
                                                           self.request_version, limit), limit)

    # -- response -----------------------------------------------------------
    def _respond(self, response: Response) -> bool:
        """Write `response`; False if the client has gone away."""
        self._reader.deadline = None
        self.connection.settimeout(self.server.limits.read_timeout)
        if response.close:
            self.close_connection = True
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Error"
        head = (f"HTTP/1.1 {response.status} {reason}\r\nContent-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"
        try:
            self.wfile.write(head.encode("latin-1") + b"\r\n" + response.body)
        except OSError as e:  # the client went away: routine, one line
            self.close_connection = True
            log.info("REST client went away before the answer to %s %s (%s)",
                     getattr(self, "command", ""), getattr(self, "path", ""), type(e).__name__)
            return False
        return True

    def _linger(self) -> None:
        """Drain what the client is still sending after a refusal, for a
        moment, so its TCP stack does not reset the connection (and lose the
        answer) because unread data was left behind."""
        end = time.monotonic() + _LINGER
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while (left := end - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(PIECE):
                    return
        except OSError:
            return


class HttpServer(ThreadingHTTPServer):
    """A thread per connection; `app(method, path, body) -> Response` answers
    each request, raising `ServingError` for an error answer."""

    daemon_threads = True
    request_queue_size = listen_backlog()

    def __init__(self, address, app: Callable[[str, str, bytes], Response], limits: Limits):
        self.app = app
        self.limits = limits
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # a client going away is routine
            log.debug("REST connection from %s ended: %s", client_address[0], type(exc).__name__)
            return
        log.exception("REST connection from %s failed", client_address[0])
