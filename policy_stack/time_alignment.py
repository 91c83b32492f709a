"""Time alignment of observations that arrive on separate streams. Pure Python/numpy, no ROS.

A policy needs ONE observation per control tick, but its parts arrive separately (joint states,
end-effector pose, each camera, object tracker) with their own stamps and rates. `ObservationSync`
keeps a short stamped buffer per key and assembles the newest consistent set: the newest sample of
the anchor key for which every other key has a sample within `tolerance_s` of it. The policy keeps
the history of those assembled observations itself (Policy.act pushes into its To-step history), so
each anchor sample is handed out once: `assemble(after=...)` returns nothing new until a newer one
arrives, which keeps a policy's history evenly spaced in time rather than padded with repeats.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class Aligned:
    obs: dict[str, np.ndarray]
    stamps: dict[str, float]       # per key, the stamp of the sample used
    anchor_stamp: float

    @property
    def newest(self) -> float:
        return max(self.stamps.values())

    @property
    def oldest(self) -> float:
        return min(self.stamps.values())


class ObservationSync:
    def __init__(self, keys, anchor: str, tolerance_s: float = 0.03, buffer: int = 16):
        keys = list(keys)
        if anchor not in keys:
            raise ValueError(f"anchor key {anchor!r} not among observation keys {keys}")
        self.keys, self.anchor, self.tolerance_s = keys, anchor, float(tolerance_s)
        self._buffer = int(buffer)
        self._lock = threading.Lock()
        self._stamps: dict[str, list[float]] = {k: [] for k in keys}
        self._values: dict[str, list] = {k: [] for k in keys}

    def push(self, key: str, stamp: float, value) -> None:
        """Add one sample; out-of-order samples are inserted at their place in time."""
        with self._lock:
            stamps, values = self._stamps[key], self._values[key]
            i = bisect.bisect_right(stamps, stamp)
            if i > 0 and stamps[i - 1] == stamp:     # same stamp again: the newer message wins
                values[i - 1] = value
                return
            stamps.insert(i, stamp)
            values.insert(i, value)
            if len(stamps) > self._buffer:
                del stamps[0], values[0]

    def invalidate(self, key: str) -> None:
        """Forget a key's samples (after malformed input, so nothing older than the fault is reused)."""
        with self._lock:
            self._stamps[key].clear()
            self._values[key].clear()

    def clear(self) -> None:
        for k in self.keys:
            self.invalidate(k)

    def latest(self) -> dict[str, float]:
        """Newest stamp per key that has any sample."""
        with self._lock:
            return {k: s[-1] for k, s in self._stamps.items() if s}

    def missing(self) -> list[str]:
        with self._lock:
            return [k for k, s in self._stamps.items() if not s]

    def _nearest(self, key: str, t: float):
        stamps = self._stamps[key]
        i = bisect.bisect_left(stamps, t)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(stamps) and (best is None or abs(stamps[j] - t) < abs(stamps[best] - t)):
                best = j
        if best is None or abs(stamps[best] - t) > self.tolerance_s:
            return None
        return best

    def _aligned_at(self, a: int) -> Aligned | None:
        """The observation anchored at anchor sample a, if every key has a sample near it (lock held)."""
        t = self._stamps[self.anchor][a]
        picks = {}
        for k in self.keys:
            j = a if k == self.anchor else self._nearest(k, t)
            if j is None:
                return None
            picks[k] = j
        return Aligned(obs={k: self._values[k][j] for k, j in picks.items()},
                       stamps={k: self._stamps[k][j] for k, j in picks.items()}, anchor_stamp=t)

    def assemble(self, after: float = float("-inf")) -> Aligned | None:
        """Newest aligned observation whose anchor stamp is > after, or None (nothing new/complete)."""
        with self._lock:
            anchors = self._stamps[self.anchor]
            for a in range(len(anchors) - 1, -1, -1):
                if anchors[a] <= after:
                    return None
                aligned = self._aligned_at(a)
                if aligned is not None:
                    return aligned
            return None

    def assemble_between(self, after: float, before: float, min_spacing: float = 0.0) -> list[Aligned]:
        """Every complete observation with after < anchor stamp < before, oldest first, each at least
        min_spacing after the previous one (and after `after`): the steps a consumer that was busy did
        not plan on, in order (an inference node feeds them to the policy's history)."""
        with self._lock:
            out, last = [], after
            for a, t in enumerate(self._stamps[self.anchor]):
                if t <= after or t >= before or t - last < min_spacing:
                    continue
                aligned = self._aligned_at(a)
                if aligned is not None:
                    out.append(aligned)
                    last = t
            return out
