"""Frame timing of a converted recording. Pure numpy.

Frames follow the anchor stream (the color image) resampled to the dataset fps: a grid t0 + k/fps from
the first to the last anchor, so an episode has duration * fps + 1 frames; each grid point takes the
anchor message nearest to it (the newest at or before the grid point + half a frame; none within
max_age_s -> no frame there, counted as a gap; an anchor that ran slow is repeated, counted). Every other feature takes the latest message stamped AT OR BEFORE the
frame's stamp (the anchor's), never a later one, and at most max_age_s older; otherwise the frame is
dropped (counted). Without an anchor the grid itself is the clock.
"""
from __future__ import annotations

import numpy as np


def anchor_frames(anchor_ns: np.ndarray, fps: int, max_age_ns: int) -> tuple[list[int], int, int]:
    """One anchor index per grid point t0 + k/fps (k = 0 .. round(duration * fps)): the newest anchor
    stamped at or before the grid point plus half a frame (the nearest one when the anchor runs at the
    dataset rate), if it is at most max_age_ns older than the grid point. Returns (picks, grid points
    without an anchor (gaps), picks that repeat the previous frame's anchor (the anchor ran slow))."""
    anchor_ns = np.asarray(anchor_ns, np.int64)
    if len(anchor_ns) == 0:
        return [], 0, 0
    period = 1e9 / fps
    n = int(round((anchor_ns[-1] - anchor_ns[0]) / period)) + 1
    picks, gaps, repeats = [], 0, 0
    for k in range(n):
        t = anchor_ns[0] + k * period
        i = int(np.searchsorted(anchor_ns, t + period / 2, side="right")) - 1
        if i < 0 or t - anchor_ns[i] > max_age_ns:
            gaps += 1
            continue
        repeats += int(bool(picks) and picks[-1] == i)
        picks.append(i)
    return picks, gaps, repeats


def clock_frames(first_ns: int, last_ns: int, fps: int) -> np.ndarray:
    period = 1e9 / fps
    n = int((last_ns - first_ns) // period) + 1
    return np.asarray([first_ns + round(k * period) for k in range(max(n, 0))], np.int64)


def latest_at_or_before(stamps_ns: np.ndarray, t_ns: int, max_age_ns: int) -> int | None:
    """Index of the newest stamp <= t_ns that is at most max_age_ns older; None if there is none."""
    i = int(np.searchsorted(stamps_ns, t_ns, side="right")) - 1
    if i < 0 or t_ns - stamps_ns[i] > max_age_ns:
        return None
    return i


def chunk_point_at(stamp_ns: int, offsets_ns, t_ns: int) -> int | None:
    """Index of the chunk point planned for time t_ns: the latest with stamp + time_from_start <= t_ns
    (None: the chunk starts after t_ns, ends more than one step before it, or has no points)."""
    times = int(stamp_ns) + np.asarray(offsets_ns, np.int64)
    i = int(np.searchsorted(times, t_ns, side="right")) - 1
    if i < 0:
        return None
    step = int(times[1] - times[0]) if len(times) > 1 else 0
    if i == len(times) - 1 and t_ns - times[-1] > step:
        return None
    return i
