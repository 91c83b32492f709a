"""The LeRobot side of the interoperability checks: run with a lerobot venv's python, never imported by
policy_stack (lerobot pins another torch). Prints one JSON object on stdout.

    python lerobot_side.py load ROOT          # LeRobotDataset loads ROOT; values, shapes, delta_timestamps
    python lerobot_side.py create ROOT [--episodes N] [--length T] [--depth]
                                              # LeRobot's own writer: plain observation.state dataset
    python lerobot_side.py append ROOT        # LeRobot reads every frame's state, then adds one episode

Used by test/interop/test_lerobot.py and bench/bench_lerobot_train.py; docs/datasets.md says how to
make the venv.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")    # any "incomplete dataset" fails fast instead of downloading

import numpy as np  # noqa: E402

STATE_NAMES = [f"joint{i}.pos" for i in range(6)]
IMG = 64          # SVT-AV1 (LeRobot's default codec) and yuv420p both like even sizes
DEPTH_HW = (6, 8)


def _features(depth: bool) -> dict:
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": STATE_NAMES},
        "action": {"dtype": "float32", "shape": (6,), "names": STATE_NAMES},
        "observation.images.front": {"dtype": "video", "shape": (IMG, IMG, 3),
                                     "names": ["height", "width", "channels"]},
    }
    if depth:
        features["observation.depth.wrist"] = {"dtype": "uint16", "shape": DEPTH_HW, "names": ["height", "width"]}
    return features


def _frames(length: int, seed: int, depth: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:IMG, 0:IMG].astype(np.float32)
    out = []
    for t in range(length):
        rgb = np.stack([128 + 100 * np.sin(xx / 9 + t / 3 + seed), 128 + 100 * np.cos(yy / 7 - t / 4),
                        np.full_like(xx, 90.0)], -1).astype(np.uint8)
        frame = {"observation.state": rng.normal(size=6).astype(np.float32),
                 "action": rng.uniform(-1, 1, 6).astype(np.float32),
                 "observation.images.front": rgb}
        if depth:
            frame["observation.depth.wrist"] = rng.integers(200, 3000, DEPTH_HW).astype(np.uint16)
        out.append(frame)
    return out


def _record(ds, episodes: int, length: int, depth: bool, seed: int, task: str) -> list[list[float]]:
    states = []
    for e in range(episodes):
        for frame in _frames(length, seed + e, depth):
            ds.add_frame({**frame, "task": task})
            states.append(frame["observation.state"].tolist())
        ds.save_episode()
    ds.finalize()
    return states


def cmd_create(args) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset.create("local/created", fps=10, features=_features(args.depth), root=args.root,
                               robot_type="so101_follower", use_videos=True)
    states = _record(ds, args.episodes, args.length, args.depth, seed=0, task="pick up the block")
    return {"root": args.root, "episodes": args.episodes, "frames": len(states), "state": states}


def cmd_append(args) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/appended", root=args.root, video_backend="pyav")
    before = ds.meta.total_episodes
    features = ds.meta.features
    depth = "observation.depth.wrist" in features
    if set(k for k in features if k.startswith("observation.state")) != {"observation.state"} or \
            "observation.images.front" not in features:
        raise SystemExit("append: expects a dataset made by `create`")
    existing = [ds[i]["observation.state"].tolist() for i in range(len(ds))]    # what lerobot reads first
    states = _record(ds, 1, args.length, depth, seed=100, task="pick up the block")
    return {"episodes_before": before, "state_before": existing, "state": states}


def cmd_load(args) -> dict:
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/loaded", root=args.root, video_backend="pyav")
    meta = ds.meta
    cams = list(meta.video_keys) + list(meta.image_keys)
    out = {"num_frames": len(ds), "num_episodes": meta.total_episodes, "features": list(meta.features),
           "state_names": meta.features.get("observation.state", {}).get("names"),
           "stats_shapes": {k: {s: list(np.asarray(v).shape) for s, v in st.items()}
                            for k, st in (meta.stats or {}).items()}}
    states, shapes = [], {}
    for i in range(len(ds)):
        item = ds[i]
        if "observation.state" in item:
            states.append(item["observation.state"].tolist())
        if i == 0:
            shapes = {k: list(v.shape) for k, v in item.items() if isinstance(v, torch.Tensor)}
            out["task"] = item["task"]
    out.update(state=states, item_shapes=shapes)
    if cams:                                          # one pass with LeRobot's temporal queries
        dt = {cams[0]: [-1 / meta.fps, 0.0], "action": [k / meta.fps for k in range(4)]}
        windowed = LeRobotDataset("local/loaded", root=args.root, video_backend="pyav", delta_timestamps=dt)
        item = windowed[len(windowed) // 2]
        out["window_shapes"] = {k: list(item[k].shape) for k in dt}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("load", "create", "append"):
        s = sub.add_parser(name)
        s.add_argument("root")
        s.add_argument("--episodes", type=int, default=2)
        s.add_argument("--length", type=int, default=12)
        s.add_argument("--depth", action="store_true")
    args = p.parse_args(argv)
    result = {"load": cmd_load, "create": cmd_create, "append": cmd_append}[args.cmd](args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
