"""`policy-stack collect`: scripted-expert demonstrations -> a LeRobot v3 dataset.

Worker processes roll out episodes (one robosuite env each, so one GL context each); the parent is the
only writer, appending whole episodes in seed order. The writer's append is crash-safe, so a collection
killed at any point keeps every episode written before the kill.
Episodes travel from workers to the parent through multiprocessing (in-memory, between our own
processes); nothing is pickled to disk.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="lift", help="lift | pick_place_can | stack | nut_assembly_square | "
                   "multi_cube | multi_cube_pick | multi_cube_stack | multi_cube_tower | pick_place_multi | "
                   "nut_assembly_both")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--out", required=True, help="dataset folder (created, or appended to)")
    p.add_argument("--cameras", default="", help="comma-separated, e.g. agentview,robot0_eye_in_hand")
    p.add_argument("--image-size", type=int, default=None, help="pixels (default 84; 128 with --grounding)")
    p.add_argument("--depth", action="store_true", help="also record depth (lossless uint16 mm)")
    p.add_argument("--noise", type=float, default=0.0, help="expert action noise std (translation dims)")
    p.add_argument("--suboptimal", type=float, default=0.0, help="probability of a deliberately poor episode")
    p.add_argument("--seed", type=int, default=0, help="episode k uses seed + k")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="episode step cap (default: task horizon)")
    p.add_argument("--keep-failures", action="store_true", help="also write failed episodes")
    p.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    # language tasks (multi_cube*): which instruction split the episodes draw from, and grounding data
    p.add_argument("--instruction-split", default="train",
                   help="train | heldout_templates | heldout_attributes | heldout_layouts | heldout (the three "
                        "held-out splits in turn by seed); language tasks")
    p.add_argument("--grounding", action="store_true",
                   help="write grounding data (grounding.safetensors + grounding.json: image, sub-instruction, "
                        "keypoint labels) instead of demonstrations; language tasks only")
    p.add_argument("--queries-per-object", type=int, default=1,
                   help="--grounding: sub-instructions written per visible object per frame")


def _validate(args) -> list[str]:
    from sim.envs import LANGUAGE_TASKS, resolve_task
    from sim.instructions import SPLITS
    task = resolve_task(args.env)  # ValueError names a bad env
    if args.image_size is None:
        args.image_size = 128 if args.grounding else 84
    language = task.name in LANGUAGE_TASKS
    if args.instruction_split not in SPLITS:
        raise ValueError(f"unknown --instruction-split {args.instruction_split!r}; valid splits: {list(SPLITS)}")
    if (args.grounding or args.instruction_split != "train") and not language:
        raise ValueError(f"--grounding and --instruction-split need a language task ({sorted(LANGUAGE_TASKS)}), "
                         f"got {task.name!r}")
    cameras = [c for c in args.cameras.split(",") if c]
    for cam in cameras:
        if cam not in task.cameras:
            raise ValueError(f"unknown camera name {cam!r} for env {task.name!r}; valid cameras: {list(task.cameras)}")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.depth and not cameras:
        raise ValueError("--depth needs at least one camera in --cameras")
    return cameras


_worker_state: dict = {}


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this worker when the collect process dies (Linux prctl PR_SET_PDEATHSIG).

    multiprocessing's own shutdown never runs when the parent is SIGKILLed, and a worker waiting on the
    task queue then lives forever (every worker holds both ends of the queue's pipe, so it never sees
    EOF). The getppid check closes the race where the parent died before prctl ran."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_init(env_name, cameras, image_size, depth, noise, suboptimal, max_steps, split="train",
                 parent_pid=None):
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch  # noqa: F401  (keep BLAS/torch threads from oversubscribing the cores)
    torch.set_num_threads(1)
    from sim.envs import make_env
    from sim.experts import make_expert
    env = make_env(env_name, cameras=cameras, image_size=image_size, depth=depth, **_split_kwargs(env_name, split))
    _worker_state.update(env=env, env_name=env_name, noise=noise, suboptimal=suboptimal,
                         max_steps=max_steps or env.horizon, make_expert=make_expert)


def _worker_episode(seed: int) -> dict:
    import numpy as np
    from policy_stack.episode import run_episode
    st = _worker_state
    # The expert's own randomness (noise, which flaw) is tied to the episode seed: reruns reproduce.
    expert = st["make_expert"](st["env_name"], noise=st["noise"], suboptimal=st["suboptimal"],
                               rng=np.random.default_rng(seed + 1_000_003))
    return run_episode(st["env"], expert.bind(st["env"]), seed=seed, max_steps=st["max_steps"])


def _split_kwargs(env_name: str, split: str) -> dict:
    from sim.envs import LANGUAGE_TASKS, resolve_task
    return {"instruction_split": split} if resolve_task(env_name).name in LANGUAGE_TASKS else {}


def _frames(ep: dict) -> dict:
    """Episode record (policy_stack.episode) -> writer frames keyed by env keys. A language task's
    `instruction` observation is text: it becomes the episode's task string, not a feature column."""
    frames = dict(ep["obs"])
    frames.pop("instruction", None)
    frames.update(action=ep["action"], reward=ep["reward"], success=ep["success"], done=ep["done"])
    return frames


def _run_grounding(args) -> int:
    from sim.grounding_data import collect_grounding
    summary = collect_grounding(args.env, args.instruction_split, args.episodes, args.seed, args.out,
                                image_size=args.image_size, queries_per_object=args.queries_per_object,
                                log=lambda m: print(m, file=sys.stderr))
    summary.update(env=args.env, split=args.instruction_split, out=os.path.abspath(args.out))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"grounding data {args.env} ({args.instruction_split}): {summary['rows']} rows from "
              f"{summary['frames']} frames, keypoint visibility {100 * summary['visibility_rate']:.1f}%, "
              f"{summary['wall_s']} s -> {args.out}")
    return 0


def run(args) -> int:
    cameras = _validate(args)
    if args.grounding:
        return _run_grounding(args)
    from tqdm import tqdm

    from pathlib import Path

    from policy_stack.persist import write_json_atomic
    from policy_stack.data.writer import DatasetWriter
    from sim.envs import make_env

    probe = make_env(args.env, cameras=cameras, image_size=args.image_size, depth=args.depth,
                     **_split_kwargs(args.env, args.instruction_split))
    obs_spec, action_space, task_text, fps = probe.obs_spec(), probe.action_space, probe.task, probe.fps
    camera_info = {cam: probe.camera_info(cam) for cam in cameras}
    probe.close()

    features = dict(obs_spec)
    features.update(action=(action_space.dim,), reward=(), success=(), done=())
    writer = DatasetWriter(args.out, fps=fps, features=features, robot_type="panda",
                           task_names=[task_text] if task_text else None)
    # What LeRobot's schema has no place for (action semantics, camera calibration) goes beside it.
    write_json_atomic(Path(args.out) / "meta" / "policy_stack.json", {
        "env": args.env, "instruction_split": args.instruction_split,
        "action_space": action_space.to_dict(), "camera_info": camera_info,
        "obs_spec": {k: v.to_dict() for k, v in obs_spec.items()}})
    seeds = [args.seed + k for k in range(args.episodes)]
    init_args = (args.env, cameras, args.image_size, args.depth, args.noise, args.suboptimal, args.max_steps,
                 args.instruction_split)
    t0 = time.perf_counter()
    n_ok = n_written = steps = 0
    bar = tqdm(total=len(seeds), desc=f"collect {args.env}", unit="ep", file=sys.stderr)
    if args.workers == 1:
        _worker_init(*init_args)
        results = map(_worker_episode, seeds)
        pool = None
    else:
        ctx = mp.get_context("spawn")  # fresh GL context per worker; fork would share MuJoCo/GL state
        pool = ctx.Pool(args.workers, initializer=_worker_init, initargs=init_args + (os.getpid(),))
        results = pool.imap(_worker_episode, seeds)
    try:
        for ep in results:
            steps += ep["length"]
            n_ok += int(ep["episode_success"])
            if ep["episode_success"] or args.keep_failures:
                writer.add_episode(_frames(ep), task=ep["task"] or task_text)   # language tasks: the instruction
                n_written += 1
            bar.update(1)
            bar.set_postfix(success=f"{n_ok}/{bar.n}")
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        writer.close()
    wall = time.perf_counter() - t0
    summary = {
        "env": args.env, "episodes": len(seeds), "successes": n_ok, "success_rate": n_ok / len(seeds),
        "episodes_written": n_written, "steps": steps, "wall_s": round(wall, 2),
        "demos_per_min": round(60.0 * len(seeds) / wall, 2), "workers": args.workers,
        "cameras": cameras, "depth": args.depth, "out": os.path.abspath(args.out),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"collected {args.env}: success {n_ok}/{len(seeds)} ({100 * summary['success_rate']:.1f}%), "
              f"{steps} steps, {n_written} episodes written to {args.out}, {wall:.1f} s "
              f"({summary['demos_per_min']} demos/min, {args.workers} worker(s))")
    return 0
