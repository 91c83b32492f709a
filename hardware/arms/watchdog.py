"""Staleness watchdogs and the latched e-stop. Times are seconds on the caller's clock (the node clock)."""
from __future__ import annotations

import math
import threading


class Staleness:
    """Holds when the newest message of a stream is older than max_age_s (or none came yet)."""

    def __init__(self, name: str, max_age_s: float):
        if not (max_age_s > 0 and math.isfinite(max_age_s)):
            raise ValueError(f"{name}: max_age_s must be > 0, got {max_age_s!r}")
        self.name = name
        self.max_age_s = float(max_age_s)
        self.last = -math.inf

    def touch(self, t: float) -> None:
        self.last = max(self.last, t)

    def age(self, now: float) -> float:
        return now - self.last

    def stale(self, now: float) -> str | None:
        """None while fresh, else why it is stale (for the hold event)."""
        if self.last == -math.inf:
            return f"no {self.name} received yet"
        age = now - self.last
        if age > self.max_age_s:
            return f"{self.name} {age * 1e3:.0f} ms old > {self.max_age_s * 1e3:.0f} ms"
        return None


class EStop:
    """Latched emergency stop: trigger() latches it (idempotent); only reset() releases it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.latched = False
        self.reason = ""
        self.since = math.nan
        self.count = 0

    def trigger(self, reason: str, t: float) -> bool:
        """True when this call latched it (False: it already was)."""
        with self._lock:
            if self.latched:
                return False
            self.latched, self.reason, self.since = True, reason, t
            self.count += 1
            return True

    def reset(self) -> bool:
        """Release; True when it was latched."""
        with self._lock:
            was = self.latched
            self.latched, self.reason, self.since = False, "", math.nan
            return was
