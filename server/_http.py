"""HTTP/1.1 framing for the REST front end: request bodies, limits, responses.

A request body is delimited exactly as RFC 9112 section 6 says, or refused:
`Transfer-Encoding: chunked` (the only transfer coding offered), else one
`Content-Length`, else no body; a `POST`/`PUT` with neither is 411, since a
body that is not delimited would be read as the next request. Bodies are
bounded (`Limits.max_body_bytes`, after gzip inflation, checked while
reading and while inflating), and a whole request (headers and body) must
arrive within `Limits.read_timeout` seconds. Every refusal is a
`ServingError` answered as `{"error": ...}` with `_errors.http_status`.

>>> app = lambda method, path, body: Response(200, b'{"ok":true}')
>>> httpd = HttpServer(("127.0.0.1", 0), app, Limits(max_body_bytes=1 << 20))  # doctest: +SKIP
>>> httpd.serve_forever()                                                        # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import io
import logging
import re
import socket
import sys
import time
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from ._errors import (INTERNAL_MESSAGE, ExpectationFailed, HeaderFieldsTooLarge, InvalidArgument,
                      Internal, LengthRequired, PayloadTooLarge, RequestTimeout, ServingError,
                      Unimplemented, UnsupportedMediaType, UriTooLong, VersionNotSupported,
                      http_status)
from ._tensors import dumps

__all__ = ["HttpServer", "Limits", "Response", "error_response", "listen_backlog"]

log = logging.getLogger("server")

_MAX_LINE = 65536          # request line, header line (as http.server)
_MAX_CHUNK_LINE = 4096     # a chunk-size line with its extensions
_MAX_TRAILERS = 64 * 1024  # all trailer lines of a chunked body
_PIECE = 1 << 16           # bytes read (and inflated) at a time
_LINGER = 2.0              # seconds to drain an unread body after refusing it
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]+")


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


class _Body:
    """Collects a body up to `limit` bytes, inflating gzip incrementally so
    that the bound holds for the inflated size too (a small gzip bomb never
    expands in memory past the bound)."""

    def __init__(self, limit: int, gzipped: bool):
        self.limit = limit
        self.data = bytearray()
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        self._fed = False

    def feed(self, piece: bytes) -> None:
        if self._inflater is None:
            self._add(piece)
            return
        self._fed = self._fed or bool(piece)
        while piece:
            try:
                out = self._inflater.decompress(piece, self.limit - len(self.data) + 1)
            except zlib.error:
                raise InvalidArgument("Content-Encoding is gzip but the body is not gzip data") from None
            self._add(out)
            if self._inflater.eof:  # a next gzip member may follow (as gzip.decompress reads)
                piece = self._inflater.unused_data
                if piece:
                    self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                piece = self._inflater.unconsumed_tail

    def _add(self, piece: bytes) -> None:
        if len(self.data) + len(piece) > self.limit:
            raise PayloadTooLarge(f"The request body is larger than {self.limit} bytes"
                                  f"{' once inflated' if self._inflater else ''} "
                                  f"(--rest_api_max_body_bytes)")
        self.data += piece

    def finish(self) -> bytearray:
        if self._inflater is not None and self._fed and not self._inflater.eof:
            raise InvalidArgument("Content-Encoding is gzip but the gzip body is truncated")
        return self.data


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
        self.rfile = io.BufferedReader(self._reader, _PIECE)

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
            self._framing()
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

    # -- body ---------------------------------------------------------------
    def _framing(self):
        """("chunked", None), ("length", n) or None (no body), per RFC 9112 6."""
        codings = [c.strip().lower() for v in self.headers.get_all("Transfer-Encoding", [])
                   for c in v.split(",") if c.strip()]
        lengths = [v.strip() for v in self.headers.get_all("Content-Length", []) for v in v.split(",")]
        if codings:
            if self.request_version == "HTTP/1.0":
                raise InvalidArgument("Transfer-Encoding is not allowed in an HTTP/1.0 request")
            unknown = [c for c in codings if c != "chunked"]
            if unknown:
                raise Unimplemented(f"Transfer-Encoding {unknown[0]!r} is not implemented; "
                                    f"send the body with Content-Length or chunked")
            if codings != ["chunked"]:
                raise InvalidArgument("Transfer-Encoding: chunked must be given once, as the final coding")
            if lengths:
                raise InvalidArgument("A request must not have both Transfer-Encoding and Content-Length")
            return "chunked", None
        if lengths:
            if not all(_DIGITS.fullmatch(v) for v in lengths) or len(set(lengths)) > 1:
                raise InvalidArgument(f"Content-Length must be one non-negative integer, "
                                      f"got {', '.join(lengths)!r}")
            n = int(lengths[0])
            if n > self.server.limits.max_body_bytes:
                raise PayloadTooLarge(f"The request body of {n} bytes is larger than "
                                      f"{self.server.limits.max_body_bytes} bytes "
                                      f"(--rest_api_max_body_bytes)")
            return ("length", n) if n else None
        if self.command in ("POST", "PUT"):
            raise LengthRequired(f"A {self.command} request needs Content-Length or "
                                 f"Transfer-Encoding: chunked")
        return None

    def _read_body(self) -> bytearray | bytes:
        framing = self._framing()
        if framing is None:
            return b""
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; "
                                       f"send gzip or an uncompressed body")
        body = _Body(self.server.limits.max_body_bytes, encoding == "gzip")
        if framing[0] == "length":
            self._read_exactly(framing[1], body)
        else:
            self._read_chunks(body)
        return body.finish()

    def _read_exactly(self, n: int, body: _Body) -> None:
        while n:
            piece = self.rfile.read(min(n, _PIECE))
            if not piece:
                raise InvalidArgument(f"The request body ended {n} bytes short of its Content-Length")
            body.feed(piece)
            n -= len(piece)

    def _read_chunks(self, body: _Body) -> None:
        limit = self.server.limits.max_body_bytes
        raw = 0
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].rstrip(b"\r\n \t")
            if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise InvalidArgument(f"Malformed chunk size line {line[:40]!r}: expected a hex "
                                      f"size, then CRLF")
            size = int(size_text, 16)
            if size == 0:
                break
            raw += size
            if raw > limit:
                raise PayloadTooLarge(f"The chunked request body is larger than {limit} bytes "
                                      f"(--rest_api_max_body_bytes)")
            self._read_exactly(size, body)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise InvalidArgument("A chunk's data must be followed by CRLF")
        trailers = 0
        while True:  # trailer fields are read and dropped
            line = self.rfile.readline(_MAX_LINE + 1)
            trailers += len(line)
            if not line.endswith(b"\n") or trailers > _MAX_TRAILERS:
                raise InvalidArgument("Malformed or oversized trailer section of a chunked body")
            if line in (b"\r\n", b"\n"):
                return

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
                if not self.connection.recv(_PIECE):
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
