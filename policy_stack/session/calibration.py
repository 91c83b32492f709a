"""Per-axis action gain from the same commands replayed on the training side (sim) and the real side.

Each probe is one chunk of constant action replayed on both sides; its measured end-effector displacement
(x, y, z in m; rotation vector in rad) is one row of `sim` and of `real`. The real arm is modelled as moving
`gain` times what the training controller moves, per axis: real[:, i] = gain[i] * sim[:, i]. Least squares
per axis: gain[i] = sum(real[:, i] * sim[:, i]) / sum(sim[:, i]^2), with its fit quality. No ROS here: the
measurements come from ros_nodes/session_probe.py.
"""
from __future__ import annotations

import numpy as np

AXES = ("x", "y", "z", "roll", "pitch", "yaw")
# An axis whose sim displacements sum (squared) to less than this was not excited: its gain is not measured.
MIN_EXCITATION = {"translation": 1e-6, "rotation": 1e-5}     # m^2, rad^2 (e.g. 4 probes of 0.5 mm / 1.6 mrad)
GAIN_RANGE = (0.1, 10.0)      # outside: a broken measurement (an arm that did not move, a wrong axis), not a gain


def fit_axis_gain(sim, real) -> dict:
    """sim, real: (n_probes, 6) displacements. Returns gain (6,), per-axis r2 and rms residual, and which
    axes were measured (unmeasured axes keep gain 1.0). ValueError on shapes or a gain outside GAIN_RANGE."""
    sim, real = np.asarray(sim, np.float64), np.asarray(real, np.float64)
    if sim.ndim != 2 or sim.shape[1] != 6 or sim.shape != real.shape or not len(sim):
        raise ValueError(f"calibration: sim {sim.shape} and real {real.shape} must both be (n >= 1, 6)")
    if not (np.all(np.isfinite(sim)) and np.all(np.isfinite(real))):
        raise ValueError("calibration: non-finite displacement")
    gain, r2, rms, measured = np.ones(6), np.full(6, np.nan), np.full(6, np.nan), [False] * 6
    for i in range(6):
        s, r = sim[:, i], real[:, i]
        ss = float(s @ s)
        if ss < MIN_EXCITATION["translation" if i < 3 else "rotation"]:
            continue
        g = float(s @ r) / ss
        if not GAIN_RANGE[0] <= g <= GAIN_RANGE[1]:
            raise ValueError(f"calibration: axis {AXES[i]} gain {g:.3g} is outside {GAIN_RANGE}: the arm did not "
                             "follow the probes (check the arm interface before trusting anything)")
        res = r - g * s
        tot = float(r @ r)
        gain[i], measured[i] = g, True
        r2[i] = 1.0 - float(res @ res) / tot if tot > 0 else np.nan
        rms[i] = float(np.sqrt(np.mean(res ** 2)))
    as_list = lambda a: [None if not np.isfinite(x) else round(float(x), 6) for x in a]
    return {"gain": [round(float(g), 6) for g in gain], "measured": measured, "r2": as_list(r2),
            "rms_residual": as_list(rms), "probes": int(len(sim)), "axes": list(AXES)}


def gain_arg(gain) -> str:
    """The gain as the `--calibration-gain` / graph argument string."""
    return ",".join(f"{float(g):.6g}" for g in gain)
