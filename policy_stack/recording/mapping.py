"""The topic-to-feature mapping file of `policy-stack convert mcap|rosbag2` (YAML, no code in it).

    fps: 20                        # dataset frame rate
    anchor: /agentview/color/image_raw   # frames follow this topic (a camera); omit for a fixed-rate clock
    max_age_s: 0.1                 # a message older than this at a frame counts as missing
    task: "lift the cube"          # optional: task text when an episode's JSON has none
    features:                      # env key (docs/datasets.md naming) -> where its value comes from
      robot0_joint_pos: {topic: /joint_states, field: position, names: [panda_joint1, ...]}
      robot0_eef_pos:   {topic: /ee_pose, field: pose.position}
      robot0_eef_quat:  {topic: /ee_pose, field: pose.orientation}
      agentview_rgb:    {topic: /agentview/color/image_raw, field: image}
      action:           {topic: /teleop/action, field: points[0].positions, names: [dx, ..., gripper]}
      success:          {topic: /episode/success, field: data, max_age_s: 10.0, default: false}

`field` is a path into the message (attributes, `[i]` indexes). A Vector3/Point/Quaternion becomes
[x, y, z(, w)]; `image` decodes sensor_msgs/Image (rgb8/bgr8 -> uint8 HxWx3, 16UC1 -> uint16
millimetres, 32FC1 -> float32 metres). `names` picks and orders elements by the message's own name
list (JointState.name, JointTrajectory.joint_names). Per feature, `max_age_s` overrides the file's (a
slow or stamp-less state signal may hold longer) and `default` is the value used while the topic has
not spoken yet (instead of dropping the frame).

Two options serve recordings of a policy (with or without a human taking over):

    action: {topic: /policy/action_chunk, field: points[0].positions, chunk_time: true, max_age_s: 0.5,
             prefer: {topic: /teleop/action, field: points[0].positions, max_age_s: 0.1}}

- `chunk_time: true` (a JointTrajectory chunk): the newest chunk stamped at or before the frame, and in
  it the point planned for the frame's time (header.stamp + time_from_start), not point 0. A chunk is
  stamped with the observation it answers, so a frame gets the action the policy decided for it however
  late the chunk arrived (what a robot executed under inference latency is an older plan).
- `prefer: {topic, field, ...}`: another source tried first; where it has a message within its own
  `max_age_s`, it wins (an operator's action while the deadman is held).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

_INDEX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)?((?:\[\d+\])*)$")
NAME_LISTS = ("name", "joint_names")          # JointState.name, JointTrajectory.joint_names


@dataclass(frozen=True)
class FeatureSource:
    key: str
    topic: str
    field: str
    names: tuple | None = None
    max_age_s: float | None = None       # None: the mapping's
    default: object = None               # value before the topic's first message; None: drop the frame
    chunk_time: bool = False             # a chunk: take the point planned for the frame's time
    prefer: "FeatureSource | None" = None    # tried first; wins where it has a message within its max age


@dataclass(frozen=True)
class Mapping:
    fps: int
    features: tuple
    anchor: str | None = None
    max_age_s: float = 0.1
    task: str | None = None

    @property
    def topics(self) -> list[str]:
        out = [self.anchor] if self.anchor else []
        used = {f.topic for f in self.features} | {f.prefer.topic for f in self.features if f.prefer}
        return out + sorted(used - set(out))

    def to_dict(self) -> dict:
        feats = {f.key: _source_dict(f) for f in self.features}
        d = {"fps": self.fps, "anchor": self.anchor, "max_age_s": self.max_age_s, "features": feats}
        if self.task:
            d["task"] = self.task
        return d


def _source_dict(f: FeatureSource) -> dict:
    return {"topic": f.topic, "field": f.field, **({"names": list(f.names)} if f.names else {}),
            **({"max_age_s": f.max_age_s} if f.max_age_s is not None else {}),
            **({"default": f.default} if f.default is not None else {}),
            **({"chunk_time": True} if f.chunk_time else {}),
            **({"prefer": _source_dict(f.prefer)} if f.prefer else {})}


def parse_mapping(data: dict, where: str = "mapping") -> Mapping:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with fps and features")
    unknown = sorted(set(data) - {"fps", "anchor", "max_age_s", "task", "features"})
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    fps = data.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"{where}: fps must be a positive integer, got {fps!r}")
    max_age = data.get("max_age_s", 0.1)
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not (math.isfinite(max_age) and max_age > 0):
        raise ValueError(f"{where}: max_age_s must be a positive number, got {max_age!r}")
    feats = data.get("features")
    if not isinstance(feats, dict) or not feats:
        raise ValueError(f"{where}: features must be a non-empty mapping of env key -> {{topic, field}}")
    out = [_parse_source(str(key), spec, where) for key, spec in feats.items()]
    if "action" not in feats:
        raise ValueError(f"{where}: an 'action' feature is required")
    anchor = data.get("anchor")
    if anchor is not None and not isinstance(anchor, str):
        raise ValueError(f"{where}: anchor must be a topic name or null")
    task = data.get("task")
    return Mapping(fps=fps, features=tuple(out), anchor=anchor or None, max_age_s=float(max_age),
                   task=str(task) if task else None)


def _parse_source(key: str, spec, where: str, nested: bool = False) -> FeatureSource:
    """One feature's source (or, nested, the source its `prefer` names)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("topic"), str) or not isinstance(spec.get("field"), str):
        raise ValueError(f"{where}: feature {key!r} needs a topic and a field (strings)")
    allowed = {"topic", "field", "names", "max_age_s", "default", "chunk_time"} | (set() if nested else {"prefer"})
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValueError(f"{where}: feature {key!r} has unknown keys {extra}")
    chunk_time = spec.get("chunk_time", False)
    if not isinstance(chunk_time, bool) or (chunk_time and not spec["field"].startswith("points[")):
        raise ValueError(f"{where}: feature {key!r}: chunk_time must be a bool, on a points[...] field")
    for part in spec["field"].split("."):
        if not _INDEX.match(part) or part == "":
            raise ValueError(f"{where}: feature {key!r}: bad field path {spec['field']!r}")
    names = spec.get("names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise ValueError(f"{where}: feature {key!r}: names must be a list of strings")
    f_age = spec.get("max_age_s")
    if f_age is not None and (isinstance(f_age, bool) or not isinstance(f_age, (int, float))
                              or not (math.isfinite(f_age) and f_age > 0)):
        raise ValueError(f"{where}: feature {key!r}: max_age_s must be a positive number, got {f_age!r}")
    default = spec.get("default")
    if default is not None and not isinstance(default, (bool, int, float, list)):
        raise ValueError(f"{where}: feature {key!r}: default must be a number, a bool or a list of numbers")
    prefer = _parse_source(key, spec["prefer"], where, nested=True) if "prefer" in spec else None
    return FeatureSource(key, spec["topic"], spec["field"], tuple(names) if names else None,
                         float(f_age) if f_age is not None else None, default, chunk_time, prefer)


def load_mapping(path) -> Mapping:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    return parse_mapping(data, str(path))


# ----------------------------------------------------------------------------------- extraction
def _walk(msg, path: str):
    value = msg
    for part in path.split("."):
        m = _INDEX.match(part)
        name, idx = m.group(1), m.group(2)
        if name:
            if not hasattr(value, name):
                raise ValueError(f"message {type(value).__name__} has no field {name!r}")
            value = getattr(value, name)
        for i in re.findall(r"\[(\d+)\]", idx):
            try:
                value = value[int(i)]
            except (IndexError, TypeError):
                raise ValueError(f"field {path!r}: index {i} out of range") from None
    return value


def decode_image(msg) -> np.ndarray:
    h, w, enc = int(msg.height), int(msg.width), str(msg.encoding)
    data = np.asarray(msg.data, np.uint8)
    step = int(msg.step)
    if enc in ("rgb8", "bgr8"):
        img = data.reshape(h, step)[:, :w * 3].reshape(h, w, 3)
        return np.ascontiguousarray(img[..., ::-1] if enc == "bgr8" else img)
    if enc in ("16UC1", "mono16"):
        dt = np.dtype(">u2" if msg.is_bigendian else "<u2")
        return np.ascontiguousarray(data.reshape(h, step)[:, :w * 2]).view(dt).reshape(h, w).astype(np.uint16)
    if enc == "32FC1":
        dt = np.dtype(">f4" if msg.is_bigendian else "<f4")
        return np.ascontiguousarray(data.reshape(h, step)[:, :w * 4]).view(dt).reshape(h, w).astype(np.float32)
    raise ValueError(f"image encoding {enc!r} not supported (rgb8, bgr8, 16UC1, mono16, 32FC1)")


def extract(msg, source: FeatureSource) -> np.ndarray:
    """The feature's value from one decoded message (rosbags message object)."""
    if source.field == "image":
        return decode_image(msg)
    value = _walk(msg, source.field)
    if source.names:
        base = msg
        parent = source.field.rsplit(".", 1)[0] if "." in source.field else ""
        if parent:
            base = _walk(msg, parent)
        have = next((list(getattr(c, n)) for c in (base, msg) for n in NAME_LISTS if hasattr(c, n)), None)
        if have is None:
            raise ValueError(f"{source.key}: names given but {type(msg).__name__} has no name list")
        missing = [n for n in source.names if n not in have]
        if missing:
            raise ValueError(f"{source.key}: names {missing} not in the message's {have}")
        arr = np.asarray(value, np.float64)
        return np.array([arr[have.index(n)] for n in source.names], np.float32)
    if all(hasattr(value, a) for a in ("x", "y", "z")):
        comps = ["x", "y", "z"] + (["w"] if hasattr(value, "w") else [])
        return np.array([getattr(value, a) for a in comps], np.float32)
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    arr = np.asarray(value)
    return arr.astype(np.float32) if arr.dtype.kind in "fiu" else arr
