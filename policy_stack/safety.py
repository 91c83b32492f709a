"""Action-path safety: the checks between a policy's chunk and an actuator. Pure numpy, no ROS.

Used on both ends of the ROS 2 link (and by hardware nodes without ROS):
- the inference node filters every chunk before publishing it (`ActionSafety.filter_chunk`) and
  decides whether it may publish at all (`Watchdog`: stale observation, inference overrun);
- the executing side (sim node, arm adapters) executes chunks by time (`ChunkFollower`: action k of a
  chunk stamped T is due at T + k*dt; a newer chunk takes over at its own time index) and falls back
  to `hold` only when the chunk is missing or used up, its observation is older than the horizon, or
  the controller is disabled. The executing side re-validates, because it is the last line of defence:
  a chunk can come from any publisher on the topic, not only from our inference node.

Every decision is an `Event` (kind + human-readable detail), counted by `EventLog`, so the ROS nodes
can show it in /policy/status and in the log without re-deriving anything.

"Hold" depends on the action space kind:
- eef_delta (robosuite OSC): zero translation/rotation delta, gripper kept at its last command;
- joint_position: the last commanded joint positions (the arm stays where it was told to be).
"""
from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass, field

import numpy as np

from policy_stack.spaces import ActionSpace

# Event kinds (stable strings: they appear in /policy/status keys and in tests).
NAN_CHUNK = "nan_chunk"            # chunk had NaN/Inf: rejected, hold
BAD_SHAPE = "bad_shape"            # chunk shape does not match the action space: rejected, hold
CLAMPED_BOUNDS = "clamped_bounds"  # some values were outside [low, high]: clamped
CLAMPED_DELTA = "clamped_delta"    # a step changed faster than max_step_delta: rate-limited
STALE_OBS = "stale_observation"    # newest observation older than max_obs_age_s: hold
OVERRUN = "inference_overrun"      # inference took longer than max_inference_s: reported (latency, not a hold)
DISABLED = "disabled"              # /policy/enable false: hold
BAD_INPUT = "bad_input"            # malformed message at the node (encoding, size, NaN, too large)
NO_CHUNK = "no_chunk"              # executing side: nothing received yet: hold
STALE_CHUNK = "stale_chunk"        # executing side: newest chunk too old or used up: hold
HOLD_CMD = "hold_command"          # executing side: explicit hold (empty chunk) received
LATE_CHUNK = "late_chunk"          # executing side: chunk arrived after its last action was due: dropped

HOLD_EVENTS = {NAN_CHUNK, BAD_SHAPE, STALE_OBS, DISABLED, BAD_INPUT, NO_CHUNK, STALE_CHUNK, HOLD_CMD}


@dataclass(frozen=True)
class Event:
    kind: str
    detail: str = ""

    @property
    def holds(self) -> bool:
        return self.kind in HOLD_EVENTS

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class EventLog:
    """Counts events by kind and remembers the last few, for status messages. Thread-safe."""

    def __init__(self, keep: int = 20):
        self._lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()
        self.recent: collections.deque = collections.deque(maxlen=keep)

    def add(self, event: Event, t: float | None = None) -> Event:
        with self._lock:
            self.counts[event.kind] += 1
            self.recent.append((t, event))
        return event

    def last(self) -> Event | None:
        with self._lock:
            return self.recent[-1][1] if self.recent else None

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


@dataclass
class SafetyLimits:
    """Numbers the safety module enforces. Defaults match config/inference_node_parameters.yaml."""
    max_obs_age_s: float = 0.2          # watchdog: newest observation must be younger than this
    max_inference_s: float = 0.1        # watchdog: a slower inference is an overrun (chunk dropped)
    # Largest change between consecutive actions per continuous dimension (same units as the
    # action). A scalar applies to every non-discrete dimension; None or inf disables rate limiting.
    max_step_delta: float | list[float] | None = None


def _per_dim(value, dim: int, name: str) -> np.ndarray:
    if value is None:
        return np.full(dim, np.inf, np.float64)
    arr = np.asarray(value, np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(dim, float(arr[0]))
    if arr.size != dim:
        raise ValueError(f"{name}: expected 1 or {dim} values, got {arr.size}")
    if np.any(arr <= 0) or np.any(np.isnan(arr)):
        raise ValueError(f"{name}: values must be > 0, got {arr.tolist()}")
    return arr


@dataclass
class ChunkVerdict:
    ok: bool                          # False: do not command anything from this chunk (hold)
    chunk: np.ndarray | None          # the filtered chunk (float32, (T, A)) when ok
    events: list[Event] = field(default_factory=list)


class ActionSafety:
    """Validates and limits action chunks for one action space."""

    def __init__(self, action_space: ActionSpace, limits: SafetyLimits | None = None):
        self.space = action_space
        self.limits = limits or SafetyLimits()
        self.low = np.asarray(action_space.low, np.float64)
        self.high = np.asarray(action_space.high, np.float64)
        self.max_delta = _per_dim(self.limits.max_step_delta, action_space.dim, "max_step_delta")
        # Discrete dims (gripper -1/+1) must be able to flip in one step: never rate-limit them.
        self.max_delta[list(action_space.discrete)] = np.inf

    def filter_chunk(self, chunk, prev_action=None) -> ChunkVerdict:
        """Reject NaN/Inf or misshapen chunks; clamp to bounds; rate-limit consecutive steps.

        prev_action: the action commanded just before chunk[0] (rate limit anchor), or None.
        """
        try:
            arr = np.asarray(chunk, np.float64)
        except (TypeError, ValueError) as exc:
            return ChunkVerdict(False, None, [Event(BAD_SHAPE, f"not numeric: {exc}")])
        if arr.ndim == 1 and arr.size == self.space.dim:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != self.space.dim or arr.shape[0] == 0:
            return ChunkVerdict(False, None, [Event(BAD_SHAPE, f"shape {arr.shape}, expected (T, {self.space.dim})")])
        bad = ~np.isfinite(arr)
        if bad.any():
            t, d = np.argwhere(bad)[0]
            return ChunkVerdict(False, None, [Event(
                NAN_CHUNK, f"{int(bad.sum())} non-finite values, first at step {t} dim {self.space.names[d]!r}")])
        events = []
        clamped = np.clip(arr, self.low, self.high)
        n = int(np.count_nonzero(clamped != arr))
        if n:
            events.append(Event(CLAMPED_BOUNDS, f"{n} values outside action bounds"))
        limited, n = self.rate_limit(clamped, prev_action)
        if n:
            events.append(Event(CLAMPED_DELTA, f"{n} steps over max_step_delta"))
        return ChunkVerdict(True, limited.astype(np.float32), events)

    def rate_limit(self, chunk: np.ndarray, prev_action=None) -> tuple[np.ndarray, int]:
        """Limit |a[k] - a[k-1]| per dimension (a[-1] = prev_action). Returns (chunk, n_limited)."""
        if not np.isfinite(self.max_delta).any():
            return chunk, 0
        out = np.array(chunk, np.float64, copy=True)
        prev = None if prev_action is None else np.asarray(prev_action, np.float64)
        if prev is not None and (prev.shape != (self.space.dim,) or not np.isfinite(prev).all()):
            prev = None     # an unusable anchor must not poison the chunk
        # Vectorized check first: almost every chunk is within the limit, and the per-step loop below
        # (inherently sequential: each step is anchored on the limited one before it) costs ~10x more.
        seq = out if prev is None else np.concatenate([prev[None], out])
        over = np.abs(np.diff(seq, axis=0)) > self.max_delta
        if not over.any():
            return out, 0
        first = int(np.argmax(over.any(axis=1)))          # first over-limit step, in `out` rows
        if prev is None:
            first += 1
        prev = out[first - 1] if first > 0 else prev
        n = 0
        for k in range(first, out.shape[0]):
            if prev is not None:
                step = np.clip(out[k] - prev, -self.max_delta, self.max_delta)
                new = prev + step
                if not np.array_equal(new, out[k]):
                    n += 1
                    out[k] = new
            prev = out[k]
        return out, n

    def hold_action(self, last_action=None, current_position=None) -> np.ndarray:
        """The action that keeps the robot still (see module doc)."""
        dim = self.space.dim
        if self.space.kind == "eef_delta":
            hold = np.zeros(dim, np.float32)
            if last_action is not None:
                last = np.asarray(last_action, np.float32)
                for i in self.space.discrete:   # gripper keeps its last command
                    if math.isfinite(float(last[i])):
                        hold[i] = last[i]
            elif self.space.discrete:
                # No command yet: gripper open (-1) is the conservative default for a new episode.
                hold[list(self.space.discrete)] = np.clip(-1.0, self.low[list(self.space.discrete)],
                                                          self.high[list(self.space.discrete)])
            # Zero might lie outside unusual bounds; clamp so hold is always a valid command.
            return np.clip(hold, self.low, self.high).astype(np.float32)
        # joint_position: stay at the last command, or where the arm is if nothing was commanded.
        for ref in (last_action, current_position):
            if ref is not None and np.all(np.isfinite(ref)) and np.shape(ref) == (dim,):
                return np.asarray(ref, np.float32)
        raise ValueError("hold for joint_position needs the last command or the current joint positions")


class Watchdog:
    """Observation age (may the node act on it?) and inference duration (reported, not a hold)."""

    def __init__(self, limits: SafetyLimits):
        self.limits = limits

    def check_observation(self, now: float, stamps: dict[str, float]) -> Event | None:
        """stamps: per observation key, its stamp (seconds, same clock as now). The OLDEST counts:
        every input the policy sees must be fresh, not only the newest."""
        if not stamps:
            return Event(STALE_OBS, "no observation yet")
        key, oldest = min(stamps.items(), key=lambda kv: kv[1])
        age = now - oldest
        if age > self.limits.max_obs_age_s:
            return Event(STALE_OBS, f"{key} is {age * 1e3:.0f} ms old > {self.limits.max_obs_age_s * 1e3:.0f} ms")
        if age < -self.limits.max_obs_age_s:
            # A stamp far in the future is as untrustworthy as an old one (clock mix-up, sim time).
            return Event(STALE_OBS, f"{key} stamp is {-age * 1e3:.0f} ms in the future")
        return None

    def check_inference(self, duration_s: float) -> Event | None:
        if duration_s > self.limits.max_inference_s:
            return Event(OVERRUN, f"inference took {duration_s * 1e3:.1f} ms > {self.limits.max_inference_s * 1e3:.0f} ms")
        return None


class ChunkFollower:
    """Time-indexed execution of the newest chunk, on the executing side. Thread-safe.

    A chunk (T, A) stamped `stamp` (the time of the newest observation it was computed from) holds
    action k for the time slot [stamp + k*dt, stamp + (k+1)*dt). At control time t the follower returns
    chunk[floor((t - stamp)/dt)], so a chunk that arrives late is joined at its current time index and
    the actions whose time has passed are skipped (latency compensation, as diffusion_policy's real-robot
    runner does). A newer chunk takes over from the current one at its own time index; a chunk with no
    action left at arrival is dropped (LATE_CHUNK) and the current one continues. Hold only when: no
    chunk yet, the controller is disabled, an explicit hold arrived after the chunk, the chunk is used
    up, or its observation is older than `max_age_s` (the open-loop horizon). An older chunk never
    replaces a newer one (out-of-order delivery).

    Hand-over: with blend_steps > 0 the first blend_steps actions taken from a new chunk are mixed with
    the previous chunk's action for the same time slot (weight of the new chunk (i+1)/(blend_steps+1) at
    its i-th action; discrete dimensions come from the new chunk), so a new plan that disagrees with the
    executing one does not jump. `handover_jumps` records, per hand-over from one chunk to the next (not
    a resumption after a hold), the largest change of a continuous dimension between the last executed
    action and the first one from the new chunk.
    """

    def __init__(self, safety: ActionSafety, max_age_s: float = 0.5, blend_steps: int = 0):
        self.safety = safety
        self.max_age_s = max_age_s
        self.blend_steps = int(blend_steps)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._chunk: np.ndarray | None = None
        self._stamp = -math.inf
        self._dt = 0.05
        self._prev: tuple[np.ndarray, float, float] | None = None   # (chunk, stamp, dt) it replaced
        self._used_stamp = -math.inf     # stamp of the chunk the last action came from
        self._taken = 0                  # actions taken from the current chunk so far
        self._last_from_chunk = False    # the last action came from a chunk (not a hold)
        self._hold_since = -math.inf     # stamp of the newest explicit hold
        self._not_before = -math.inf     # chunks stamped before this are ignored (episode reset)
        self.last_action: np.ndarray | None = None
        self.last_age = math.inf
        # (chunk stamp, dt, index) the last action_at took its action from, None after a hold: an executor
        # that plans per policy step (the arm adapters) sees when a new step starts and when it ends.
        self.last_slot: tuple[float, float, int] | None = None
        self.enabled = True
        self._continuous = np.ones(safety.space.dim, bool)
        self._continuous[list(safety.space.discrete)] = False
        self.handover_jumps: collections.deque = collections.deque(maxlen=100_000)

    def set_chunk(self, stamp: float, dt: float, chunk, now: float | None = None) -> tuple[bool, list[Event]]:
        """Offer a received chunk (now: the executing side's clock, to drop a chunk that is entirely in
        the past). Returns (accepted, events it caused: rejections, clamps, late_chunk).

        Not accepted without events: older than the current chunk or than the last reset."""
        with self._lock:
            if stamp < self._not_before or stamp <= self._stamp:
                return False, []
            if not (dt > 0 and math.isfinite(dt)):
                return False, [Event(BAD_SHAPE, f"time step {dt!r} must be > 0")]
            n = int(np.shape(chunk)[0]) if np.ndim(chunk) >= 1 else 0
            if now is not None and n and stamp + n * dt <= now:
                return False, [Event(LATE_CHUNK, f"{n} actions from {(now - stamp) * 1e3:.0f} ms ago: none left to execute")]
            verdict = self.safety.filter_chunk(chunk)
            if verdict.ok:
                if self._chunk is not None:
                    self._prev = (self._chunk, self._stamp, self._dt)
                self._chunk, self._stamp, self._dt = verdict.chunk, stamp, dt
                self._changed.notify_all()
            return verdict.ok, verdict.events

    def wait_for_chunk(self, newer_than: float, timeout: float) -> bool:
        """Block until a chunk stamped >= newer_than is held, or timeout. True if one is."""
        with self._lock:
            return self._changed.wait_for(lambda: self._stamp >= newer_than, timeout=max(0.0, timeout))

    def set_hold(self, stamp: float) -> None:
        """Explicit hold (an empty JointTrajectory, as joint_trajectory_controller treats it)."""
        with self._lock:
            self._hold_since = max(self._hold_since, stamp)

    def reset(self, not_before: float) -> None:
        """New episode: forget the chunk; ignore chunks computed from observations before not_before."""
        with self._lock:
            self._chunk, self._stamp, self._prev = None, -math.inf, None
            self._used_stamp, self._taken, self._last_from_chunk = -math.inf, 0, False
            self._hold_since = -math.inf
            self._not_before = not_before
            self.last_action = None

    def action_at(self, t: float, current_position=None) -> tuple[np.ndarray, Event | None, int]:
        """(action, hold event or None, chunk index or -1). Rate-limits against the last action.

        current_position: measured joint positions, needed to hold a joint_position arm before
        anything was commanded."""
        with self._lock:
            event, idx = None, -1
            self.last_age = t - self._stamp     # age of the newest chunk at this command (inf: none)
            if not self.enabled:
                event = Event(DISABLED)
            elif self._chunk is None:
                event = Event(NO_CHUNK)
            elif self._hold_since >= self._stamp:
                event = Event(HOLD_CMD, "hold requested by the policy side")
            else:
                age = t - self._stamp
                idx = int(math.floor(age / self._dt + 1e-9))
                if age > self.max_age_s:
                    event = Event(STALE_CHUNK, f"chunk is {age * 1e3:.0f} ms old > {self.max_age_s * 1e3:.0f} ms")
                elif idx >= len(self._chunk):
                    event = Event(STALE_CHUNK, f"index {idx} past chunk length {len(self._chunk)}")
                elif idx < 0:
                    # Stamp in the future: clock mismatch between machines; executing would guess.
                    event = Event(STALE_CHUNK, f"chunk stamp {-age * 1e3:.0f} ms in the future")
            if event is not None:
                action = self.safety.hold_action(self.last_action, current_position)
                idx = -1
            else:
                handover = self._stamp != self._used_stamp
                if handover:
                    self._used_stamp, self._taken = self._stamp, 0
                wanted = self._blend(self._chunk[idx], t)
                self._taken += 1
                action, _ = self.safety.rate_limit(wanted[None], self.last_action)
                action = action[0].astype(np.float32)
                if handover and self._last_from_chunk:
                    # chunk -> chunk only: resuming after a hold is a start, not a hand-over
                    diff = np.abs(action - self.last_action)[self._continuous]
                    self.handover_jumps.append(float(diff.max()) if diff.size else 0.0)
            self._last_from_chunk = event is None
            self.last_slot = None if event is not None else (self._stamp, self._dt, idx)
            self.last_action = action
            return action, event, idx

    def _blend(self, new: np.ndarray, t: float) -> np.ndarray:
        """The new chunk's action, mixed with the replaced chunk's action for the same time slot during
        the first blend_steps actions after a hand-over (see class doc)."""
        if self.blend_steps <= 0 or self._taken >= self.blend_steps or self._prev is None:
            return new
        prev, stamp, dt = self._prev
        j = int(math.floor((t - stamp) / dt + 1e-9))
        if not (0 <= j < len(prev)) or t - stamp > self.max_age_s:
            return new
        w = (self._taken + 1) / (self.blend_steps + 1)
        out = new.copy()
        c = self._continuous
        out[c] = w * new[c] + (1.0 - w) * prev[j][c]
        return out

    @property
    def chunk_stamp(self) -> float:
        with self._lock:
            return self._stamp
