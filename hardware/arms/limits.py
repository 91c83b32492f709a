"""Limits on the COMMANDED motion of the end effector: workspace box, speed and acceleration.

Every backend first turns the policy's action into a desired twist (linear m/s, angular rad/s, base
frame) for the next control tick; `MotionLimiter.limit` is the one place that makes it safe:
- non-finite values -> zero twist (reported);
- speed: the linear and angular speed norms are scaled down to the limits (direction kept);
- acceleration: the change from the previous tick's command is scaled down to accel * tick;
- workspace: per axis, the velocity that would carry the reference point (the commanded pose, or the
  measured one where the controller integrates the twist itself) outside [workspace_min, workspace_max]
  within `horizon_s`, or closer to the wall than it can brake from, is cut; outside the box only motion
  back in is allowed.
The workspace cut comes last and wins over the acceleration limit: a wall is never crossed to keep a
ramp smooth. Stopping (a hold, the e-stop) is always allowed at once: `stop()` zeroes the memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Defaults (the field figures in docs/hardware.md): ISO 10218 reduced speed 0.25 m/s, 1 rad/s.
DEFAULT_MAX_LINEAR_SPEED = 0.25
DEFAULT_MAX_ANGULAR_SPEED = 1.0
DEFAULT_MAX_LINEAR_ACCEL = 2.5
DEFAULT_MAX_ANGULAR_ACCEL = 10.0
# A Panda on its table: z = 0 is the table top (config/arm_adapter_parameters.yaml has the same numbers).
TABLE_WORKSPACE = ((0.25, -0.4, 0.02), (0.8, 0.4, 0.6))
# The robosuite arm behind the fake interfaces: its base sits on a pedestal 0.112 m above the table top
# (Lift's cube rests at z = -0.082 in panda_link0), so the box reaches down to the table.
ROBOSUITE_TABLE_WORKSPACE = ((0.25, -0.35, -0.12), (0.85, 0.35, 0.45))


@dataclass
class MotionLimits:
    workspace_min: tuple = TABLE_WORKSPACE[0]    # base frame, m
    workspace_max: tuple = TABLE_WORKSPACE[1]
    max_linear_speed: float = DEFAULT_MAX_LINEAR_SPEED
    max_angular_speed: float = DEFAULT_MAX_ANGULAR_SPEED
    max_linear_accel: float = DEFAULT_MAX_LINEAR_ACCEL
    max_angular_accel: float = DEFAULT_MAX_ANGULAR_ACCEL

    def __post_init__(self):
        lo = np.asarray(self.workspace_min, np.float64)
        hi = np.asarray(self.workspace_max, np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(f"workspace_min/max must be 3 finite numbers each, got {self.workspace_min}, {self.workspace_max}")
        if np.any(lo >= hi):
            raise ValueError(f"workspace box is empty: min {lo.tolist()} not below max {hi.tolist()}")
        for name in ("max_linear_speed", "max_angular_speed", "max_linear_accel", "max_angular_accel"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        self.workspace_min, self.workspace_max = lo, hi

    def inside(self, p, tol: float = 1e-9) -> bool:
        p = np.asarray(p, np.float64)
        return bool(np.all(p >= self.workspace_min - tol) and np.all(p <= self.workspace_max + tol))


def _cap_norm(v: np.ndarray, limit: float) -> tuple[np.ndarray, bool]:
    n = float(np.linalg.norm(v))
    return (v * (limit / n), True) if n > limit else (v, False)


class MotionLimiter:
    """Makes each tick's desired twist safe (see module doc). Remembers the last command (accel limit)."""

    def __init__(self, limits: MotionLimits, tick_s: float):
        if not (tick_s > 0 and np.isfinite(tick_s)):
            raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
        self.limits = limits
        self.tick_s = float(tick_s)
        self.v = np.zeros(3)
        self.w = np.zeros(3)

    def stop(self) -> None:
        self.v = np.zeros(3)
        self.w = np.zeros(3)

    def limit(self, v, w, position, horizon_s: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(linear, angular, what was limited: any of 'non_finite', 'speed', 'accel', 'workspace')."""
        L = self.limits
        v = np.asarray(v, np.float64).reshape(3)
        w = np.asarray(w, np.float64).reshape(3)
        position = np.asarray(position, np.float64).reshape(3)
        what = []
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w)) and np.all(np.isfinite(position))):
            self.stop()
            return np.zeros(3), np.zeros(3), ["non_finite"]
        v, a = _cap_norm(v, L.max_linear_speed)
        w, b = _cap_norm(w, L.max_angular_speed)
        if a or b:
            what.append("speed")
        up = self._allowed(L.workspace_max - position, horizon_s)     # fastest allowed motion toward +
        down = -self._allowed(position - L.workspace_min, horizon_s)  # and toward -
        # The wall first (so the acceleration limit ramps toward a safe twist), then the acceleration
        # limit, then the wall again: it always wins, and rarely has to act twice because the allowed
        # speed shrinks by about accel * tick per tick on the approach.
        clipped = np.clip(v, down, up)
        wall = bool(np.any(clipped != v))
        v = clipped
        dv, a = _cap_norm(v - self.v, L.max_linear_accel * self.tick_s)
        dw, b = _cap_norm(w - self.w, L.max_angular_accel * self.tick_s)
        v, w = self.v + dv, self.w + dw
        if a or b:
            what.append("accel")
        clipped = np.clip(v, down, up)
        if wall or np.any(clipped != v):
            what.append("workspace")
            v = clipped
        self.v, self.w = v, w
        return v.copy(), w.copy(), what

    def _allowed(self, distance: np.ndarray, horizon_s: float) -> np.ndarray:
        """Fastest speed toward a wall `distance` away (per axis; <= 0 when at or beyond it): the point
        `horizon_s` ahead stays inside, and after one more tick at that speed the arm can still brake at
        max_linear_accel before the wall (v T + v^2 / 2a <= d), so the approach slows down smoothly
        instead of stopping dead, and a jtc stop segment (braking at that rate) ends inside."""
        d = np.maximum(np.asarray(distance, np.float64), 0.0)
        a, T = self.limits.max_linear_accel, self.tick_s
        braking = a * (np.sqrt(T * T + 2.0 * d / a) - T)
        return np.minimum(d / max(float(horizon_s), 1e-6), braking)
