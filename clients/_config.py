"""Settings as small value objects, and the `NOT_GIVEN` sentinel.

`NOT_GIVEN` means "use the client's default"; `None` means "none" (e.g.
`timeout=None` waits forever, `version=None` asks for the latest version).

>>> from clients import RetryPolicy
>>> policy = RetryPolicy(max_attempts=3, initial_backoff=0.1, jitter=0.0)
>>> [policy.backoff(attempt) for attempt in (1, 2)]
[0.1, 0.2]
"""
from __future__ import annotations

import dataclasses
import random
from typing import Final

__all__ = [
    "NOT_GIVEN",
    "NotGiven",
    "RetryPolicy",
    "DEFAULT_TIMEOUT",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_REQUEST_BYTES",
]


class NotGiven:
    """The type of `NOT_GIVEN`: an argument the caller did not pass."""

    _instance: "NotGiven | None" = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self):
        return (NotGiven, ())


NOT_GIVEN: Final = NotGiven()

#: seconds a single call may take unless the client or the call says otherwise
DEFAULT_TIMEOUT = 60.0
#: rows per request in `predict_batched`
DEFAULT_BATCH_SIZE = 64
#: requests in flight at once in `predict_batched`
DEFAULT_CONCURRENCY = 4
#: serialized request size cap; also the gRPC channel's max send size
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How `predict_batched` retries transient failures (`RetryableError`).

    Attempt n (1-based, n < max_attempts) is followed by a pause of
    `min(max_backoff, initial_backoff * multiplier**(n-1))`, spread by
    +/- `jitter` (a fraction) so that concurrent requests do not retry in step.
    Invalid input is never retried. With the defaults a request is tried
    10 times over about a minute (pauses 0.25, 0.5, 1, 2, 4, 8, 15, 15, 15 s),
    long enough for a server restart.

    >>> RetryPolicy(max_attempts=1)      # no retries
    RetryPolicy(max_attempts=1, initial_backoff=0.25, max_backoff=15.0, multiplier=2.0, jitter=0.2)
    """

    max_attempts: int = 10
    initial_backoff: float = 0.25
    max_backoff: float = 15.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 (1 = no retries), got {self.max_attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoffs must be >= 0 seconds, got "
                             f"initial_backoff={self.initial_backoff}, max_backoff={self.max_backoff}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction in [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        if self.jitter:
            base *= 1 + self.jitter * (2 * (rng or random).random() - 1)
        return max(0.0, base)

    def should_retry(self, attempt: int) -> bool:
        """Whether a request that failed transiently on attempt `attempt` is tried again."""
        return attempt < self.max_attempts
