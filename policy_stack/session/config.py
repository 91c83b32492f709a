"""A session's settings: one dataclass, stored as SESSION/session.json at the first run.

A resumed session uses the stored settings; different ones are refused with the list of differences (a
session whose half was run with other seeds or another profile would not measure anything)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

# In order. eval_base: the base policy on the real side, uncalibrated (the baseline). eval_calibrated: the
# same policy with the calibration applied (tells the calibration's share of the gain from the fine-tuning's).
STEPS = ("preflight", "eval_base", "calibrate", "eval_calibrated", "demos", "finetune", "reeval")
# Settings that may change between sittings without invalidating finished steps.
MUTABLE = {"steps", "device", "domain_base", "finetune_threads"}


@dataclass
class SessionConfig:
    env: str = "lift"
    policy: str = "diffusion_lowdim_lift"        # the base checkpoint (folder or shipped name)
    arm: str = "fake-servo"                      # the arm interface of the real side (fake-servo | fake-pose | fake-jtc)
    real_profile: str = "real_lift"              # sim/real_profiles.py: the sim standing in for the real arm
    max_steps: int = 200                         # per episode, at rate_hz
    rate_hz: float = 20.0
    # Evaluation: the same seeds before and after, never used for demos or training.
    eval_episodes: int = 30
    eval_seed: int = 100000
    # Calibration: the same commands replayed on both sides (ros_nodes/session_probe.py calibrate).
    calib_amplitude: float = 0.2                 # translation probes, action units (under the adapter's speed limit)
    calib_rot_amplitude: float = 0.08            # rotation probes, action units
    calib_steps: int = 8                         # control steps per probe chunk (inside the 0.5 s chunk horizon)
    calib_repeats: int = 2
    # Real-side demonstrations (policy-stack record --real, scripted device) and training-side ones for the mix.
    # demo_mode "interventions": the calibrated base policy drives and the scripted operator takes over with
    # the expert where an episode has not succeeded after demo_takeover_step ticks (HIL demos: the robot data
    # looks like the policy's own episodes plus the corrections); "scripted": the expert drives throughout.
    demo_mode: str = "interventions"
    demo_takeover_step: int = 120
    demo_max_steps: int = 300
    demo_episodes: int = 20
    demo_seed: int = 200000
    sim_demo_episodes: int = 20
    sim_demo_seed: int = 1000
    # Fine-tuning: imitation from the base weights (policy-stack train --init) on the sim + real mixture.
    finetune_steps: int = 600
    finetune_batch: int = 128
    finetune_lr: float = 3e-5
    finetune_warmup: int = 50
    finetune_threads: int = 1                    # torch threads (the machine is shared)
    preflight_seconds: float = 3.0               # topic-rate window
    device: str = "cpu"
    domain_base: int = 0                         # ROS domains domain_base + step index (0 = drawn at creation)
    steps: list = field(default_factory=lambda: list(STEPS))

    def __post_init__(self):
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ValueError(f"session steps {unknown}: not steps; the steps are {list(STEPS)}")
        if self.arm not in ("fake-servo", "fake-pose", "fake-jtc"):
            raise ValueError(f"session arm {self.arm!r}: expected fake-servo, fake-pose or fake-jtc")
        if self.demo_mode not in ("interventions", "scripted"):
            raise ValueError(f"session demo_mode {self.demo_mode!r}: expected interventions or scripted")
        for name in ("eval_episodes", "max_steps", "demo_takeover_step", "demo_max_steps", "calib_steps", "calib_repeats", "finetune_steps", "finetune_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"session {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.domain_base <= 229:
            raise ValueError(f"session domain_base must be in 0..229 (it uses ROS domains base + 0..{len(STEPS)}), "
                             f"got {self.domain_base}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SessionConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"session config: unknown field(s) {unknown}; valid: {sorted(names)}")
        defaults = cls()
        for key, value in d.items():     # a number field given a string (--set k=oops) fails here, by name
            want = type(getattr(defaults, key))
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) if want in (int, float) \
                else isinstance(value, want)
            if not ok or (want is int and isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"session config: {key} must be {want.__name__}, got {value!r}")
        return cls(**d)

    def eval_seeds(self) -> list[int]:
        return list(range(self.eval_seed, self.eval_seed + self.eval_episodes))

    def differences(self, saved: dict) -> list[str]:
        mine = json.loads(json.dumps(self.to_dict()))
        return [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in mine.items()
                if k not in MUTABLE and k in saved and saved[k] != v]
