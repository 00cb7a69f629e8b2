"""How the gRPC front end answers a failure nobody planned for: INTERNAL with
TF Serving's kind of generic text, the details in the log only. A real gRPC
server runs a servicer method that raises, wrapped as every servicer method is."""
from __future__ import annotations

import logging
from concurrent import futures

import grpc
import pytest

from server import free_port
from server._errors import NotFound
from server._grpc import INTERNAL_MESSAGE, rpc


class Failing:
    @rpc
    def Call(self, request, context):
        if request == b"planned":
            raise NotFound("Servable not found for request: Latest(m)")
        raise RuntimeError("secret detail /etc/models/key")


@pytest.fixture
def call():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler("test.Failing", {"Call": grpc.unary_unary_rpc_method_handler(
        lambda req, ctx: Failing().Call(req, ctx))})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel.unary_unary("/test.Failing/Call")
    server.stop(None)


def test_an_unexpected_exception_is_internal_with_a_generic_text_and_logged_with_its_traceback(call, caplog):
    with caplog.at_level(logging.ERROR, logger="server"), pytest.raises(grpc.RpcError) as e:
        call(b"unplanned", timeout=10)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    assert "secret" not in e.value.details() and "RuntimeError" not in e.value.details()
    record = next(r for r in caplog.records if r.name == "server")
    assert "gRPC Call failed" in record.getMessage() and "secret detail" in str(record.exc_info[1])


def test_a_serving_error_keeps_its_code_and_text(call):
    with pytest.raises(grpc.RpcError) as e:
        call(b"planned", timeout=10)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.NOT_FOUND,
                                                  "Servable not found for request: Latest(m)")
