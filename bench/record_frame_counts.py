"""Frames per recorded episode against (stop - start) x fps, for a dataset written by `policy-stack record`.

    python -m bench.record_frame_counts DATASET [--recordings DIR]

Reads each episode's length with our reader and its start/stop stamps from the recordings' episode
JSON (the teleop node's start and stop events); prints one JSON object with the deviation per episode
and how many are within +-1 frame.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from policy_stack.data.reader import LeRobotDatasetReader


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--recordings", default="", help="default <dataset>.recordings")
    args = p.parse_args(argv)
    ds = LeRobotDatasetReader(args.dataset)
    rec = Path(args.recordings or f"{Path(args.dataset).resolve()}.recordings")
    jsons = sorted(rec.glob("episode_*.json"))[-ds.num_episodes:]     # the newest ones were converted last
    devs = []
    for k, path in enumerate(jsons):
        meta = json.loads(path.read_text())
        duration = (meta["stop_ns"] - meta["start_ns"]) * 1e-9
        devs.append(round(ds.episode_length(k) - duration * ds.fps, 3))
    print(json.dumps({"dataset": str(args.dataset), "episodes": ds.num_episodes, "frames": ds.num_frames,
                      "frames_minus_duration_x_fps": devs, "within_1": sum(abs(d) <= 1 for d in devs),
                      "min": min(devs), "max": max(devs)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
