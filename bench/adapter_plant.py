"""A perfect arm behind each adapter interface, and hostile chunks: shared by bench_adapters and the tests.

The plant does exactly what it is told (twist integrated over the tick, pose target reached, joint
target reached at its time): the worst case for the adapter's limits, since no controller smooths
anything away.
"""
from __future__ import annotations

import numpy as np

from hardware.arms.backends import Pose
from hardware.arms.kinematics import PANDA_NEUTRAL, Kinematics
from hardware.arms.rotations import matrix_to_quat, rotation_error, rotvec_to_matrix


class Plant:
    def __init__(self, core, q0=PANDA_NEUTRAL):
        self.core = core
        self.tick_s = core.tick_s
        self.kin = Kinematics()
        self.q = np.array(q0, np.float64)
        p, R = self.kin.fk(self.q)
        self.pose = Pose(p, R)

    def feed(self, now: float) -> None:
        """The driver's measurements at `now`."""
        self.core.on_joint_state(self.q, now)
        self.core.on_ee_pose(self.pose.p, matrix_to_quat(self.pose.R), now)

    def apply(self, cmd):
        """Execute one tick's command; the commanded end-effector position (None: nothing commanded)."""
        if cmd.twist is not None:
            v, w = cmd.twist
            self.pose = Pose(self.pose.p + v * self.tick_s, rotvec_to_matrix(w * self.tick_s) @ self.pose.R)
            return self.pose.p
        if cmd.pose is not None:
            self.pose = cmd.pose.copy()
            return self.pose.p
        if cmd.trajectory is not None:
            # toward the first point, arriving at its time_from_start (one tick for the streamed targets,
            # two for a hold or stop trajectory), as the controller's interpolation would
            first = cmd.trajectory[0]
            share = min(1.0, self.tick_s / max(first.time_from_start, 1e-9))
            self.q = self.q + share * (np.array(first.positions) - self.q)
            p, R = self.kin.fk(self.q)
            self.pose = Pose(p, R)
            return p
        return None


def hostile_chunk(rng, n: int = 8) -> np.ndarray:
    """Mostly plausible chunks, with NaN, Inf, huge and out-of-range values mixed in, and full-speed pushes."""
    chunk = rng.uniform(-1.0, 1.0, (n, 7))
    r = rng.random()
    if r < 0.1:
        chunk[rng.integers(n), rng.integers(7)] = np.nan
    elif r < 0.2:
        chunk[rng.integers(n), rng.integers(7)] = np.inf * rng.choice([-1, 1])
    elif r < 0.3:
        chunk[rng.integers(n), rng.integers(6)] = rng.choice([-1, 1]) * 1e30
    elif r < 0.5:
        chunk *= rng.uniform(2.0, 50.0)            # out of range: clamped to [-1, 1]
    elif r < 0.7:
        chunk[:, :3] = rng.choice([-1.0, 1.0], 3)  # full speed into a wall
    return chunk


def run_hostile(core, chunks: int = 1000, ticks_per_chunk: int = 5, seed: int = 0) -> dict:
    """Feed `chunks` hostile chunks (stamped up to 100 ms in the past) and count what the plant did wrong:
    positions outside the workspace box, speeds above the limits, accelerations above the limit on ticks
    the workspace wall did not cut (the wall wins over the acceleration limit by design). The jtc plant
    moves the end effector by FK of the IK's joint targets, so its realized acceleration also carries the
    IK's residual (accel_over_10pct counts the ticks more than 10 % over)."""
    rng = np.random.default_rng(seed)
    plant = Plant(core)
    L = core.config.limits
    tick = core.tick_s
    t = 1000.0
    prev = prev_R = prev_v = None
    s = {"chunks": chunks, "ticks": 0, "executing": 0, "workspace_violations": 0, "speed_violations": 0,
         "accel_violations": 0, "stop_point_violations": 0, "accel_over_10pct": 0, "max_accel_m_s2": 0.0, "max_speed_m_s": 0.0, "max_angular_speed_rad_s": 0.0}
    for _ in range(chunks):
        core.on_chunk(t - rng.uniform(0.0, 0.1), 0.05, hostile_chunk(rng), t)
        for _ in range(ticks_per_chunk):
            plant.feed(t)
            cmd = core.tick(t)
            p = plant.apply(cmd)
            if cmd.trajectory is not None and not L.inside(plant.kin.fk(cmd.trajectory[-1].positions)[0], tol=1e-4):
                s["stop_point_violations"] += 1     # where the arm would stop if the stream ended here
            s["ticks"] += 1
            s["executing"] += cmd.hold is None
            if p is not None:
                if not L.inside(p, tol=1e-6):
                    s["workspace_violations"] += 1
                if prev is not None:
                    speed = float(np.linalg.norm(p - prev) / tick)
                    ang = float(np.linalg.norm(rotation_error(plant.pose.R, prev_R)) / tick)
                    s["max_speed_m_s"] = max(s["max_speed_m_s"], speed)
                    s["max_angular_speed_rad_s"] = max(s["max_angular_speed_rad_s"], ang)
                    if speed > L.max_linear_speed * (1 + 1e-6) or ang > L.max_angular_speed * (1 + 1e-3):
                        s["speed_violations"] += 1
                    v = (p - prev) / tick
                    walled = any(e.kind == "limited_workspace" for e in cmd.events)
                    if cmd.hold is None and prev_v is not None and not walled:
                        accel = float(np.linalg.norm(v - prev_v) / tick)
                        s["max_accel_m_s2"] = max(s["max_accel_m_s2"], accel)
                        if accel > L.max_linear_accel * (1 + 1e-3) + 1e-9:
                            s["accel_violations"] += 1
                        if accel > L.max_linear_accel * 1.1:
                            s["accel_over_10pct"] += 1
                    prev_v = v if cmd.hold is None else np.zeros(3)
                prev, prev_R = p.copy(), plant.pose.R.copy()
            t += tick
    s["events"] = core.events.snapshot()
    return s
