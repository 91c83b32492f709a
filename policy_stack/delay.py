"""Injected latency with jitter: a delay line that runs callables at a later time. Pure Python.

Sim-to-real randomization for the sim node (observation and action latency, as a real robot PC has
them) and for benchmarks of how execution copes with slow answers. One daemon thread per line; calls
run in due order; jitter scales each delay by a uniform factor in [1 - jitter, 1 + jitter], drawn from
a seeded generator so a run can be repeated.
"""
from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from typing import Callable


class DelayLine:
    def __init__(self, delay_s: float, jitter: float = 0.0, seed: int = 0, name: str = "delay"):
        if not (delay_s >= 0.0 and 0.0 <= jitter <= 1.0):
            raise ValueError(f"delay {delay_s!r} s must be >= 0 and jitter {jitter!r} in [0, 1]")
        self.delay_s, self.jitter = float(delay_s), float(jitter)
        self._rng = random.Random(seed)
        self._heap: list = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        """One delay draw, seconds."""
        return self.delay_s * (1.0 + self.jitter * (2.0 * self._rng.random() - 1.0))

    def submit(self, fn: Callable[[], None]) -> float:
        """Run fn() after one delay draw (0 runs it now, in the caller's thread). Returns the delay."""
        d = self.sample() if self.delay_s > 0 else 0.0
        if d <= 0:
            fn()
            return 0.0
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + d, next(self._seq), fn))
            self._cv.notify()
        return d

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                if not self._heap:
                    self._cv.wait()
                    continue
                due = self._heap[0][0] - time.monotonic()
                if due > 0:
                    self._cv.wait(due)
                    continue
                _, _, fn = heapq.heappop(self._heap)
                self._cv.release()
                try:
                    fn()
                finally:
                    self._cv.acquire()

    def close(self) -> None:
        """Drop what is still pending and stop the thread."""
        with self._cv:
            self._closed = True
            self._heap.clear()
            self._cv.notify()
        self._thread.join(timeout=2.0)
