"""Named "real side" profiles: the sim standing in for a real arm whose dynamics and looks differ from training.

A sim-to-real session (policy_stack/session/) needs a "real" side that is NOT the training sim, so that
the base policy loses success there and calibration, real-side demos and fine-tuning have something to
recover. Each profile here holds the differences, as a real deployment would show them:

  randomization      per-episode visual and dynamics draw (sim/randomization.py RandomizationConfig
                     fields): camera pose, lighting, colours, friction, masses, damping. Drawn from the
                     episode seed, so the same seed shows the same scene on every run.
  object_mass_scale  a SYSTEMATIC bias on top of the draw: the real cube is heavier ...
  object_friction_scale  ... and slipperier (sliding friction of the object's geoms) than the sim one.
  actuation_gain     per axis (x, y, z, roll, pitch, yaw): the real arm controller moves `gain` times the
                     displacement the training controller (robosuite's OSC_POSE) makes for the same
                     command. Applied by the fake controller (ros_nodes/fake_arm.py) behind the arm adapter,
                     so the policy and the adapter see it only through the measured poses, as on a robot.

Why an actuation gain is the realistic gap to model: the policy's actions are OSC_POSE deltas, and what
+1 means in metres is what robosuite's OSC makes of it within one step. A real controller fed the same
command (MoveIt Servo with its smoothing and acceleration limits, a Cartesian impedance controller with
another stiffness, a UR arm with its speed slider below 100 %) moves a different amount, different per
axis (gravity acts on z). The direction that hurts a policy is an arm that moves LESS than in training:
measured on `real_lift_fast` (an arm that moves more), the base policy still succeeds, just faster; on
`real_lift` (0.4-0.6 of the training displacement) it runs out of time. Either way the amount has to be
measured: the calibration step replays the same commands on both sides and fits exactly this per-axis
gain; the arm adapter then divides it out (`calibration_gain`, after its speed limits, so those hold for the
motion the arm makes).

The core (policy_stack/) never imports this module; the sim node and the CLI do.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sim.randomization import RandomizedEnv

AXES = ("x", "y", "z", "roll", "pitch", "yaw")


@dataclass(frozen=True)
class RealProfile:
    name: str
    description: str = ""
    randomization: dict = field(default_factory=dict)       # RandomizationConfig fields
    object_mass_scale: float = 1.0
    object_friction_scale: float = 1.0
    actuation_gain: tuple = (1.0,) * 6

    def __post_init__(self):
        from sim.randomization import RandomizationConfig
        RandomizationConfig.from_dict(dict(self.randomization))      # validates the fields
        gain = np.asarray(self.actuation_gain, float)
        if gain.shape != (6,) or not np.all(np.isfinite(gain)) or np.any(gain <= 0):
            raise ValueError(f"real profile {self.name!r}: actuation_gain must be 6 positive numbers, "
                             f"got {self.actuation_gain!r}")
        for k in ("object_mass_scale", "object_friction_scale"):
            v = getattr(self, k)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"real profile {self.name!r}: {k} must be > 0, got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# The shipped profiles. `real_lift` is what the documented session ran on (picked by measurement:
# docs/sim_to_real.md); `real_lift_mild` is the same scene without the actuation gap (visuals and object
# dynamics only) and `real_lift_fast` one with an arm that over-tracks, for telling the gaps apart.
_VISUALS_AND_DYNAMICS = {"camera_pos_m": 0.03, "camera_rot_rad": 0.08, "camera_fovy_deg": 5.0, "light_scale": 0.5,
                         "light_pos_m": 0.5, "color_tint": 0.3, "friction_scale": 0.2, "mass_scale": 0.2,
                         "damping_scale": 0.4}
PROFILES: dict[str, RealProfile] = {p.name: p for p in (
    RealProfile("real_lift", "strong visual/dynamics randomization, a 1.5x heavier and 0.6x slipperier cube, "
                "and a sluggish arm controller: it moves 0.5 / 0.6 / 0.4 (x / y / z) and 0.8 (rotations) of the "
                "training OSC's displacement per command",
                dict(_VISUALS_AND_DYNAMICS), 1.5, 0.6, (0.5, 0.6, 0.4, 0.8, 0.8, 0.8)),
    RealProfile("real_lift_fast", "the real_lift scene with an arm that tracks MORE than the training OSC "
                "(2.5 / 2.0 / 2.5 on x / y / z): the base policy still succeeds on it (docs/sim_to_real.md)",
                dict(_VISUALS_AND_DYNAMICS), 1.5, 0.6, (2.5, 2.0, 2.5, 1.0, 1.0, 1.0)),
    RealProfile("real_lift_mild", "the real_lift scene without its actuation gain",
                dict(_VISUALS_AND_DYNAMICS), 1.5, 0.6, (1.0,) * 6),
)}


def load_profile(spec: str | dict | RealProfile) -> RealProfile:
    """A profile name, a JSON object (string or dict) of RealProfile fields, or a JSON file."""
    if isinstance(spec, RealProfile):
        return spec
    if isinstance(spec, dict):
        return _from_dict(spec)
    text = str(spec).strip()
    if text in PROFILES:
        return PROFILES[text]
    if text.startswith("{"):
        return _from_dict(json.loads(text))
    if text and Path(text).is_file():
        return _from_dict(json.loads(Path(text).read_text()))
    raise ValueError(f"real profile {text!r}: not one of {list(PROFILES)}, a JSON object or a JSON file")


def _from_dict(d: dict) -> RealProfile:
    known = set(RealProfile.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"real profile: unknown field(s) {sorted(unknown)}; valid: {sorted(known)}")
    d = dict(d)
    d.setdefault("name", "custom")
    if "actuation_gain" in d:
        d["actuation_gain"] = tuple(float(x) for x in d["actuation_gain"])
    return RealProfile(**d)


class RealSideEnv(RandomizedEnv):
    """A SimEnv wearing a RealProfile: the per-episode randomized scene (RandomizedEnv, the same seed-derived
    stream: resumable, placement unaffected) plus the fixed object biases.
    (The actuation gain is the fake controller's, not the env's: see module doc.)"""

    def __init__(self, env, profile: RealProfile):
        super().__init__(env, dict(profile.randomization))
        self.profile = profile
        model = self._model = env.robosuite_env.sim.model._model
        fb = self.randomizer.free_bodies
        # The object's geoms: those attached to the free (object) bodies.
        self._object_geoms = np.flatnonzero(np.isin(np.asarray(model.geom_bodyid), fb)) if len(fb) else np.array([], int)

    def _draw_scene(self, rng) -> None:
        super()._draw_scene(rng)
        m, p = self._model, self.profile
        fb = self.randomizer.free_bodies
        if len(fb):
            m.body_mass[fb] *= p.object_mass_scale
            m.body_inertia[fb] *= p.object_mass_scale
        if len(self._object_geoms):
            m.geom_friction[self._object_geoms, 0] *= p.object_friction_scale

    def __repr__(self):
        return f"RealSideEnv({self.env!r}, profile {self.profile.name!r})"
