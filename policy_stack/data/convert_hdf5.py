"""Import robosuite/robomimic HDF5 demonstrations into a LeRobot v3.0 dataset.

robomimic layout: `data/demo_<i>/{obs/<key>, actions, states, rewards, dones}`, `data.attrs["env_args"]`
(JSON: env_name, env_kwargs with control_freq, camera names...). Key mapping to ours
(docs/CONVENTIONS.md):
- `robot0_joint_pos`, quaternions (xyzw): unchanged (every robosuite task's robot base is axis-aligned);
- positions (`robot0_eef_pos`, `<obj>_pos`): robosuite world frame -> robot base frame (minus the
  `robot0_base` body's position, read from the demo's `model_file` XML, else robosuite 1.5.2's value
  for the env: ROBOSUITE_BASE_POSITIONS), as sim/envs.py observes them;
- `robot0_gripper_qpos`: the second finger's sign flipped (robosuite: negative; ours: franka_ros2's,
  both positive);
- `<obj>_pos` / `<obj>_quat` keys are taken as they are; otherwise the flat `object` vector is split into the
  object poses our env names use (lift: cube; pick_place_can: can; stack: cubeA, cubeB;
  nut_assembly_square: square_nut) by its known robosuite layout; other envs keep `object` as is;
- `<cam>_image` -> `<cam>_rgb`, flipped upside down by default: robosuite renders with OpenGL's
  bottom-up rows and robomimic stores them so, while ours are upright like a real camera;
- `<cam>_depth` -> `<cam>_depth`, flipped alike; float depth is metres, uint16 depth is millimetres;
- `actions` -> action, `rewards` -> reward, `dones` -> done (last step if absent),
  success = reward >= 1 (robosuite's sparse success reward).
Other obs keys (velocities, derived `gripper_to_*` vectors) are dropped: the stack keeps only what a
real robot can publish.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .writer import DatasetWriter

if TYPE_CHECKING:   # h5py itself is imported only when a file is converted
    import h5py

LOWDIM_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos")

# robosuite's flat `object` observation: (our key, start, end) slices of the leading pose entries.
OBJECT_LAYOUTS = {
    "Lift": [("cube_pos", 0, 3), ("cube_quat", 3, 7)],
    "PickPlaceCan": [("can_pos", 0, 3), ("can_quat", 3, 7)],
    "Stack": [("cubeA_pos", 0, 3), ("cubeA_quat", 3, 7), ("cubeB_pos", 7, 10), ("cubeB_quat", 10, 14)],
    "NutAssemblySquare": [("square_nut_pos", 0, 3), ("square_nut_quat", 3, 7)],
}
# robosuite 1.5.2's robot0_base position in world per env (what sim/envs.py reads from the sim;
# test/sim/test_sim_envs.py checks they agree). Used when a demo has no model_file XML.
ROBOSUITE_BASE_POSITIONS = {"Lift": (-0.56, 0.0, 0.912), "Stack": (-0.56, 0.0, 0.912),
                            "NutAssemblySquare": (-0.56, 0.0, 0.912), "PickPlaceCan": (-0.5, -0.1, 0.912)}
# robosuite's own per-object key names -> ours.
OBJECT_KEY_RENAMES = {"Can_pos": "can_pos", "Can_quat": "can_quat",
                      "SquareNut_pos": "square_nut_pos", "SquareNut_quat": "square_nut_quat"}


def _demo_names(data: h5py.Group, path: Path) -> list[str]:
    names = [n for n in data.keys() if re.fullmatch(r"demo_\d+", n)]
    if not names:
        raise ValueError(f"{path}: group 'data' holds no 'demo_<i>' groups")
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def read_env_args(f: h5py.File, path: Path) -> dict:
    raw = f["data"].attrs.get("env_args")
    if raw is None:
        return {}
    try:
        return json.loads(raw if isinstance(raw, str) else raw.decode())
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: data.attrs['env_args'] is not valid JSON ({exc})") from exc


def map_demo(demo: h5py.Group, where: str, env_name: str, flip_images: bool) -> dict:
    """One robomimic demo group -> {our env key: (T, ...) array}."""
    for name in ("obs", "actions"):
        if name not in demo:
            raise ValueError(f"{where}: missing '{name}'")
    obs = demo["obs"]
    out = {}
    for key in obs.keys():
        values = obs[key][()]
        if key in LOWDIM_KEYS or key.endswith(("_pos", "_quat")) and not key.startswith(("robot", "gripper")) \
                and "_to_" not in key:
            out[OBJECT_KEY_RENAMES.get(key, key)] = values.astype(np.float32)
        elif key.endswith("_image"):
            out[key[: -len("_image")] + "_rgb"] = values[:, ::-1] if flip_images else values
        elif key.endswith("_depth"):
            depth = values[..., 0] if values.ndim == 4 else values
            out[key] = depth[:, ::-1] if flip_images else depth
    if "object" in obs and not any(k.endswith("_pos") and not k.startswith("robot") for k in out):
        layout = OBJECT_LAYOUTS.get(env_name)
        flat = obs["object"][()].astype(np.float32)
        if layout and flat.shape[1] >= layout[-1][2]:
            out.update({name: flat[:, a:b] for name, a, b in layout})
        else:
            out["object"] = flat
    missing = [k for k in LOWDIM_KEYS if k not in out]
    if missing:
        raise ValueError(f"{where}/obs: missing robot keys {missing}")
    base = _base_position(demo, where, env_name)
    for key in [k for k in out if k.endswith("_pos") and k != "robot0_joint_pos"]:
        out[key] = (out[key].astype(np.float64) - base).astype(np.float32)
    out["robot0_gripper_qpos"] = out["robot0_gripper_qpos"] * np.array([1.0, -1.0], np.float32)
    t = len(demo["actions"])
    out["action"] = demo["actions"][()].astype(np.float32)
    rewards = demo["rewards"][()].astype(np.float32) if "rewards" in demo else np.zeros(t, np.float32)
    out["reward"] = rewards
    out["success"] = rewards >= 1.0
    if "dones" in demo:
        out["done"] = demo["dones"][()].astype(bool)
    else:
        out["done"] = np.arange(t) == t - 1
    return out


def _base_position(demo: h5py.Group, where: str, env_name: str) -> np.ndarray:
    """The robot base's position in robosuite's world: from the demo's model XML, else the env's known value."""
    xml = demo.attrs.get("model_file")
    if xml is not None:
        import xml.etree.ElementTree as ET
        xml = xml if isinstance(xml, str) else xml.decode()
        body = ET.fromstring(xml).find(".//body[@name='robot0_base']")
        if body is not None:
            quat = [float(v) for v in body.get("quat", "1 0 0 0").split()]
            if not np.allclose(quat, [1, 0, 0, 0]):
                raise ValueError(f"{where}: robot base rotated in world ({quat}); only axis-aligned bases are supported")
            return np.array([float(v) for v in body.get("pos", "0 0 0").split()])
    if env_name in ROBOSUITE_BASE_POSITIONS:
        return np.array(ROBOSUITE_BASE_POSITIONS[env_name])
    raise ValueError(f"{where}: no model_file with a robot0_base body and unknown env {env_name!r}: cannot "
                     f"express poses in the robot base frame (known envs: {sorted(ROBOSUITE_BASE_POSITIONS)})")


def convert_hdf5(src, dst, task: str | None = None, flip_images: bool = True, fps: int | None = None,
                 max_demos: int | None = None, progress: bool = True) -> DatasetWriter:
    """Convert a robomimic HDF5 file `src` into a new LeRobot v3.0 dataset at `dst`."""
    import h5py
    from tqdm import tqdm

    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such HDF5 file")
    if (Path(dst) / "meta/info.json").exists():
        raise ValueError(f"{dst}: a dataset already exists there; choose a new --out folder")
    try:
        f = h5py.File(src, "r")
    except OSError as exc:
        raise ValueError(f"{src}: not a readable HDF5 file ({exc})") from exc
    with f:
        if "data" not in f:
            raise ValueError(f"{src}: missing group 'data' (expected robomimic layout data/demo_<i>)")
        env_args = read_env_args(f, src)
        env_name = env_args.get("env_name", "")
        fps = fps or int(env_args.get("env_kwargs", {}).get("control_freq", 20))
        task = task or env_name or src.stem
        names = _demo_names(f["data"], src)[:max_demos]
        writer = None
        for name in tqdm(names, desc=f"convert {src.name}", disable=not progress):
            frames = map_demo(f["data"][name], f"{src}:data/{name}", env_name, flip_images)
            if writer is None:
                features = {k: v.shape[1:] for k, v in frames.items()}
                writer = DatasetWriter(dst, fps=fps, features=features, robot_type="panda")
            writer.add_episode(frames, task)
    if writer is not None:
        writer.close()          # release the writer lock; counts stay readable on the returned object
    return writer
