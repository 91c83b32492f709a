"""From a dataset folder to what the trainer needs: stats, obs spec, action space, policy config.

Choosing observation keys lives here (not in the policies) because it depends on what the dataset
holds: low-dim runs use the robot's end-effector pose, gripper and every tracked object position
(plus the gripper-to-object vector the policy derives itself); RGB-D runs add `<cam>_rgb` and
`<cam>_depth` per camera.
"""
from __future__ import annotations

from pathlib import Path

from policy_stack.spaces import ActionSpace, FeatureSpec

from .config import TrainConfig

ROBOT_LOWDIM = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")


def open_dataset(path: str):
    """LeRobotDatasetReader with the errors a user should see (missing folder named)."""
    from policy_stack.data import LeRobotDatasetReader

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset not found: {root} (expected a LeRobot v3.0 folder with meta/info.json)")
    return LeRobotDatasetReader(root)


def action_space_of(reader) -> ActionSpace:
    """info.json's `action_space` (written by `policy-stack collect`), else the 7-d OSC convention."""
    d = reader.info.get("action_space")
    if not d:
        import json
        extras = Path(reader.root) / "meta" / "policy_stack.json"   # written by `policy-stack collect`
        if extras.is_file():
            d = json.loads(extras.read_text()).get("action_space")
    if d:
        return ActionSpace.from_dict(d)
    feat = reader.feature("action")
    dim = int(feat.shape[0])
    names = list(feat.names) if feat.names and len(feat.names) == dim else [f"a{i}" for i in range(dim)]
    discrete = [names.index("gripper")] if "gripper" in names else []
    return ActionSpace(names=names, low=[-1.0] * dim, high=[1.0] * dim, kind="eef_delta", discrete=discrete)


def lowdim_keys_of(cfg: TrainConfig, reader) -> tuple[list[str], list[str]]:
    """(low-dim keys, derived features) for the policy config."""
    available = list(reader.lowdim_keys)
    if cfg.lowdim_keys:
        missing = [k for k in cfg.lowdim_keys if k not in available]
        if missing:
            raise ValueError(f"--lowdim-keys {missing} not in dataset {reader.root}; available: {available}")
        keys = list(cfg.lowdim_keys)
    else:
        objects = [k for k in available if k.endswith("_pos") and not k.startswith("robot")]
        keys = [k for k in ROBOT_LOWDIM if k in available] + objects
        if not keys:
            # A LeRobot dataset keeps its state as one plain `observation.state` (plus, sometimes,
            # `observation.environment_state`): with none of our split keys, use what it has.
            keys = [k for k in available if k.startswith("observation.")]
        if not keys:
            raise ValueError(f"dataset {reader.root} has no usable low-dim keys; available: {available}")
    derived = [f"robot0_eef_pos-{k}" for k in keys
               if "robot0_eef_pos" in keys and k.endswith("_pos") and not k.startswith("robot")]
    return keys, derived


def obs_spec_of(reader, keys: list[str]) -> dict[str, FeatureSpec]:
    spec = {}
    for key in keys:
        f = reader.feature(key)
        dtype = {"rgb": "uint8", "depth": "float32"}.get(f.kind, "float32")
        spec[key] = FeatureSpec(list(f.shape), dtype, f.kind)
    return spec


def policy_overrides(cfg: TrainConfig, reader) -> dict:
    """Policy config fields the trainer decides (observation keys, cameras, optimizer), merged with
    the user's --set overrides (which win)."""
    keys, derived = lowdim_keys_of(cfg, reader)
    over: dict = {"lowdim_keys": keys, "derived_features": derived}
    if cfg.obs in ("rgbd", "rgb"):
        missing = [f"{c}_rgb" for c in cfg.cameras if f"{c}_rgb" not in reader.rgb_keys]
        if cfg.obs == "rgbd":
            missing += [f"{c}_depth" for c in cfg.cameras if f"{c}_depth" not in reader.depth_keys]
        if missing:
            raise ValueError(f"--obs {cfg.obs}: dataset {reader.root} lacks {missing}; "
                             f"it has rgb {reader.rgb_keys}, depth {reader.depth_keys}")
        h, w = reader.feature(f"{cfg.cameras[0]}_rgb").shape[:2]
        over.update(cameras=list(cfg.cameras), use_depth=cfg.obs == "rgbd", image_shape=[int(h), int(w)])
    else:
        over.update(cameras=[])
    for name, value in (("lr", cfg.lr), ("weight_decay", cfg.weight_decay), ("adam_betas", cfg.betas),
                        ("lr_warmup_steps", cfg.warmup), ("grad_clip", cfg.grad_clip)):
        if value is not None:
            over[name] = list(value) if isinstance(value, (list, tuple)) else value
    over.update(cfg.policy_overrides)
    if over.get("language_conditioning") and not over.get("instruction_vocab"):
        # the checkpoint stores the embeddings of every training instruction (diffusion/language.py)
        over["instruction_vocab"] = sorted({t for t in reader.tasks if t})
    return over

