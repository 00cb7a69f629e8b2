"""Waiting for a condition in a test, with a bound and a message saying what was awaited."""
from __future__ import annotations

import time

__all__ = ["wait_for"]


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    """Poll `predicate()` until it returns something true (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
