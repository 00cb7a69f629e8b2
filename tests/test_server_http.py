"""The REST port as an HTTP/1.1 server: bodies delimited exactly (RFC 9112)
or refused, bounded in size (also while inflating gzip), read under a
timeout; every refusal a 4xx `{"error": ...}`; hostile JSON a 400 in TF
Serving's words; no Python exception text on the wire; client disconnects
logged in one line at most. One real `python -m server` over raw sockets,
with a small body bound and read timeout so the limits are quick to reach."""
from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import zlib

import pytest
import requests

from server._errors import INTERNAL_MESSAGE
from server._http import HttpServer, Limits
from tests._server_models import hpt_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUND = 8 * 1024 * 1024
READ_TIMEOUT = 2.0
PREDICT = "/v1/models/hpt:predict"


@pytest.fixture(scope="module")
def srv(server_models, tmp_path_factory):
    with hpt_server(server_models, tmp_path_factory.mktemp("http"), f"--rest_api_max_body_bytes={BOUND}",
                    f"--rest_api_timeout_in_ms={int(READ_TIMEOUT * 1000)}", models=["hpt"]) as s:
        yield s


def exchange(srv, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", srv.rest_port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def responses(raw: bytes) -> list[tuple[int, dict, dict]]:
    """(status, headers, JSON body) of each HTTP response in `raw`."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        n = int(headers["content-length"])
        out.append((status, headers, json.loads(rest[:n]) if n else None))
        raw = rest[n:]
    return out


def request(method: str, path: str = PREDICT, headers: dict | None = None, body: bytes = b"",
            version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}", "Host: localhost"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_json_error(resp, status: int, *words: str) -> str:
    code, headers, body = resp
    assert code == status, (code, body)
    assert headers["content-type"] == "application/json" and set(body) == {"error"}, body
    for word in words:
        assert word in body["error"], body
    return body["error"]


def assert_still_serving(srv) -> None:
    r = requests.post(srv.rest_url + PREDICT, json={"instances": [1.0]}, timeout=10)
    assert r.json() == {"predictions": [3.5]}


# -------------------------------------------------------------------- hostile JSON

@pytest.mark.parametrize("depth", [950, 5000])
def test_deeply_nested_json_is_a_400_in_tf_serving_words(srv, depth):
    body = b'{"instances": ' + b"[" * depth + b"1.0" + b"]" * depth + b"}"
    r = requests.post(srv.rest_url + PREDICT, data=body, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert not re.search(r"\b[A-Z][a-z]+Error\b|recursion depth", error), error
    assert_still_serving(srv)


def test_deeply_nested_example_feature_is_a_400(srv):
    examples = '{"signature_name": "regress_x_to_y", "examples": [{"x": ' + "[" * 950 + "1" + "]" * 950 + "}]}"
    r = requests.post(srv.rest_url + "/v1/models/hpt:regress", data=examples, timeout=30)
    assert r.status_code == 400 and "Error:" not in r.json()["error"], r.text


@pytest.mark.parametrize("path, body, words", [
    ("/v1/models/hpt:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2**63}]},
     "does not fit in int64"),
    ("/v1/models/hpt/versions/99999999999999999999:predict", {"instances": [1.0]},
     "Failed to convert version: 99999999999999999999 to numeric."),
    (PREDICT, "", "JSON Parse error: The document is empty"),
    (PREDICT, "[1, 2]", "JSON Parse error: Is not object"),
    (PREDICT, "{\"instances\": [1.0}", "JSON Parse error: "),
], ids=["int-feature-over-int64", "version-over-int64", "empty-body", "not-object", "malformed"])
def test_values_python_cannot_convert_are_400_not_an_exception(srv, path, body, words):
    data = body if isinstance(body, str) else json.dumps(body)
    r = requests.post(srv.rest_url + path, data=data, timeout=30)
    assert r.status_code == 400 and words in r.json()["error"], r.text


# -------------------------------------------------------------------- body bound

def rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(field)).split()[1])


def test_gzip_bomb_is_413_without_inflating_past_the_bound(srv):
    deflate = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    space = b" " * (1 << 20)
    bomb = b"".join(deflate.compress(space) for _ in range(8 * BOUND >> 20)) + deflate.flush()
    assert len(bomb) < BOUND // 64
    with open(f"/proc/{srv.pid}/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = rss_kib(srv.pid, "VmRSS")
    r = requests.post(srv.rest_url + PREDICT, data=bomb, headers={"Content-Encoding": "gzip"}, timeout=60)
    assert r.status_code == 413 and "--rest_api_max_body_bytes" in r.json()["error"], r.text
    grown = (rss_kib(srv.pid, "VmHWM") - before) * 1024
    assert grown < BOUND + 8 * 1024 * 1024, f"peak RSS grew by {grown >> 20} MiB"
    assert_still_serving(srv)


def test_plain_body_over_the_bound_is_413_and_the_client_reads_it(srv):
    r = requests.post(srv.rest_url + PREDICT, data=b" " * (BOUND + 1), timeout=30)
    assert r.status_code == 413 and set(r.json()) == {"error"}, r.text


def test_chunked_body_over_the_bound_is_413(srv):
    piece = b" " * (1 << 20)
    chunks = (piece for _ in range(BOUND // len(piece) + 1))
    r = requests.post(srv.rest_url + PREDICT, data=chunks, timeout=30)
    assert r.status_code == 413, r.text


def test_body_just_under_the_bound_is_served(srv):
    body = json.dumps({"instances": [1.0]}).encode()
    body += b" " * (BOUND - len(body))
    r = requests.post(srv.rest_url + PREDICT, data=gzip.compress(body),
                      headers={"Content-Encoding": "gzip"}, timeout=30)
    assert r.json() == {"predictions": [3.5]}


def test_expect_100_continue_over_the_bound_is_refused_before_the_body(srv):
    raw = exchange(srv, request("POST", headers={"Content-Length": BOUND + 1, "Expect": "100-continue"}))
    assert not raw.startswith(b"HTTP/1.1 100")
    assert_json_error(responses(raw)[0], 413)


# -------------------------------------------------------------------- framing edge cases

def test_truncated_gzip_body_is_400(srv):
    data = gzip.compress(json.dumps({"instances": [1.0] * 1000}).encode())[:-20]
    raw = exchange(srv, request("POST", headers={"Content-Length": len(data), "Content-Encoding": "gzip"},
                                body=data))
    assert_json_error(responses(raw)[0], 400, "gzip", "truncated")


@pytest.mark.parametrize("headers, body, status, words", [
    ({"Content-Length": "1000000000000"}, b"", 413, ["1000000000000"]),
    ({"Transfer-Encoding": "chunked"}, b"FFFFFFFFFFFF\r\n", 413, ["chunked"]),
    ({"Content-Length": "-1"}, b"{}", 400, ["Content-Length"]),
    ({"Content-Length": "+2"}, b"{}", 400, ["Content-Length"]),
    ({"Content-Length": "2, 3"}, b"{}", 400, ["Content-Length"]),
    ({"Transfer-Encoding": "chunked", "Content-Length": "2"}, b"0\r\n\r\n", 400, ["both"]),
    ({"Transfer-Encoding": "gzip, chunked"}, b"0\r\n\r\n", 501, ["'gzip'"]),
    ({"Transfer-Encoding": "chunked"}, b"zz\r\n{}\r\n0\r\n\r\n", 400, ["chunk size"]),
    ({"Transfer-Encoding": "chunked"}, b"2\r\n{}XX0\r\n\r\n", 400, ["CRLF"]),
    ({"Content-Length": "2", "Content-Encoding": "br"}, b"{}", 415, ["'br'"]),
], ids=["length-1e12", "chunk-FFFFFFFFFFFF", "length-negative", "length-signed", "length-list",
        "chunked-and-length", "unknown-transfer-coding", "chunk-size-not-hex", "chunk-without-crlf",
        "unknown-content-encoding"])
def test_malformed_framing_gets_a_json_4xx_and_the_connection_closes(srv, headers, body, status, words):
    start = time.monotonic()
    raw = exchange(srv, request("POST", headers=headers, body=body))
    (resp,) = responses(raw)  # one answer, then the server closed
    assert_json_error(resp, status, *words)
    assert resp[1]["connection"] == "close"
    assert time.monotonic() - start < READ_TIMEOUT
    assert_still_serving(srv)


def test_keep_alive_post_without_length_is_411_not_a_smuggled_request(srv):
    smuggled = request("GET", "/v1/models/hpt")
    raw = exchange(srv, request("POST") + smuggled)
    (resp,) = responses(raw)
    assert_json_error(resp, 411, "Content-Length")


def test_body_of_a_get_is_read_not_taken_for_the_next_request(srv):
    body = b"GET /v1/models/nope HTTP/1.1\r\n\r\n"
    raw = exchange(srv, request("GET", "/v1/models/hpt", {"Content-Length": len(body)}, body)
                   + request("GET", "/v1/models/hpt", {"Connection": "close"}))
    assert [status for status, _, _ in responses(raw)] == [200, 200]


def test_connection_idle_in_its_headers_gets_408_and_is_closed(srv):
    start = time.monotonic()
    raw = exchange(srv, b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\n", timeout=READ_TIMEOUT + 10)
    assert_json_error(responses(raw)[0], 408)
    assert time.monotonic() - start < READ_TIMEOUT + 3


def test_body_that_stops_arriving_gets_408(srv):
    start = time.monotonic()
    raw = exchange(srv, request("POST", headers={"Content-Length": 100}, body=b'{"inst'),
                   timeout=READ_TIMEOUT + 10)
    assert_json_error(responses(raw)[0], 408)
    assert time.monotonic() - start < READ_TIMEOUT + 3


@pytest.mark.parametrize("data, status", [
    (request("BREW", "/v1/models/hpt"), 501),
    (request("GET", "/v1/models/hpt", {f"X-H{i}": "v" for i in range(101)}), 431),
    (request("GET", "/v1/models/hpt", {"X-Long": "v" * 70000}), 431),
    (request("GET", "/" + "a" * 70000), 414),
    (b"GARBAGE\r\n\r\n", 400),
    (request("GET", "/v1/models/hpt", version="HTTP/2.0"), 505),
], ids=["unknown-method", "too-many-headers", "header-too-long", "uri-too-long", "bad-request-line",
        "http-2"])
def test_http_refusals_are_json_not_html(srv, data, status):
    raw = exchange(srv, data)
    assert_json_error(responses(raw)[0], status)


# -------------------------------------------------------------------- connections

def listen_backlog(port: int) -> int:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[2])  # Send-Q of a listening socket is its backlog


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_listen_backlog_is_the_system_maximum(srv):
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    assert listen_backlog(srv.rest_port) == somaxconn


def test_clients_that_leave_before_the_answer_log_one_line_at_most(srv):
    before = srv.stderr
    body = json.dumps({"signature_name": "matrix", "instances": [[1.0, 2.0]] * 20000}).encode()
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", srv.rest_port))
        sock.sendall(request("POST", headers={"Content-Length": len(body)}, body=body))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset: the answer has nowhere to go
    assert_still_serving(srv)
    time.sleep(0.5)
    log = srv.stderr[len(before):]
    assert "Traceback" not in log, log
    assert len(log.splitlines()) <= 20, log


def test_help_documents_the_body_bound():
    out = subprocess.run([sys.executable, "-m", "server", "--help"], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": ROOT}).stdout
    assert "--rest_api_max_body_bytes=268435456" in out and "gzip inflation" in out


# -------------------------------------------------------------------- unexpected failures

def test_unexpected_exception_is_logged_not_answered(caplog):
    """A bug below the HTTP layer (here: an app that raises) answers the generic
    text; its class, message and traceback go to the log only."""
    def broken(method, path, body):
        raise KeyError("secret detail")

    httpd = HttpServer(("127.0.0.1", 0), broken, Limits())
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.ERROR, logger="server"):
            r = requests.get(f"http://127.0.0.1:{httpd.server_address[1]}/v1/models/x", timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.status_code == 500 and r.json() == {"error": INTERNAL_MESSAGE}
    assert "secret detail" in caplog.text and "KeyError" in caplog.text
    assert any(rec.exc_info for rec in caplog.records)
