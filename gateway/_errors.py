"""OpenAI's error format, and how upstream (TF Serving) errors map onto it.

Every error the gateway answers is `{"error": {"message", "type", "param",
"code"}}` with the HTTP status OpenAI uses for it, so the `openai` package
raises its own classes (`BadRequestError`, `NotFoundError`, ...):

    400 invalid_request_error   bad JSON, empty or too many inputs, token arrays, bad
                                encoding_format or dimensions, input the model rejects
    401 invalid_request_error   missing or wrong API key (`--api-key`), code invalid_api_key
    404 invalid_request_error   unknown model (code model_not_found), unknown URL
    429 server_error            the model server is overloaded (RESOURCE_EXHAUSTED)
    502 server_error            the model server answered something unexpected
    503 server_error            the model server is down or unreachable (code upstream_unavailable)
    504 server_error            the model server did not answer in time

>>> err = OpenAIError.model_not_found("gpt-x")
>>> err.status, err.body()["error"]["code"]
(404, 'model_not_found')
"""
from __future__ import annotations

from clients import (DeadlineExceededError, InvalidArgumentError, NotFoundError, ResourceExhaustedError,
                     ServingError, UnavailableError)

__all__ = ["OpenAIError", "from_upstream"]


class OpenAIError(Exception):
    """An error answered to the client in OpenAI's format."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    @classmethod
    def invalid(cls, message: str, param: str | None = None, code: str | None = None) -> "OpenAIError":
        return cls(400, message, param=param, code=code)

    @classmethod
    def model_not_found(cls, model: str, detail: str = "") -> "OpenAIError":
        # OpenAI's own wording, so code written against it recognises the error.
        message = f"The model `{model}` does not exist or you do not have access to it."
        return cls(404, message + (f" {detail}" if detail else ""), param="model", code="model_not_found")

    def __repr__(self) -> str:
        return f"OpenAIError({self.status}, {self.message!r}, code={self.code!r})"


def from_upstream(exc: ServingError, model: str, upstream: str) -> OpenAIError:
    """The OpenAI error for an error of the model server (`clients.ServingError`)."""
    where = f"the model server at {upstream}"
    if isinstance(exc, UnavailableError):
        return OpenAIError(503, f"{where} is unavailable: {exc.message}", type="server_error",
                           code="upstream_unavailable")
    if isinstance(exc, DeadlineExceededError):
        return OpenAIError(504, f"{where} did not answer in time: {exc.message}", type="server_error",
                           code="upstream_timeout")
    if isinstance(exc, NotFoundError):
        return OpenAIError.model_not_found(model, f"({where} answered: {exc.message})")
    if isinstance(exc, InvalidArgumentError):
        return OpenAIError.invalid(f"model `{model}` rejected the input: {exc.message}", param="input")
    if isinstance(exc, ResourceExhaustedError):
        return OpenAIError(429, f"{where} is overloaded: {exc.message}", type="server_error",
                           code="upstream_overloaded")
    return OpenAIError(502, f"{where} failed: {exc.code}: {exc.message}", type="server_error",
                       code="upstream_error")
