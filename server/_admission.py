"""One queue in front of the model for both front ends: requests are let
through in the order they arrived, whichever transport brought them.

Each front end used to have its own limit (REST's `--rest_api_num_threads`
places, gRPC's `--grpc_max_threads` worker pool) with its own waiting line in
front of the shared batching queue. Requests then reached the model in the
order of their own transport's line, not in arrival order: under load one
transport's requests overtook the other's, its share of the model drifted
with how its requests happened to be batched, and a gRPC call's deadline
ran out in the worker pool's line while a REST request's timeout only
started once it had a place. Here there is one line and one limit (the two
front ends' limits added up); a request whose deadline passes while it waits
fails without reaching the model.

>>> gate = Admission(1)
>>> with gate.entry(timeout=None):
...     gate.entry(timeout=0.01).__enter__()
Traceback (most recent call last):
...
server._errors.DeadlineExceeded: Deadline exceeded while the request waited for its turn at the model (1 requests in progress, 1 at most)
"""
from __future__ import annotations

import collections
import contextlib
import threading

from ._errors import DeadlineExceeded

__all__ = ["Admission"]


class Admission:
    """At most `limit` requests worked on at once; the others wait, first come first served."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"the number of requests worked on at once must be at least 1, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._in_use = 0
        self._waiters: collections.deque[threading.Event] = collections.deque()

    @contextlib.contextmanager
    def entry(self, timeout: float | None):
        """Hold one place for the `with` block; wait for it at most `timeout` seconds."""
        self.enter(timeout)
        try:
            yield
        finally:
            self.leave()

    def enter(self, timeout: float | None) -> None:
        """Wait for a place; `DeadlineExceeded` if `timeout` seconds pass first."""
        with self._lock:
            # No overtaking: a free place goes to a newcomer only when nobody waits.
            if self._in_use < self.limit and not self._waiters:
                self._in_use += 1
                return
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(None if timeout is None else max(0.0, timeout)):
            return
        with self._lock:
            if turn.is_set():  # handed a place just as the wait ended: keep it
                return
            self._waiters.remove(turn)
            busy = self._in_use
        raise DeadlineExceeded(f"Deadline exceeded while the request waited for its turn at the model "
                               f"({busy} requests in progress, {self.limit} at most)")

    def leave(self) -> None:
        with self._lock:
            if self._waiters:  # the place passes straight to the longest waiting
                self._waiters.popleft().set()
            else:
                self._in_use -= 1
