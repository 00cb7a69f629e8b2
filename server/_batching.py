"""Server-side batching (`--enable_batching`), after TF Serving's BatchingSession
and BasicBatchScheduler.

Concurrent runs with the same feeds and fetches (the same signature and
outputs) are queued in arrival order, whichever front end they come from; a batch is closed when it reaches `max_batch_size` (or
the next task does not fit), or when its oldest task has waited
`batch_timeout_micros`, or - with a timeout of 0 - as soon as a batch thread
is free. Inputs are concatenated along dimension 0 (padding dimensions 1+ with
each tensor's first element when `pad_variable_length_inputs`; padding the
batch up to the next `allowed_batch_sizes` entry with copies of the first
row), run once, and outputs are split back per task. A task whose deadline
has passed when its batch starts fails alone; the batch runs under the
latest deadline of the others.

>>> b = Batcher(BatchingParameters(max_batch_size=4), lambda feeds, fetches, t: [feeds["x"] * 2])
>>> b.run({"x": np.array([1.0, 2.0])}, ["y"])
[array([2., 4.])]
>>> b.stop()
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future

import numpy as np

from ._config import BatchingParameters
from ._errors import DeadlineExceeded, InvalidArgument, ServingError, Unavailable

__all__ = ["Batcher", "BatchingParameters"]


class _Task:
    __slots__ = ("feeds", "size", "future", "enqueued", "deadline")

    def __init__(self, feeds, size, deadline):
        self.feeds, self.size, self.deadline = feeds, size, deadline
        self.future: Future = Future()
        self.enqueued = time.monotonic()


class _Queue:
    """Open batches for one (feeds, fetches) signature."""

    def __init__(self, key):
        self.key = key
        self.batches: list[list[_Task]] = []
        self.sizes: list[int] = []


class Batcher:
    """Merges concurrent `run()` calls of one servable into batched runs.

    `run_fn(feeds, fetches, timeout) -> list[np.ndarray]` does the real work.
    `observe(batch_size, queue_depth)` (optional) is told about every batch.
    """

    def __init__(self, params: BatchingParameters, run_fn, observe=None):
        self.params = params
        self._run_fn = run_fn
        self._observe = observe
        self._queues: dict = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._depth = 0  # tasks waiting
        threads = params.num_batch_threads or (os.cpu_count() or 1)
        self._threads = [threading.Thread(target=self._work, name=f"{params.thread_pool_name}-{i}",
                                          daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def run(self, feeds: dict, fetches: list, timeout: float | None = None) -> list:
        """Queue one run; block until its slice of the batched result is back."""
        sizes = set()
        for name, arr in feeds.items():
            if arr.ndim == 0:
                raise InvalidArgument(f"Batching session Run() input tensors must have at least one "
                                      f"dimension; '{name}' is a scalar")
            sizes.add(arr.shape[0])
        if len(sizes) != 1:
            raise InvalidArgument(f"Batching session Run() input tensors must have equal 0th-dimension "
                                  f"size; got sizes {sorted(sizes)}")
        size = sizes.pop()
        if size > self.params.max_batch_size:
            raise InvalidArgument(f"Task size {size} is larger than maximum input batch size "
                                  f"{self.params.max_batch_size}; send at most "
                                  f"{self.params.max_batch_size} rows per request")
        deadline = None if timeout is None else time.monotonic() + timeout
        task = _Task(feeds, size, deadline)
        key = (tuple(sorted(feeds)), tuple(fetches))
        with self._cond:
            if self._stopped:
                raise Unavailable("The batch scheduler is stopped (the model version is unloading)")
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = _Queue(key)
            if q.batches and q.sizes[-1] + size <= self.params.max_batch_size:
                q.batches[-1].append(task)
                q.sizes[-1] += size
            else:
                if len(q.batches) >= self.params.max_enqueued_batches:
                    raise Unavailable("The batch scheduling queue to which this task was submitted is "
                                      "full; retry later, or raise max_enqueued_batches")
                q.batches.append([task])
                q.sizes.append(size)
            self._depth += 1
            self._cond.notify()
        return task.future.result()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

    # -- batch threads ------------------------------------------------------
    def _ready(self, now: float):
        """A batch to run now, or the time until one could be."""
        timeout = self.params.batch_timeout_micros / 1e6
        wait = None
        for q in self._queues.values():
            if not q.batches:
                continue
            full = q.sizes[0] >= self.params.max_batch_size or len(q.batches) > 1
            waited = now - q.batches[0][0].enqueued
            if full or waited >= timeout or self._stopped:
                tasks = q.batches.pop(0)
                q.sizes.pop(0)
                return q.key, tasks, None
            left = timeout - waited
            wait = left if wait is None else min(wait, left)
        return None, None, wait

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    key, tasks, wait = self._ready(time.monotonic())
                    if tasks is not None:
                        self._depth -= len(tasks)
                        depth = self._depth
                        break
                    if self._stopped:
                        return
                    self._cond.wait(wait)
            self._process(key, tasks, depth)

    def _process(self, key, tasks: list[_Task], depth: int) -> None:
        now = time.monotonic()
        live = []
        for t in tasks:
            if t.deadline is not None and t.deadline <= now:
                t.future.set_exception(DeadlineExceeded("Deadline exceeded while the request waited "
                                                        "in the batching queue"))
            else:
                live.append(t)
        if not live:
            return
        names, fetches = key
        try:
            feeds, total, padded = self._merge(names, live)
            if self._observe is not None:
                self._observe(padded, depth)
            # The latest deadline, as TF Serving's BatchingSession: a short
            # deadline must not cut the run short for the others in the batch.
            if any(t.deadline is None for t in live):
                timeout = None
            else:
                timeout = max(t.deadline for t in live) - time.monotonic()
            outputs = self._run_fn(feeds, list(fetches), timeout)
            for name, out in zip(fetches, outputs):
                if out.ndim == 0 or out.shape[0] != padded:
                    raise ServingError(
                        f"Batched output tensor's 0th dimension does not equal the sum of the 0th "
                        f"dimension sizes of the input tensors ({name}: {list(out.shape)} vs {padded}); "
                        f"this signature cannot be batched", InvalidArgument.code)
        except BaseException as e:  # every waiting request must hear about it
            err = e if isinstance(e, ServingError) else ServingError(str(e), InvalidArgument.code)
            for t in live:
                t.future.set_exception(err)
            return
        start = 0
        for t in live:
            t.future.set_result([out[start:start + t.size] for out in outputs])
            start += t.size

    def _merge(self, names, tasks: list[_Task]):
        total = sum(t.size for t in tasks)
        padded = total
        for allowed in self.params.allowed_batch_sizes:
            if allowed >= total:
                padded = allowed
                break
        feeds = {}
        for name in names:
            parts = [t.feeds[name] for t in tasks]
            shapes = {p.shape[1:] for p in parts}
            if len(shapes) > 1:
                if not self.params.pad_variable_length_inputs:
                    raise InvalidArgument(
                        f"Tensors with name '{name}' from different tasks have different shapes and "
                        f"padding is turned off. Set pad_variable_length_inputs to true, or ensure that "
                        f"all tensors with the same name have equal dimensions starting with the first dim.")
                if len({len(s) for s in shapes}) > 1:
                    raise InvalidArgument(f"Tensors with name '{name}' from different tasks have "
                                          f"different ranks and cannot be padded")
                target = tuple(max(s[i] for s in shapes) for i in range(len(next(iter(shapes)))))
                parts = [_pad(p, target) for p in parts]
            if padded > total:
                first = parts[0][:1]
                parts.append(np.repeat(first, padded - total, axis=0))
            feeds[name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return feeds, total, padded


def _pad(arr: np.ndarray, target: tuple) -> np.ndarray:
    if arr.shape[1:] == target:
        return arr
    # TF Serving pads with the tensor's first element.
    fill = arr.flat[0] if arr.size else np.zeros((), arr.dtype)[()]
    out = np.full((arr.shape[0],) + target, fill, dtype=arr.dtype)
    out[(slice(None),) + tuple(slice(0, s) for s in arr.shape[1:])] = arr
    return out
