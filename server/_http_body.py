"""Request bodies as HTTP/1.1 delimits them (RFC 9112 section 6), bounded.

`framing` decides from the headers alone how a body is delimited, or refuses:
`Transfer-Encoding: chunked` (the only transfer coding offered), else one
`Content-Length`, else no body; a `POST`/`PUT` with neither is 411, since a
body that is not delimited would be read as the next request. `read_body`
then reads exactly that body, at most `max_bytes` of it after gzip
inflation, inflating as it reads so a small gzip bomb never grows past the
bound in memory. Refusals are `ServingError`s with their HTTP status.

>>> import email.message, io
>>> headers = email.message.Message()
>>> headers["Transfer-Encoding"] = "chunked"
>>> how = framing(headers, "POST", "HTTP/1.1", max_bytes=1024)
>>> bytes(read_body(io.BytesIO(b"2\\r\\n{}\\r\\n0\\r\\n\\r\\n"), headers, how, 1024))
b'{}'
"""
from __future__ import annotations

import re
import zlib

from ._errors import (InvalidArgument, LengthRequired, PayloadTooLarge, Unimplemented,
                      UnsupportedMediaType)

__all__ = ["framing", "read_body"]

_MAX_LINE = 65536          # a trailer line (as http.server's header lines)
_MAX_CHUNK_LINE = 4096     # a chunk-size line with its extensions
_MAX_TRAILERS = 64 * 1024  # all trailer lines of a chunked body
PIECE = 1 << 16            # bytes read at a time
_STEP = 1 << 20            # most bytes inflated at a time
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]+")
_FLAG = "--rest_api_max_body_bytes"


def framing(headers, method: str, version: str, max_bytes: int):
    """("chunked", None), ("length", n), or None when there is no body."""
    codings = [c.strip().lower() for v in headers.get_all("Transfer-Encoding", [])
               for c in v.split(",") if c.strip()]
    lengths = [v.strip() for v in headers.get_all("Content-Length", []) for v in v.split(",")]
    if codings:
        if version == "HTTP/1.0":
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
        if n > max_bytes:
            raise PayloadTooLarge(f"The request body of {n} bytes is larger than {max_bytes} "
                                  f"bytes ({_FLAG})")
        return ("length", n) if n else None
    if method in ("POST", "PUT"):
        raise LengthRequired(f"A {method} request needs Content-Length or Transfer-Encoding: chunked")
    return None


def read_body(rfile, headers, how, max_bytes: int) -> bytearray | bytes:
    """The body `framing` found, inflated if it is gzip."""
    if how is None:
        return b""
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; "
                                   f"send gzip or an uncompressed body")
    body = _Body(max_bytes, encoding == "gzip")
    if how[0] == "length":
        _read_exactly(rfile, how[1], body)
    else:
        _read_chunks(rfile, body)
    return body.finish()


class _Body:
    """Collects a body up to `limit` bytes, inflating gzip incrementally."""

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
            try:  # a bounded step (a bomb inflates 1000:1), never past the bound but one byte
                out = self._inflater.decompress(piece, min(self.limit - len(self.data) + 1, _STEP))
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
                                  f"{' once inflated' if self._inflater else ''} ({_FLAG})")
        self.data += piece

    def finish(self) -> bytearray:
        if self._inflater is not None and self._fed and not self._inflater.eof:
            raise InvalidArgument("Content-Encoding is gzip but the gzip body is truncated")
        return self.data


def _read_exactly(rfile, n: int, body: _Body) -> None:
    while n:
        piece = rfile.read(min(n, PIECE))
        if not piece:
            raise InvalidArgument(f"The request body ended {n} bytes short of its length")
        body.feed(piece)
        n -= len(piece)


def _read_chunks(rfile, body: _Body) -> None:
    raw = 0
    while True:
        line = rfile.readline(_MAX_CHUNK_LINE + 1)
        size_text = line.split(b";", 1)[0].rstrip(b"\r\n \t")
        if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
            raise InvalidArgument(f"Malformed chunk size line {line[:40]!r}: expected a hex size, then CRLF")
        size = int(size_text, 16)
        if size == 0:
            break
        raw += size
        if raw > body.limit:
            raise PayloadTooLarge(f"The chunked request body is larger than {body.limit} bytes ({_FLAG})")
        _read_exactly(rfile, size, body)
        if rfile.readline(3) not in (b"\r\n", b"\n"):
            raise InvalidArgument("A chunk's data must be followed by CRLF")
    trailers = 0
    while True:  # trailer fields are read and dropped
        line = rfile.readline(_MAX_LINE + 1)
        trailers += len(line)
        if not line.endswith(b"\n") or trailers > _MAX_TRAILERS:
            raise InvalidArgument("Malformed or oversized trailer section of a chunked body")
        if line in (b"\r\n", b"\n"):
            return
