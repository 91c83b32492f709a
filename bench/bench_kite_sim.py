"""KITE sim side: scripted-expert success on the language tasks, and keypoint-label quality.

    python -m bench.bench_kite_sim [--json] [--episodes 50] [--seed 1000] [--tasks multi_cube_pick,multi_cube_stack]
        [--oracle-tasks multi_cube_pick,multi_cube_stack] [--label-episodes 50] [--split train]
        [--label-env multi_cube | pick_place_multi]

Measures:
  - expert success per task over seeds seed..seed+N-1 (the skill-primitive expert on ground-truth
    keypoints; success = the instructed objects only, a wrong cube touched or moved fails), episode
    lengths, and the failures' reasons;
  - with --oracle-tasks: the keypoint oracle, true keypoints with the depth-only keypoint skills
    (policy_stack/skills/keypoint_skills.py), the upper bound of a KITE policy with perfect grounding;
  - label quality on the grounding camera (128x128 RGB-D) at the same seeds: for every cube at reset and
    after moving the arm over the table (sim/grounding_data.py), the fraction whose keypoint passes the
    visibility check (segmentation and depth agree), and for the visible ones the world -> pixel -> world
    round-trip error (deprojecting the labelled pixel with the rendered metric depth).
Prints one JSON object (with --json nothing else is printed on stdout). Writes nothing itself; run_all-style
callers redirect it to runs/bench/.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402


def expert_success(task: str, episodes: int, seed: int, split: str) -> dict:
    from policy_stack.episode import run_episode
    from sim.envs import make_env
    from sim.experts import make_expert
    env = make_env(task, instruction_split=split)
    ok, lengths, failures, kinds = 0, [], {}, {}
    t0 = time.perf_counter()
    try:
        for s in range(seed, seed + episodes):
            ep = run_episode(env, make_expert(task, rng=s).bind(env), seed=s, record_obs=False)
            ok += int(ep["episode_success"])
            lengths.append(ep["length"])
            k = env.episode.kind
            kinds.setdefault(k, [0, 0])
            kinds[k][0] += int(ep["episode_success"])
            kinds[k][1] += 1
            if not ep["episode_success"]:
                reason = f"{k}: {env._failure or 'timeout'}"
                failures[reason] = failures.get(reason, 0) + 1
    finally:
        env.close()
    return {"episodes": episodes, "successes": ok, "success_rate": ok / episodes,
            "mean_length": float(np.mean(lengths)), "max_length": int(np.max(lengths)),
            "per_kind": {k: {"successes": v[0], "episodes": v[1]} for k, v in kinds.items()},
            "failures": failures, "wall_s": round(time.perf_counter() - t0, 1)}


class KeypointOracle:
    """True keypoints + the depth-only keypoint skills (policy_stack/skills/keypoint_skills.py): what a
    KITE policy with perfect grounding would do. Plans each step from the observation it starts on."""

    def __init__(self, env):
        self.env = env
        self.reset()

    def reset(self):
        self.sequence = None

    def __call__(self, obs):
        from policy_stack.skills.keypoint_skills import pick_at, place_at
        from policy_stack.skills.object_skills import pick_object_at, place_in_at
        from policy_stack.skills.primitives import SkillSequence
        builders = {"pick": pick_at, "place": place_at, "pick_object": pick_object_at, "place_in": place_in_at}
        env = self.env
        if self.sequence is None:
            steps = env.episode.steps

            def plan(i, o):
                gt = env.ground_truth(obs=o)
                cam, kp = gt["camera"], gt["objects"][steps[i].target]["kp_base"]
                return builders[steps[i].skill](kp, o["grounding_depth"], cam["K"], cam["T_base_cam"], o["robot0_eef_quat"])
            self.sequence = SkillSequence(len(steps), plan)
        return self.sequence.step(obs)


def oracle_success(task: str, episodes: int, seed: int, split: str) -> dict:
    from policy_stack.episode import run_episode
    from sim.envs import make_env
    env = make_env(task, cameras=("grounding",), image_size=128, depth=True, instruction_split=split)
    ok, failures = 0, {}
    t0 = time.perf_counter()
    try:
        oracle = KeypointOracle(env)
        for s in range(seed, seed + episodes):
            ep = run_episode(env, oracle, seed=s, record_obs=False)
            ok += int(ep["episode_success"])
            if not ep["episode_success"]:
                reason = f"{env.episode.kind}: {env._failure or 'timeout'}"
                failures[reason] = failures.get(reason, 0) + 1
    finally:
        env.close()
    return {"episodes": episodes, "successes": ok, "success_rate": ok / episodes, "failures": failures,
            "wall_s": round(time.perf_counter() - t0, 1)}


def label_quality(episodes: int, seed: int, split: str, env_name: str = "multi_cube") -> dict:
    from policy_stack.skills.geometry import deproject
    from sim.envs import make_env
    from sim.grounding_data import CAMERA, _arm_frame
    env = make_env(env_name, cameras=(CAMERA,), image_size=128, depth=True, instruction_split=split)
    errors = {"reset": [], "arm": []}
    seen = {"reset": 0, "arm": 0}
    residual = []
    try:
        for s in range(seed, seed + episodes):
            obs = env.reset(seed=s)
            frames = [("reset", obs, env.ground_truth(obs=obs))]     # label each frame in its own state
            obs = _arm_frame(env, np.random.default_rng(s + 7_000_003))
            frames.append(("arm", obs, env.ground_truth(obs=obs)))
            for frame, obs, gt in frames:
                K, T = gt["camera"]["K"], gt["camera"]["T_base_cam"]
                for o in gt["objects"].values():
                    seen[frame] += 1
                    if not o["visible"]:
                        continue
                    u, v = o["kp_px"]
                    d = obs[f"{CAMERA}_depth"][int(round(v)), int(round(u))]
                    back = deproject([[u, v]], [d], K, T)[0]
                    errors[frame].append(float(np.linalg.norm(back - o["kp_base"])))
                    residual.append(abs(o["depth_residual_m"]))
    finally:
        env.close()
    every = errors["reset"] + errors["arm"]
    return {
        "env": env_name, "episodes": episodes, "camera": CAMERA, "image_size": 128,
        "visibility_rate": {f: len(errors[f]) / max(seen[f], 1) for f in seen},
        "keypoints": seen,
        "round_trip_error_mm": {"median": 1e3 * float(np.median(every)), "p95": 1e3 * float(np.percentile(every, 95)),
                                "max": 1e3 * float(np.max(every))},
        "depth_residual_mm_median": 1e3 * float(np.median(residual)),
    }


def run(args, log=print) -> dict:
    result = {"benchmark": "kite_sim", "host": platform.node(), "cpus": os.cpu_count(),
              "load_avg_start": os.getloadavg()[0], "seed": args.seed, "split": args.split, "experts": {}}
    for task in [t for t in args.tasks.split(",") if t]:
        log(f"expert {task}: {args.episodes} episodes")
        result["experts"][task] = expert_success(task, args.episodes, args.seed, args.split)
        log(f"  {result['experts'][task]}")
    for task in [t for t in args.oracle_tasks.split(",") if t]:
        log(f"keypoint oracle {task}: {args.episodes} episodes")
        result.setdefault("keypoint_oracle", {})[task] = oracle_success(task, args.episodes, args.seed, args.split)
        log(f"  {result['keypoint_oracle'][task]}")
    if args.label_episodes:
        log(f"labels: {args.label_episodes} episodes")
        result["labels"] = label_quality(args.label_episodes, args.seed, args.split, args.label_env)
        log(f"  {result['labels']}")
    result["load_avg_end"] = os.getloadavg()[0]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="first seed (seeds seed..seed+N-1)")
    parser.add_argument("--tasks", default="multi_cube_pick,multi_cube_stack")
    parser.add_argument("--oracle-tasks", default="",
                        help="also run true keypoints + depth-only keypoint skills on these tasks")
    parser.add_argument("--label-episodes", type=int, default=50)
    parser.add_argument("--split", default="train")
    parser.add_argument("--label-env", default="multi_cube", help="env whose keypoint labels are measured")
    args = parser.parse_args(argv)
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):
            result = run(args, log=lambda *a: print(*a, file=sys.stderr, flush=True))
        print(json.dumps(result))
    else:
        print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
