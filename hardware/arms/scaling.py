"""OSC_POSE delta scaling as robosuite applies it, read from the controller config robosuite ships.

The policy's eef_delta actions are robosuite OSC_POSE inputs (policy_stack/spaces.py): clipped to
[input_min, input_max], then mapped linearly onto [output_min, output_max] (metres and radians per control
step). The numbers come from robosuite's own JSON (controllers/config/robots/default_<robot>.json, the
BASIC composite controller's arm part), found without importing robosuite (its import loads MuJoCo and
every environment), so a robosuite upgrade that changes them changes the adapter too.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# robosuite's default control frequency (robosuite.environments.robot_env control_freq=20), also the
# project's sim rate. Only used where no chunk says otherwise: a chunk carries its own step dt.
DEFAULT_CONTROL_FREQ_HZ = 20.0


@dataclass(frozen=True)
class OscScaling:
    input_min: np.ndarray     # (6,)
    input_max: np.ndarray     # (6,)
    output_min: np.ndarray    # (6,) m, m, m, rad, rad, rad per control step
    output_max: np.ndarray    # (6,)
    source: str = ""          # the JSON file the numbers came from

    def scale(self, delta) -> np.ndarray:
        """6-d action (dx, dy, dz, droll, dpitch, dyaw) -> metres / radians per step, exactly like
        robosuite's Controller.scale_action (clip, then affine map input range -> output range)."""
        a = np.clip(np.asarray(delta, np.float64)[:6], self.input_min, self.input_max)
        gain = np.abs(self.output_max - self.output_min) / np.abs(self.input_max - self.input_min)
        return (a - (self.input_max + self.input_min) / 2.0) * gain + (self.output_max + self.output_min) / 2.0

    @property
    def max_step(self) -> tuple[float, float]:
        """Largest translation (m) and rotation (rad) per step along one axis."""
        return float(np.max(np.abs(self.output_max[:3]))), float(np.max(np.abs(self.output_max[3:])))


def robosuite_dir() -> Path:
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("robosuite is not installed: the OSC_POSE scales are read from its controller config")
    return Path(list(spec.submodule_search_locations)[0])


def controller_config_path(robot: str = "panda") -> Path:
    """robosuite's default controller for `robot`, else its BASIC composite default (as robosuite picks)."""
    base = robosuite_dir() / "controllers" / "config"
    path = base / "robots" / f"default_{robot.lower()}.json"
    return path if path.is_file() else base / "default" / "composite" / "basic.json"


def _vec6(value, name: str, path: Path) -> np.ndarray:
    arr = np.asarray(value, np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(6, float(arr[0]))
    if arr.size != 6 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: {name} must be 1 or 6 finite numbers, got {value!r}")
    return arr


def load_osc_scaling(robot: str = "panda", arm: str = "right", path: str | Path | None = None) -> OscScaling:
    """Scales of the BASIC composite controller's OSC_POSE arm part (ValueError if it is something else)."""
    path = Path(path) if path is not None else controller_config_path(robot)
    cfg = json.loads(path.read_text())
    if cfg.get("type") != "BASIC":
        raise ValueError(f"{path}: composite controller {cfg.get('type')!r}, expected BASIC")
    part = cfg.get("body_parts", {}).get("arms", {}).get(arm)
    if not part or part.get("type") != "OSC_POSE" or part.get("input_type", "delta") != "delta":
        raise ValueError(f"{path}: arm {arm!r} is not a delta OSC_POSE controller")
    if part.get("input_ref_frame", "base") != "base":
        raise ValueError(f"{path}: OSC input_ref_frame {part.get('input_ref_frame')!r}; the adapters assume base")
    s = OscScaling(*(_vec6(part[k], k, path) for k in ("input_min", "input_max", "output_min", "output_max")),
                   source=str(path))
    if np.any(s.input_max <= s.input_min) or np.any(s.output_max <= s.output_min):
        raise ValueError(f"{path}: empty input or output range")
    return s
