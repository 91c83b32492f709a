"""Low-dim multi-cube expert demos for the Diffusion Policy baselines of KITE, with keypoint labels.

    python scripts/kite_dp_demos.py --episodes 300 --seed 0 --workers 2 --out DATA/multi_cube_demos_lowdim
    python scripts/kite_dp_demos.py --from DATA/multi_cube_demos_train --seed 0 --out DATA/multi_cube_demos_lowdim

The same env, split, seeds and expert as `policy-stack collect --env multi_cube --instruction-split train
--episodes 300 --seed 0` (the demos KITE's skills and grounding were built from), without rendering: every
observation the env publishes (robot state, each cube's pose, colour and size; the instruction becomes the
episode's task string), plus the learned keypoint skill's conditioning keys
(policy_stack/policies/kite/learned_skill.py): the labelled keypoints of the instructed objects (their
top-face centres at the episode's first frame, base frame), the skill id and the objects' headings. They are
constant over an episode, as a grounded keypoint is at test time. Only successful episodes are written.

`--from DIR` builds the same dataset from an existing collection of those demos (RGB-D, written by
`policy-stack collect --env multi_cube --episodes N --seed S`) without simulating again: its low-dim
columns are copied, and each episode's layout (colours) and instructed objects are re-drawn from its seed
(sim/instructions.py draws are deterministic in the seed). Episodes the expert failed were not written,
so the seeds are matched in order by the episode's instruction (a mismatch stops the script).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_stack.cli import collect as _collect  # noqa: E402


def _episode(seed: int) -> dict:
    ep = _collect._worker_episode(seed)
    if ep["length"]:
        ep["obs"].update(label_episode(ep["obs"], _collect._worker_state["env"].episode))
    return ep


def _draw(seed: int, env_name: str):
    from sim.envs import LANGUAGE_TASKS
    from sim.instructions import draw_episode
    from sim.multi_cube import CUBE_SLOTS
    return draw_episode(int(seed), "train", list(CUBE_SLOTS), LANGUAGE_TASKS[env_name])


def label_episode(obs: dict, episode) -> dict:
    """The env's colour/size keys and the learned skill's conditioning keys for one episode (T frames)."""
    import numpy as np

    from policy_stack.policies.kite.learned_skill import skill_features, yaw_of_quat_xyzw
    from sim.instructions import COLOURS, SIZES
    from sim.multi_cube import CUBE_SLOTS, cube_attributes

    n = len(next(iter(obs.values())))
    out = {}
    specs = {c.name: c for c in episode.layout}
    for name, size in CUBE_SLOTS:
        out[f"{name}_attributes"] = np.repeat(cube_attributes(COLOURS[specs[name].colour], SIZES[size])[None], n, 0)

    def top(name):     # the keypoint label: the top-face centre (cubes rest flat at the first frame)
        return obs[f"{name}_pos"][0] + np.array([0.0, 0.0, SIZES[dict(CUBE_SLOTS)[name]]], np.float32)

    steps = episode.steps
    a = steps[0].target
    b = steps[1].target if len(steps) > 1 else a
    feats = skill_features(top(a), top(b), "pick" if len(steps) == 1 else "stack",
                           yaw_of_quat_xyzw(obs[f"{a}_quat"][0]), yaw_of_quat_xyzw(obs[f"{b}_quat"][0]))
    out.update({k: np.repeat(v[None], n, axis=0) for k, v in feats.items()})
    return out


def convert(source: str, seed: int, env_name: str, writer) -> dict:
    """Episodes of an existing collection -> writer, with the keys above; returns a summary."""
    import numpy as np

    from policy_stack.data import LeRobotDatasetReader

    reader = LeRobotDatasetReader(source)
    keys = [f for f in reader.features if not f.is_video and f.kind not in ("rgb", "depth")]
    columns = {f.env_key: reader.column(f.key) for f in keys}
    episode_index = reader.column("episode_index")
    next_seed, skipped = seed, []
    for e in range(reader.num_episodes):
        task = reader.episode_task(e)
        for _ in range(20):                      # the seeds of failed (unwritten) episodes are skipped
            drawn = _draw(next_seed, env_name)
            next_seed += 1
            if drawn.instruction == task:
                break
            skipped.append(next_seed - 1)
        else:
            raise SystemExit(f"episode {e} ({task!r}): no seed from {seed} on draws this instruction")
        rows = episode_index == e
        frames = {k: v[rows] for k, v in columns.items()}
        frames.update(label_episode({k: v for k, v in frames.items() if k.endswith(("_pos", "_quat"))}, drawn))
        writer.add_episode(frames, task=task)
    return {"episodes": reader.num_episodes, "seeds_skipped": skipped, "last_seed": next_seed - 1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="multi_cube")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--from", dest="source", default=None, help="convert this collection instead of simulating")
    args = ap.parse_args()

    from policy_stack.data.writer import DatasetWriter
    from policy_stack.persist import write_json_atomic
    from policy_stack.policies.kite.learned_skill import SKILL_KEYS
    from policy_stack.spaces import FeatureSpec
    from sim.envs import make_env

    probe = make_env(args.env, instruction_split="train")
    obs_spec, action_space, fps = probe.obs_spec(), probe.action_space, probe.fps
    probe.close()
    dims = {"kp_pick_pos": 3, "kp_place_pos": 3, "kite_skill": 2, "kite_heading": 4}
    features = dict(obs_spec)
    features.update({k: FeatureSpec([dims[k]], "float32") for k in SKILL_KEYS})
    features.update(action=(action_space.dim,), reward=(), success=(), done=())
    writer = DatasetWriter(args.out, fps=fps, features=features, robot_type="panda")
    write_json_atomic(Path(args.out) / "meta" / "policy_stack.json", {
        "env": args.env, "instruction_split": "train", "action_space": action_space.to_dict(),
        "obs_spec": {k: v.to_dict() for k, v in features.items() if isinstance(v, FeatureSpec)},
        "made_by": "python scripts/kite_dp_demos.py " + " ".join(sys.argv[1:])})
    if args.source:
        t0 = time.perf_counter()
        try:
            summary = convert(args.source, args.seed, args.env, writer)
        finally:
            writer.close()
        print(json.dumps(summary | {"wall_s": round(time.perf_counter() - t0, 1), "from": args.source,
                                    "out": os.path.abspath(args.out)}))
        return 0
    init = (args.env, [], 84, False, 0.0, 0.0, None, "train")
    seeds = [args.seed + k for k in range(args.episodes)]
    t0, ok, steps = time.perf_counter(), 0, 0
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_collect._worker_init, initargs=init + (os.getpid(),)) as pool:
        try:
            for i, ep in enumerate(pool.imap(_episode, seeds)):
                steps += ep["length"]
                if ep["episode_success"]:
                    writer.add_episode(_collect._frames(ep), task=ep["task"])
                    ok += 1
                if (i + 1) % 25 == 0:
                    print(f"{i + 1}/{len(seeds)} episodes, {ok} written, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)
        finally:
            writer.close()
    print(json.dumps({"episodes": len(seeds), "written": ok, "steps": steps,
                      "wall_s": round(time.perf_counter() - t0, 1), "out": os.path.abspath(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
