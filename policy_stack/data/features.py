"""Feature naming and typing: env observation keys <-> LeRobot v3.0 feature keys.

The rest of the stack speaks env keys (`robot0_eef_pos`, `agentview_rgb`, `agentview_depth`, `action`);
the dataset on disk speaks LeRobot feature keys (docs/CONVENTIONS.md, "Dataset features"). This module
is the one place that maps between them and decides how each kind of feature is stored:

| kind    | env key          | dataset key                  | stored as                                         |
|---------|------------------|------------------------------|---------------------------------------------------|
| lowdim  | `robot0_eef_pos` | `observation.state.<key>`    | float32 fixed_size_list column                     |
| action  | `action`         | `action`                     | float32 fixed_size_list column                     |
| rgb     | `<cam>_rgb`      | `observation.images.<cam>`   | MP4 video (no parquet column)                      |
| depth   | `<cam>_depth`    | `observation.depth.<cam>`    | uint16 millimetres, (H, W) nested list column      |
| scalars | `reward`, `success`, `done` | `next.reward`, `next.success`, `next.done` | plain float32/bool column |
| flag    | `intervention`   | `intervention`               | plain bool column: a human chose this frame's action |
| state   | (derived)        | `observation.state`          | float32 column: the low-dim keys concatenated      |

LeRobot's own datasets usually hold one plain `observation.state` vector (and sometimes
`observation.environment_state`). Such `observation.<name>` keys are env keys in their own right: they
map to themselves both ways, never to `observation.state.observation.state`.

Our writer also stores the concatenation of every low-dim key as a plain `observation.state`, because
LeRobot's policies (`lerobot-train --policy.type=diffusion|act`) read exactly that key. Its `names` spell
out the split, `<env key>.<dimension name>` in feature order, which is also how a reader recognises it
as derived (`Feature.derived_from`) rather than as one more observation. The object keys (everything not
`robot0_...`) are also written concatenated as `observation.environment_state`, the same way: lerobot's
Diffusion Policy and ACT need it (or an image) to train on a state-only dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

# LeRobot's bookkeeping columns, always present, all shape [1] (lerobot utils.py DEFAULT_FEATURES).
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]

# Per-dimension labels for the conventional low-dim keys (info.json `names`); others get k0..kn.
_KNOWN_NAMES = {
    "robot0_eef_pos": ["x", "y", "z"],
    "robot0_eef_quat": ["qx", "qy", "qz", "qw"],
    "robot0_gripper_qpos": ["finger_left", "finger_right"],
    "robot0_joint_pos": [f"joint{i}" for i in range(7)],
}

# `intervention` (human interventions, HIL-SERL): the operator held the deadman, so this frame's action is
# the teleop one. A plain top-level column, like `next.done`: a label of the frame for training (demo
# buffer, RL), never an `observation.*` key, which policies would read as an input (and our derived
# `observation.state` would concatenate). Not `next.`: it says who chose this frame's action, not what the
# step led to.
_SCALAR_ENV_TO_DATASET = {"reward": "next.reward", "success": "next.success", "done": "next.done",
                          "intervention": "intervention"}
_SCALAR_DTYPES = {"reward": "float32", "success": "bool", "done": "bool", "intervention": "bool"}

MM_PER_METRE = 1000.0
STATE_KEY = "observation.state"          # LeRobot's one robot-state vector (lerobot OBS_STATE)
ENV_STATE_KEY = "observation.environment_state"   # LeRobot's object-state vector (lerobot OBS_ENV_STATE)
_SPLIT_STATE_PREFIX = STATE_KEY + "."


def kind_of(env_key: str) -> str:
    if env_key == "action":
        return "action"
    if env_key in _SCALAR_ENV_TO_DATASET:
        return "scalar"
    if env_key.endswith("_rgb"):
        return "rgb"
    if env_key.endswith("_depth"):
        return "depth"
    return "lowdim"


def dataset_key(env_key: str) -> str:
    """`agentview_rgb` -> `observation.images.agentview`, `robot0_eef_pos` -> `observation.state.robot0_eef_pos`."""
    kind = kind_of(env_key)
    if kind == "action":
        return "action"
    if kind == "scalar":
        return _SCALAR_ENV_TO_DATASET[env_key]
    if kind == "rgb":
        return "observation.images." + env_key[: -len("_rgb")]
    if kind == "depth":
        return "observation.depth." + env_key[: -len("_depth")]
    if env_key.startswith("observation."):
        return env_key          # LeRobot's plain `observation.state`, `observation.environment_state`, ...
    return _SPLIT_STATE_PREFIX + env_key


def env_key(dataset_key_: str) -> str:
    """Inverse of dataset_key; other LeRobot keys (e.g. a plain `observation.state`) are returned unchanged."""
    for env, ds in _SCALAR_ENV_TO_DATASET.items():
        if dataset_key_ == ds:
            return env
    for prefix, suffix in (("observation.images.", "_rgb"), ("observation.depth.", "_depth")):
        if dataset_key_.startswith(prefix):
            return dataset_key_[len(prefix):] + suffix
    if dataset_key_.startswith(_SPLIT_STATE_PREFIX):
        return dataset_key_[len(_SPLIT_STATE_PREFIX):]
    return dataset_key_


@dataclass
class Feature:
    """One user feature of a dataset, in both namings, with its on-disk dtype and per-frame shape."""
    env_key: str
    kind: str                    # lowdim | action | rgb | depth | scalar
    shape: tuple                 # per-frame shape as the env produces it: (n,), (H, W, 3), (H, W), ()
    dtype: str                   # on-disk dtype: float32 | bool | uint16 | video
    names: list | None = field(default=None)
    # Set on the concatenated `observation.state` our writer derives: the env keys it concatenates, in
    # order. Such a feature is written from those keys, never given by the caller or fed to a policy.
    derived_from: tuple | None = field(default=None)

    @property
    def key(self) -> str:
        return dataset_key(self.env_key)

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    @property
    def info_shape(self) -> list[int]:
        """Shape as info.json declares it: scalars are [1] (a plain column, not a length-1 list)."""
        return list(self.shape) if self.shape else [1]

    def info_entry(self) -> dict:
        entry = {"dtype": self.dtype, "shape": self.info_shape, "names": self.names}
        return entry

    def arrow_type(self) -> pa.DataType:
        """Column type LeRobot 0.4.4 casts cleanly: scalar for [1], fixed_size_list for [n], nested for 2-D."""
        if self.kind == "scalar":
            return pa.bool_() if self.dtype == "bool" else pa.float32()
        if self.kind == "depth":
            h, w = self.shape
            return pa.list_(pa.list_(pa.uint16(), w), h)
        return pa.list_(pa.float32(), int(self.shape[0]))


def make_feature(env_key_: str, spec) -> Feature:
    """Build a Feature from a shape tuple, a dict {"shape": ..., "names": ...} or a spaces.FeatureSpec."""
    names = None
    if isinstance(spec, dict):
        names = spec.get("names")
        shape = spec["shape"]
    elif hasattr(spec, "shape") and not isinstance(spec, (tuple, list, np.ndarray)):
        shape = spec.shape           # policy_stack.spaces.FeatureSpec
    else:
        shape = spec
    shape = tuple(int(s) for s in shape)
    if any(s <= 0 for s in shape):
        raise ValueError(f"feature {env_key_!r}: shape {shape} has a non-positive dimension")
    if "/" in env_key_:
        raise ValueError(f"feature {env_key_!r}: keys may not contain '/' (LeRobot uses it as a separator)")
    kind = kind_of(env_key_)
    if kind == "rgb":
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"feature {env_key_!r}: RGB shape must be (H, W, 3), got {shape}")
        return Feature(env_key_, kind, shape, "video", ["height", "width", "channels"])
    if kind == "depth":
        if len(shape) == 3 and shape[2] == 1:
            shape = shape[:2]
        if len(shape) != 2:
            raise ValueError(f"feature {env_key_!r}: depth shape must be (H, W), got {shape}")
        return Feature(env_key_, kind, shape, "uint16", ["height", "width"])
    if kind == "scalar":
        if shape not in ((), (1,)):
            raise ValueError(f"feature {env_key_!r}: must be a scalar per frame, got shape {shape}")
        return Feature(env_key_, kind, (), _SCALAR_DTYPES[env_key_], None)
    if len(shape) != 1:
        raise ValueError(f"feature {env_key_!r}: low-dim features must be 1-D vectors, got shape {shape}")
    if names is None:
        if kind == "action" and shape[0] == len(ACTION_NAMES):
            names = list(ACTION_NAMES)
        elif env_key_ in _KNOWN_NAMES and len(_KNOWN_NAMES[env_key_]) == shape[0]:
            names = list(_KNOWN_NAMES[env_key_])
        else:
            names = [f"{env_key_}_{i}" for i in range(shape[0])]
    return Feature(env_key_, kind, shape, "float32", list(names))


def feature_from_info(key: str, entry: dict) -> Feature | None:
    """Rebuild a Feature from an info.json entry; None for LeRobot's bookkeeping columns."""
    if key in DEFAULT_FEATURES:
        return None
    ek = env_key(key)
    shape = tuple(entry["shape"])
    if entry["dtype"] in ("video", "image"):
        names = entry.get("names") or []
        if len(shape) == 3 and len(names) == 3 and names[2] not in ("channel", "channels"):
            shape = (shape[1], shape[2], shape[0])   # stored as (C, H, W)
        kind = "rgb"
        if not ek.endswith("_rgb"):
            ek = ek + "_rgb" if not key.startswith("observation.images.") else ek
        return Feature(ek, kind, shape, entry["dtype"], entry.get("names"))
    if key.startswith("observation.depth."):
        return Feature(ek, "depth", shape[:2], entry["dtype"], entry.get("names"))
    if ek in _SCALAR_ENV_TO_DATASET:
        return Feature(ek, "scalar", (), entry["dtype"], entry.get("names"))
    kind = "action" if key == "action" else "lowdim"
    return Feature(ek, kind, shape, entry["dtype"], entry.get("names"))


def _concatenated_names(parts: list[Feature]) -> list[str]:
    return [f"{f.env_key}.{name}" for f in parts
            for name in (f.names if f.names and len(f.names) == f.shape[0] else range(f.shape[0]))]


def concatenated_state(features: list[Feature]) -> Feature | None:
    """The `observation.state` to write beside the split low-dim keys, or None (no low-dim key, or the
    caller declared an `observation.state` of its own)."""
    parts = [f for f in features if f.kind == "lowdim"]
    if not parts or any(f.key == STATE_KEY for f in features):
        return None
    return Feature(STATE_KEY, "lowdim", (sum(int(f.shape[0]) for f in parts),), "float32",
                   _concatenated_names(parts), tuple(f.env_key for f in parts))


def _environment_parts(parts: list[Feature]) -> list[Feature]:
    """The object-state keys among the split low-dim keys: everything that is not the robot's own
    (`robot0_...`), e.g. `cube_pos`, `cube_quat`."""
    return [f for f in parts if not f.env_key.startswith("robot")]


def concatenated_environment_state(features: list[Feature]) -> Feature | None:
    """The `observation.environment_state` to write beside the split keys: the object-state keys
    concatenated. lerobot's Diffusion Policy and ACT refuse a dataset with neither an image nor this
    feature, so a state-only dataset needs it to train there. None when there is no object key or the
    caller declared one."""
    parts = _environment_parts([f for f in features if f.kind == "lowdim" and f.derived_from is None
                                and f.key.startswith(_SPLIT_STATE_PREFIX)])
    if not parts or any(f.key == ENV_STATE_KEY for f in features):
        return None
    return Feature(ENV_STATE_KEY, "lowdim", (sum(int(f.shape[0]) for f in parts),), "float32",
                   _concatenated_names(parts), tuple(f.env_key for f in parts))


def link_concatenated_state(features: list[Feature]) -> list[Feature]:
    """On read: mark `observation.state` (and `observation.environment_state`) as derived when its names
    are exactly the concatenation of the split low-dim keys (of the object keys among them): what our
    writer writes. A LeRobot dataset's own vectors stay plain low-dim features."""
    parts = [f for f in features if f.kind == "lowdim" and f.key.startswith(_SPLIT_STATE_PREFIX)]
    for key, sources in ((STATE_KEY, parts), (ENV_STATE_KEY, _environment_parts(parts))):
        vec = next((f for f in features if f.key == key and f.kind == "lowdim"), None)
        if vec is not None and sources and list(vec.names or []) == _concatenated_names(sources) \
                and tuple(vec.shape) == (sum(int(f.shape[0]) for f in sources),):
            vec.derived_from = tuple(f.env_key for f in sources)
    return features


def depth_to_millimetres(env_key_: str, depth: np.ndarray) -> np.ndarray:
    """uint16 passes through bit-exactly; float input is metres, rounded to whole millimetres.

    Invalid depth (NaN, inf, <= 0) becomes 0, the RealSense/ROS convention for "no reading"; values past
    65.535 m saturate (far beyond any tabletop camera).
    """
    if depth.dtype == np.uint16:
        return depth
    if np.issubdtype(depth.dtype, np.integer):
        if depth.min(initial=0) < 0 or depth.max(initial=0) > 65535:
            raise ValueError(f"{env_key_}: integer depth must be millimetres in [0, 65535]")
        return depth.astype(np.uint16)
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"{env_key_}: depth must be uint16 millimetres or float metres, got {depth.dtype}")
    mm = np.nan_to_num(depth.astype(np.float64) * MM_PER_METRE, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(mm), 0, 65535).astype(np.uint16)


def millimetres_to_metres(depth_mm: np.ndarray) -> np.ndarray:
    return depth_mm.astype(np.float32) / np.float32(MM_PER_METRE)
