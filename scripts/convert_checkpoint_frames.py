"""Move a checkpoint trained on robosuite WORLD-frame observations to the robot-BASE-frame, Franka-style
observations that sim/envs.py now produces (docs/CONVENTIONS.md), without retraining.

The conversion is an exact re-parametrisation of normalization.json (policy_stack/normalize.py maps each
dimension x -> scale * x + offset with scale = 2 / (max - min), offset = -1 - scale * min):
- positions (`robot0_eef_pos`, `<obj>_pos`): x_base = x_world - t, t = the base's position in world
  (read from the sim for the checkpoint's task; the base must be axis-aligned, as in every robosuite task
  here). min, max, mean shift by -t, std is unchanged: scale is unchanged and the offset absorbs t, so
  the network sees the same normalized input up to float32 rounding of the subtraction (~1e-7 m).
- the second finger (`robot0_gripper_qpos[1]`): x' = -x. min' = -min, max' = -max (so min' > max'),
  mean' = -mean, std unchanged: scale' = -scale, offset' = offset, so scale' * x' + offset' is
  bit-identical to scale * x + offset.
- quaternions are not normalized and the base is not rotated: unchanged. Derived differences
  (`robot0_eef_pos-cube_pos`), joint positions and actions: unchanged.
config.json gets `observation_conventions` (refusing a second conversion) and the action space's
semantics (policy_stack/spaces.py). test/sim/test_checkpoint_frames.py checks that the converted checkpoint
acts identically on base-frame observations to the original on world-frame ones.

    python scripts/convert_checkpoint_frames.py                       # the four shipped checkpoints
    python scripts/convert_checkpoint_frames.py CKPT_DIR:lift [...]   # others (checkpoint:task)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIPPED = {"diffusion_lowdim_lift": "lift", "diffusion_rgbd_lift": "lift", "ebt_lowdim_lift": "lift",
           "diffusion_lowdim_can": "pick_place_can"}
MARKER = "observation_conventions"
FLIPPED_FINGER = ("robot0_gripper_qpos", 1)


def base_position(task: str) -> list[float]:
    from sim.envs import make_env
    with make_env(task) as env:
        frame = env.base_frame
    if not frame.is_axis_aligned:
        raise ValueError(f"{task}: the robot base is rotated in world {frame.quat_xyzw}; min/max of rotated "
                         "positions are not a function of the old ones, so this conversion is not exact")
    return list(frame.pos)


def is_position_key(key: str) -> bool:
    return key.endswith("_pos") and key != "robot0_joint_pos" and "-" not in key


def convert_stats(stats: dict, base: list[float]) -> dict:
    out = {}
    for key, entry in stats.items():
        entry = {f: list(v) for f, v in entry.items()}
        if is_position_key(key):
            for f in ("min", "max", "mean"):
                if f in entry:
                    entry[f] = [v - t for v, t in zip(entry[f], base)]
        if key == FLIPPED_FINGER[0]:
            i = FLIPPED_FINGER[1]
            for f in ("min", "max", "mean"):
                if f in entry:
                    entry[f][i] = -entry[f][i]
        out[key] = entry
    return out


def convert(folder: Path, task: str) -> dict:
    from policy_stack.spaces import ActionSpace
    cfg_path, norm_path = folder / "config.json", folder / "normalization.json"
    cfg = json.loads(cfg_path.read_text())
    if MARKER in cfg:
        raise ValueError(f"{folder}: already converted ({cfg[MARKER]})")
    norm = json.loads(norm_path.read_text())
    base = base_position(task)
    norm["stats"] = convert_stats(norm["stats"], base)
    cfg[MARKER] = {
        "poses": "robot base frame (panda_link0)", "gripper": "franka_ros2: both finger joints positive, m",
        "converted_from": "robosuite world frame, finger_joint2 negative",
        "base_position_in_world_m": base, "task": task, "by": "scripts/convert_checkpoint_frames.py"}
    cfg["action_space"] = ActionSpace.from_dict(cfg["action_space"]).to_dict()   # adds its semantics
    norm_path.write_text(json.dumps(norm, indent=1))
    cfg_path.write_text(json.dumps(cfg, indent=1))
    return {"checkpoint": str(folder), "task": task, "base_position_in_world_m": base}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="CHECKPOINT_DIR:TASK pairs (default: the shipped checkpoints)")
    a = ap.parse_args(argv)
    pairs = [t.rsplit(":", 1) for t in a.targets] or [
        [str(ROOT / "policy_stack" / "checkpoints" / name), task] for name, task in SHIPPED.items()]
    for folder, task in pairs:
        print(json.dumps(convert(Path(folder), task)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
