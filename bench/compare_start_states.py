"""Compare two datasets recorded from the same seeds, frame by frame at the start of each episode.

Used for the training-from-recordings comparison (docs/results.md, "Teleop recording"): `policy-stack
collect` and `policy-stack record` with the same seeds start from the same scene, so any difference in
the first frames is a difference in how the two paths record, not in the scene.

    python -m bench.compare_start_states DATASET_A DATASET_B [--frames 0,5] [--out FILE.json]
"""
from __future__ import annotations

import argparse

import numpy as np

from bench import emit

from policy_stack.data.reader import LeRobotDatasetReader


def compare(path_a: str, path_b: str, frames: list[int]) -> dict:
    a, b = LeRobotDatasetReader(path_a), LeRobotDatasetReader(path_b)
    keys = [k for k in a.lowdim_keys if k in b.lowdim_keys] + ["action"]
    n = min(a.num_episodes, b.num_episodes)
    out = {"a": path_a, "b": path_b, "episodes": n, "frames": {}}
    for f in frames:
        diffs = {k: [] for k in keys}
        for ep in range(n):
            x, y = a.episode(ep), b.episode(ep)
            if f >= min(len(x["action"]), len(y["action"])):
                continue
            for k in keys:
                diffs[k].append(np.asarray(y[k][f], np.float64) - np.asarray(x[k][f], np.float64))
        out["frames"][str(f)] = {k: {"mean_b_minus_a": np.mean(v, axis=0).round(5).tolist(),
                                     "max_abs": float(np.abs(v).max())} for k, v in diffs.items() if v}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--frames", default="0,5")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    result = compare(args.a, args.b, [int(x) for x in args.frames.split(",")])
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
