"""Simulation throughput and scripted-expert success, per task.

    python -m bench.bench_sim [--json] [--episodes 50] [--steps 200] [--tasks lift,stack]

Measures, per task:
  - env.step() rate with random actions, no cameras;
  - the same with 2 cameras (agentview + robot0_eye_in_hand, 84x84, RGB + metric depth, fast render);
  - reset time (hard_reset=False);
  - scripted-expert success over seeds 0..N-1 (noise 0), with episode lengths and wall time.
Prints one JSON object (with --json nothing else is printed on stdout). Numbers are measured every run.
Rates are wall-clock steps/s; `steps_per_cpu_s` divides by this process's CPU time instead (software GL
runs in-process), which stays comparable when other jobs share the cores. The 1-minute load average at
start and end is recorded so a contended run is visible as such.
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

from sim.envs import LANGUAGE_TASKS, TASKS, make_env  # noqa: E402
from sim.experts import make_expert  # noqa: E402
from policy_stack.episode import run_episode  # noqa: E402

BENCH_CAMERAS = ("agentview", "robot0_eye_in_hand")


def step_rate(task: str, cameras, steps: int, seed: int = 0) -> dict:
    """Random-action env.step() rate; the env is reset (not timed in the rate) when an episode ends."""
    env = make_env(task, cameras=cameras, image_size=84, depth=bool(cameras), seed=seed)
    rng = np.random.default_rng(seed)
    try:
        t0 = time.perf_counter()
        env.reset()
        reset_s = time.perf_counter() - t0
        stepped, step_time, cpu_time = 0, 0.0, 0.0
        while stepped < steps:
            t0, c0 = time.perf_counter(), time.process_time()
            _, _, done, _ = env.step(rng.uniform(-1, 1, 7))
            step_time += time.perf_counter() - t0
            cpu_time += time.process_time() - c0
            stepped += 1
            if done:
                env.reset()
        return {"steps_per_s": round(stepped / step_time, 1),
                "steps_per_cpu_s": round(stepped / cpu_time, 1) if cpu_time > 0 else None,
                "steps": stepped, "reset_s": round(reset_s, 3)}
    finally:
        env.close()


def expert_success(task: str, episodes: int) -> dict:
    env = make_env(task)
    expert = make_expert(task, noise=0.0)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        results = [run_episode(env, expert.bind(env), seed=s, record_obs=False) for s in range(episodes)]
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        env.close()
    lengths = [r["length"] for r in results]
    wins = [r["episode_success"] for r in results]
    return {
        "episodes": episodes,
        "successes": int(sum(wins)),
        "success_rate": round(float(np.mean(wins)), 4) if episodes else None,
        "failed_seeds": [s for s, ok in enumerate(wins) if not ok],
        "steps_mean": round(float(np.mean(lengths)), 1) if episodes else None,
        "steps_max": int(max(lengths)) if episodes else None,
        "wall_s": round(wall, 1),
        "steps_per_s": round(sum(lengths) / wall, 1) if wall > 0 else None,
        "steps_per_cpu_s": round(sum(lengths) / cpu, 1) if cpu > 0 else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    parser.add_argument("--episodes", type=int, default=50, help="expert episodes per task (seeds 0..N-1)")
    parser.add_argument("--steps", type=int, default=200, help="steps per throughput run")
    parser.add_argument("--tasks", default=",".join(t for t in TASKS if t not in LANGUAGE_TASKS),
                        help="comma-separated task names (language tasks: bench/bench_kite_sim.py)")
    args = parser.parse_args(argv)

    if args.json:
        # robosuite prints import-time warnings on stdout; keep stdout for the one JSON object.
        with contextlib.redirect_stdout(sys.stderr):
            result = run(args, log=lambda *a: print(*a, file=sys.stderr, flush=True))
    else:
        result = run(args, log=print)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def run(args, log) -> dict:
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "mujoco_gl": os.environ.get("MUJOCO_GL"), "loadavg_1min_start": os.getloadavg()[0]},
        "settings": {"image_size": 84, "cameras": list(BENCH_CAMERAS), "depth": True, "fast_render": True,
                     "throughput_steps": args.steps, "expert_episodes": args.episodes},
        "tasks": {},
    }
    for task in args.tasks.split(","):
        entry = {}
        log(f"[bench_sim] {task}: stepping without cameras")
        entry["no_camera"] = step_rate(task, (), args.steps)
        log(f"[bench_sim] {task}: stepping with 2 cameras")
        entry["two_cameras_rgbd_84"] = step_rate(task, BENCH_CAMERAS, args.steps)
        if args.episodes > 0:
            log(f"[bench_sim] {task}: expert, {args.episodes} episodes")
            entry["expert"] = expert_success(task, args.episodes)
        result["tasks"][task] = entry
        log(f"[bench_sim] {task}: {json.dumps(entry)}")
    result["machine"]["loadavg_1min_end"] = os.getloadavg()[0]
    return result


if __name__ == "__main__":
    sys.exit(main())
