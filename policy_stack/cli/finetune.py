"""`policy-stack finetune`: an online RL fine-tuning session (EXPO, PA-RL, SAC, best-of-N).

    policy-stack finetune --algo expo --env sim:lift --policy runs/dp_lift --offline data/lift \\
        --steps 20000 --out runs/expo_lift [--randomize] [--resume] [--json]

The session loop, checkpoints, TensorBoard, the success plot and summary.json are policy_stack.rl's
`run_session` (docs/rl.md). This module only composes: it loads the policy, turns the offline
dataset into replay rows, and builds the environment (a robosuite task from sim/, optionally
domain-randomized, or the ROS-topic env from ros_nodes/rl_env.py), importing sim/ and ros_nodes/
inside the functions that need them.

Checkpoints are atomic and periodic (`--checkpoint-every` env steps, at episode boundaries); after a
crash or kill -9 the same command with `--resume` continues from the last one. At the end the
fine-tuned policy is written to OUT/policy (a normal checkpoint folder: `--policy OUT/policy` works
everywhere a checkpoint does).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from policy_stack.cli.overrides import parse_overrides
from policy_stack.persist import latest_snapshot_dir, write_json_atomic

ALGOS = ("expo", "pa-rl", "sac", "best_of_n")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algo", required=True, help=f"one of {', '.join(ALGOS)}")
    p.add_argument("--env", required=True, help="sim:<task> (sim:lift, sim:pick_place_can, ...) or ros")
    p.add_argument("--policy", required=True, help="checkpoint folder of the imitation-trained base policy")
    p.add_argument("--offline", default=None,
                   help="LeRobot v3 dataset whose episodes seed the replay (RLPD 50/50 sampling); optional")
    p.add_argument("--steps", type=int, required=True, help="online env steps in total (resume counts on)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, tb/, summary.json, plot, policy/")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--randomize", nargs="?", const="default", default=None, metavar="SPEC",
                   help="domain randomization for sim envs: a preset (default, light, strong), a JSON object "
                        "or a JSON file with RandomizationConfig fields (sim/randomization.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--utd", type=int, default=None, help="critic updates per decision (default 1: docs/rl.md)")
    p.add_argument("--max-episode-steps", type=int, default=None, help="episode cap (default: the task horizon)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="env steps between checkpoints (default 2000)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--preset", default=None, choices=["cpu", "paper"],
                   help="agent/session sizes (policy_stack/rl/presets.py, docs/rl.md): cpu = 4 x 128^2 critics, "
                        "batch 64, N = M = 4; paper = the papers' 10 x 256^3, batch 256, N = M = 8 "
                        "(default: cpu on a CPU device, paper on CUDA); --agent-set/--set override single fields")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $OMP_NUM_THREADS when set, else min(2, cores))")
    p.add_argument("--set", dest="session_set", action="append", default=[], metavar="KEY=VALUE",
                   help="SessionConfig field (policy_stack/rl/session.py), VALUE as JSON; repeatable")
    p.add_argument("--agent-set", action="append", default=[], metavar="KEY=VALUE",
                   help="the algorithm's config field (e.g. n_base=8, beta=0.05), VALUE as JSON; repeatable")
    p.add_argument("--ros-set", action="append", default=[], metavar="KEY=VALUE",
                   help="RosEnvConfig field for --env ros (ros_nodes/rl_env.py), VALUE as JSON; repeatable. "
                        "Human interventions (the sim node's teleop arbitration) are learned from by default: "
                        "--set interventions_to_offline=false / --agent-set intervention_bc=0 turn the demo-store "
                        "copy / the BC term off (docs/rl.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true")


# ------------------------------------------------------------------------------------ parsing
def parse_env(spec: str) -> tuple[str, str | None]:
    """'sim:lift' -> ('sim', 'lift'); 'ros' -> ('ros', None). ValueError names the bad value."""
    kind, _, name = spec.partition(":")
    if kind == "ros" and not name:
        return "ros", None
    if kind == "sim" and name:
        from sim.envs import resolve_task   # ValueError lists the valid task names
        return "sim", resolve_task(name).name
    raise ValueError(f"--env {spec!r}: expected sim:<task> (e.g. sim:lift, sim:pick_place_can) or ros")


def check_inputs(args) -> None:
    """Every user error we can see before loading anything heavy, each naming the bad value."""
    if args.algo not in ALGOS:
        raise ValueError(f"--algo {args.algo!r}: unknown algorithm; choose from {', '.join(ALGOS)}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    from policy_stack.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(args.policy)
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"--policy {args.policy}: not a checkpoint folder (no config.json there)")
    if args.offline is not None and not (Path(args.offline) / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"--offline {args.offline}: not a LeRobot dataset (no meta/info.json there)")


def session_config(args, horizon: int, device: str) -> dict:
    """SessionConfig fields: the preset (chosen from `device`, the policy's, unless --preset), then
    the explicit flags, then --set and --agent-set, each overriding the one before."""
    from policy_stack.rl.presets import agent_preset, preset_for_device, session_preset

    preset = args.preset or preset_for_device(device)
    cfg = {"algo": args.algo, "total_env_steps": args.steps, "seed": args.seed,
           "max_episode_steps": args.max_episode_steps or horizon,
           "progress": not args.no_progress, "tensorboard": not args.no_tensorboard,
           **session_preset(preset, args.algo)}
    if args.utd is not None:
        cfg["utd"] = args.utd
    if args.checkpoint_every is not None:
        cfg["checkpoint_every_env_steps"] = args.checkpoint_every
    cfg.update(parse_overrides(args.session_set, "--set"))
    cfg["agent"] = {**agent_preset(preset, args.algo), **cfg.get("agent", {}),
                    **parse_overrides(args.agent_set, "--agent-set")}
    return cfg


# ------------------------------------------------------------------------------ offline data
def offline_replay(dataset: str, policy, gamma: float, seed_capacity: int = 1_000_000):
    """Dataset episodes -> a Replay whose offline store holds macro-transitions (stride 1).

    Reward = the success indicator per step, the same sparse reward the online envs give (the sim
    adapter below and /episode/success over ROS), so offline and online rows share one scale.
    An episode counts as terminal when its last step is a success (collect stops there)."""
    import numpy as np

    from policy_stack.data.reader import LeRobotDatasetReader
    from policy_stack.rl.chunk_io import ChunkIO
    from policy_stack.rl.replay import Replay, transitions_from_episode

    reader = LeRobotDatasetReader(dataset)
    io = ChunkIO(policy)
    keys = list(policy.obs_spec)
    replay = Replay(seed_capacity, seed_capacity)
    for k in range(reader.num_episodes):
        ep = reader.episode(k)
        missing = [key for key in keys if key not in ep]
        if missing:
            raise ValueError(f"--offline {dataset}: episode {k} lacks observation key(s) {missing} the policy "
                             f"needs; the dataset has {sorted(ep)}")
        if "action" not in ep:
            raise ValueError(f"--offline {dataset}: no 'action' feature")
        success = np.asarray(ep.get("success", np.zeros(len(ep["action"]), bool)), bool)
        # A dataset recorded with interventions (`record --policy`) flags the operator's frames: rows wholly
        # chosen by the operator keep that flag, so the BC term treats them as online interventions.
        rows = transitions_from_episode({key: ep[key] for key in keys}, ep["action"], success.astype(np.float32),
                                        bool(success[-1]) if len(success) else False, io.To, io.Tp, io.Ta,
                                        gamma, replay.new_episode_id(), exec_start=io.exec_start,
                                        interventions=ep.get("intervention"))
        if rows:
            replay.add_offline(rows)
    if replay.offline.size == 0:
        raise ValueError(f"--offline {dataset}: no usable transitions (episodes shorter than the chunk?)")
    return replay


# -------------------------------------------------------------------------------- environments
class SuccessEnv:
    """A SimEnv seen as an RL env: sparse reward 1 on success, the episode ends at the first success
    (terminal) or at the step cap (truncated: bootstrapped). robosuite itself only ends at its horizon
    and its reward is task-specific; ending on success matches how demos were collected and how the
    sim node and a real operator report /episode/success."""

    def __init__(self, env, max_steps: int):
        self.env, self.max_steps, self.t = env, int(max_steps), 0

    def reset(self, seed: int | None = None):
        self.t = 0
        return self.env.reset(seed=seed)

    def step(self, action):
        obs, _, done, info = self.env.step(action)
        self.t += 1
        success = bool(info.get("success", False))
        truncated = not success and (done or self.t >= self.max_steps)
        info = {"success": success, "truncated": truncated}
        return obs, float(success), success or truncated, info

    def close(self):
        self.env.close()


def sim_env_factory(task: str, policy, randomize: str | None, max_steps: int):
    """A factory (the session builds the env inside its run, after checkpoint restore)."""
    cameras = sorted({k[: -len(sfx)] for k in policy.obs_spec for sfx in ("_rgb", "_depth") if k.endswith(sfx)})
    depth = any(k.endswith("_depth") for k in policy.obs_spec)
    sizes = [policy.obs_spec[k].shape[0] for k in policy.obs_spec if k.endswith(("_rgb", "_depth"))]
    rand_cfg = None
    if randomize:
        from sim.randomization import RandomizationConfig
        rand_cfg = RandomizationConfig.from_spec(randomize)   # validate before the session starts

    def factory():
        os.environ.setdefault("MUJOCO_GL", "egl")
        from sim.envs import make_env
        env = make_env(task, cameras=cameras, image_size=sizes[0] if sizes else 84, depth=depth,
                       horizon=max_steps)
        if rand_cfg is not None:
            from sim.randomization import RandomizedEnv
            env = RandomizedEnv(env, rand_cfg)
        return SuccessEnv(env, max_steps)
    return factory


def ros_env_factory(policy, overrides: dict, max_steps: int):
    from ros_nodes.rl_env import RosEnvConfig   # rclpy is imported only here, for --env ros
    cfg = RosEnvConfig.from_dict({"max_episode_steps": max_steps, **overrides})

    def factory():
        from ros_nodes.rl_env import RosRLEnv
        return RosRLEnv(policy, cfg)
    return factory


# --------------------------------------------------------------------------------------- run
def cpu_threads(requested: int | None) -> int:
    """Threads for torch on CPU. An explicit --threads wins, then $OMP_NUM_THREADS (so several sessions
    side by side, e.g. bench_rl's, can each take one core), else min(2, cores). Oversubscribing cores
    is costly here: OpenMP workers spin-wait on each other, and with 3 two-thread sessions on 2 cores
    an EXPO update took 9 s instead of 0.4-0.6 s."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be >= 1, got {requested}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return max(1, min(2, os.cpu_count() or 1))


def run(args) -> int:
    check_inputs(args)
    kind, task = parse_env(args.env)
    import torch

    from policy_stack.checkpoint import load_policy, save_checkpoint
    from policy_stack.rl.session import SessionConfig, run_session

    if args.device == "cpu":
        torch.set_num_threads(cpu_threads(args.threads))
    if args.randomize and kind != "sim":
        raise ValueError("--randomize applies to sim envs only (a real robot is randomized by reality)")
    policy = load_policy(args.policy, device=args.device)
    if kind == "sim":
        from sim.envs import resolve_task
        horizon = resolve_task(task).default_horizon
    else:
        horizon = 200
    cfg = SessionConfig.from_dict(session_config(args, horizon, str(policy.device)))
    max_steps = cfg.max_episode_steps
    factory = (sim_env_factory(task, policy, args.randomize, max_steps) if kind == "sim"
               else ros_env_factory(policy, parse_overrides(args.ros_set, "--ros-set"), max_steps))

    out = Path(args.out)
    resuming = args.resume and latest_snapshot_dir(out / "checkpoints") is not None
    # On resume the checkpoint holds the replay (online rows included): reading the dataset is wasted work.
    replay = offline_replay(args.offline, policy, cfg.gamma) if args.offline and not resuming else None
    if not resuming and replay is None:
        print("finetune: no --offline dataset; the replay starts empty (online data only)", file=sys.stderr)
    write_json_atomic(out / "finetune_args.json", {k: v for k, v in vars(args).items() if not k.startswith("_")},
                      indent=1)
    summary = run_session(cfg, factory, policy, replay, out, resume=args.resume)
    save_checkpoint(policy, out / "policy", meta={"finetuned_by": args.algo, "env": args.env,
                                                 "env_steps": summary["env_steps"], "base": str(args.policy)})
    summary["policy_checkpoint"] = str(out / "policy")
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "curve"}))
    else:
        rate = summary.get(f"success_rate_last_{cfg.success_window}")
        print(f"finetune {args.algo} on {args.env}: {summary['env_steps']} env steps, {summary['episodes']} "
              f"episodes, success (last {cfg.success_window}) {rate if rate is None else round(rate, 3)}, "
              f"{summary['wall_s']:.0f} s -> {out}", file=sys.stderr)
    return 0
