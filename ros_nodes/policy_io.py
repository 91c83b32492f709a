"""Which policy the nodes run and which contract topics its observation keys map to. No rclpy here.

`load(spec, ...)` builds the Policy for the inference node, `policy-stack up` and bench/bench_ros.py:
- "" : the checkpoint shipped with policy_stack (`policy_stack.load_policy(None)`),
- a checkpoint folder: `policy_stack.load_policy(path)`,
- "pyfile:/abs/file.py:factory": a development/test hook that calls `factory()` from a Python file
  (the tests' stand-in policy). It runs arbitrary code, so it is refused unless the environment sets
  POLICY_STACK_ALLOW_PYFILE_POLICY=1: a parameter file alone can never make a node execute code.

`plan_inputs(obs_spec)` maps observation keys (docs/CONVENTIONS.md) to the topics of the contract, so
the node subscribes only what its policy needs and a key it cannot serve fails at start-up by name.
"""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

PYFILE_PREFIX = "pyfile:"
PYFILE_ENV = "POLICY_STACK_ALLOW_PYFILE_POLICY"

JOINT_KEY, GRIPPER_KEY = "robot0_joint_pos", "robot0_gripper_qpos"
EEF_POS_KEY, EEF_QUAT_KEY = "robot0_eef_pos", "robot0_eef_quat"


def load(spec: str = "", device: str = "auto", backend: str = "torch", sampler: str = "", steps: int = 0):
    """Build the policy named by spec (see module doc) and apply sampler/steps overrides."""
    if spec.startswith(PYFILE_PREFIX):
        policy = _load_pyfile(spec[len(PYFILE_PREFIX):])
    else:
        from policy_stack import load_policy  # the core's loader (torch); imported only when needed
        policy = load_policy(spec or None, device=device)
    if backend != "torch":
        policy.set_backend(backend)  # the Policy interface; onnx exports the network once, others refuse
    if sampler or steps:             # empty = keep the checkpoint's; a policy without the setting refuses
        policy.set_sampler(sampler or None, int(steps) or None)
    return policy


def _load_pyfile(ref: str):
    if os.environ.get(PYFILE_ENV) != "1":
        raise ValueError(f"policy {PYFILE_PREFIX}{ref}: Python-file policies are a test hook; "
                         f"set {PYFILE_ENV}=1 to allow them")
    path, _, factory = ref.rpartition(":")
    if not path or not Path(path).is_file():
        raise FileNotFoundError(f"policy {PYFILE_PREFIX}{ref}: expected {PYFILE_PREFIX}/path/file.py:factory")
    mod_spec = importlib.util.spec_from_file_location(f"_pyfile_policy_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return getattr(module, factory)()


def obs_spec_of(spec: str = "") -> dict:
    """The policy's obs_spec without building its network when the checkpoint says it (config.json)."""
    if not spec.startswith(PYFILE_PREFIX):
        if not spec:
            from policy_stack.checkpoint import DEFAULT_CHECKPOINT
            spec = str(DEFAULT_CHECKPOINT)
        cfg = Path(spec) / "config.json"
        if cfg.is_file():
            data = json.loads(cfg.read_text())
            if isinstance(data.get("obs_spec"), dict):
                from policy_stack.spaces import obs_spec_from_dict
                return obs_spec_from_dict(data["obs_spec"])
    return load(spec, device="cpu").obs_spec


@dataclass
class InputPlan:
    """Observation keys grouped by the topic that carries them."""
    joint_groups: dict = field(default_factory=dict)   # obs key -> "arm" | "gripper"
    ee_keys: list = field(default_factory=list)        # robot0_eef_pos / robot0_eef_quat
    objects: dict = field(default_factory=dict)        # object name -> [keys]
    rgb: dict = field(default_factory=dict)            # camera -> key
    depth: dict = field(default_factory=dict)          # camera -> key
    intrinsics: dict = field(default_factory=dict)     # camera -> key (<cam>_K, 3x3)

    @property
    def cameras(self) -> list[str]:
        return sorted(set(self.rgb) | set(self.depth) | set(self.intrinsics))


def plan_inputs(obs_spec: dict) -> InputPlan:
    plan = InputPlan()
    for key, feat in obs_spec.items():
        kind = getattr(feat, "kind", "lowdim")
        if key == JOINT_KEY:
            plan.joint_groups[key] = "arm"
        elif key == GRIPPER_KEY:
            plan.joint_groups[key] = "gripper"
        elif key in (EEF_POS_KEY, EEF_QUAT_KEY):
            plan.ee_keys.append(key)
        elif key.endswith("_rgb") or kind == "rgb":
            plan.rgb[key[:-4]] = key
        elif key.endswith("_depth") or kind == "depth":
            plan.depth[key[:-6]] = key
        elif key.endswith("_K"):
            plan.intrinsics[key[:-2]] = key
        elif key.endswith("_pos") or key.endswith("_quat"):
            name = key.rsplit("_", 1)[0]
            if name.startswith("robot0"):
                raise ValueError(f"observation key {key!r}: no contract topic carries it")
            plan.objects.setdefault(name, []).append(key)
        else:
            raise ValueError(f"observation key {key!r}: no contract topic carries it "
                             "(see docs/CONVENTIONS.md and docs/ros2.md)")
    return plan


def describe_action_space(space) -> str:
    """The action space's meaning (policy_stack/spaces.py), or ValueError: the node refuses a policy whose
    actions it cannot describe, since nobody could execute them correctly."""
    try:
        return space.describe()
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"refusing the policy: its action space cannot be described ({exc})") from None


def default_anchor(keys, plan: InputPlan) -> str:
    """The observation key whose arrival defines a time step, when anchor_key is empty.

    First RGB camera (cameras are the slowest stream); else the joint-state stream (robot0_joint_pos,
    else robot0_gripper_qpos): on a ros2_control arm joint_state_broadcaster publishes it at the
    controller rate and end-effector poses are computed from it; else /ee_pose; else the first key."""
    keys = list(keys)
    rgb = [k for k in keys if k in plan.rgb.values()]
    for candidate in rgb[:1] + [JOINT_KEY, GRIPPER_KEY, EEF_POS_KEY, EEF_QUAT_KEY]:
        if candidate in keys:
            return candidate
    return keys[0]


def cameras_and_depth(obs_spec: dict) -> tuple[list[str], bool]:
    """Cameras a sim must render for this policy, and whether it needs depth."""
    plan = plan_inputs(obs_spec)
    return plan.cameras, bool(plan.depth)
