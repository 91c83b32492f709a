"""`policy-stack eval`: roll a policy checkpoint out in simulation and report success and latency.

    policy-stack eval --env lift --policy CKPT --episodes 50 --seed 100000 --sampler rti --steps 3 --json

The env is built from the checkpoint's observation spec (which cameras, image size, depth), so one
command works for low-dim and RGB-D policies. Rollouts run in `--workers` processes; the rollout loop
itself is sim-free (policy_stack/train/rollout.py) and receives the env factory from here.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import tempfile
from pathlib import Path

DEFAULT_SEED = 100000   # DP's test_start_seed: far from the seeds `policy-stack collect` uses
SAMPLERS = ("ddpm", "ddim", "rti", "ebt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="lift", help="lift | pick_place_can | stack | nut_assembly_square")
    p.add_argument("--policy", default=None, help="checkpoint folder (default: the shipped Lift policy)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="first episode seed (episode k: seed+k)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="diffusion: ddpm | ddim | rti; ebt: ebt (default: the checkpoint's)")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps per call (rti: per warm tick) or EBT optimisation steps")
    p.add_argument("--action-steps", type=int, default=None, metavar="K",
                   help="actions executed from each chunk before re-planning (default: the checkpoint's Ta; "
                        "1 = re-plan every control tick, as the ROS 2 inference node does)")
    p.add_argument("--workers", type=int, default=1, help="rollout processes")
    p.add_argument("--max-steps", type=int, default=None, help="episode length cap (default: env horizon)")
    p.add_argument("--video", default=None, metavar="DIR", help="write one agentview MP4 per episode here")
    p.add_argument("--backend", choices=["torch", "onnx", "cuda_graph"], default="torch")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true")
    # KITE checkpoints (policy_stack/cli/evaluate_kite.py)
    p.add_argument("--instruction-split", default="train",
                   help="language tasks: train | heldout (the three held-out splits) | all | a split name")
    p.add_argument("--oracle-keypoints", action="store_true",
                   help="kite: ground-truth keypoints instead of the grounding model (upper bound)")


# ---------------------------------------------------------------------------- factories (picklable)
def env_kwargs_for(obs_spec: dict, video: bool) -> dict:
    """make_env arguments that produce every key the policy reads (and agentview for --video).
    obs_spec: {key: FeatureSpec}."""
    cameras, size, depth = [], 84, False
    for key, spec in obs_spec.items():
        shape = spec.shape
        if key.endswith("_rgb"):
            cameras.append(key[: -len("_rgb")])
            size = int(shape[0])
        elif key.endswith("_depth"):
            depth = True
            size = int(shape[0])
    if video and "agentview" not in cameras:
        cameras.append("agentview")
    return {"cameras": tuple(cameras), "image_size": size, "depth": depth}


def make_sim_env(env_name: str, env_kwargs: dict, seed=None):
    from sim.envs import make_env   # lazy: only this verb pays for robosuite

    return make_env(env_name, seed=seed, **env_kwargs)


def load_configured_policy(path, sampler=None, steps=None, backend="torch", device="auto", action_steps=None):
    """Load a checkpoint and apply sampler/steps/backend/action steps; errors name the bad value."""
    from policy_stack.checkpoint import load_policy

    policy = load_policy(path, device)
    if sampler is not None or steps is not None:
        policy.set_sampler(sampler, steps)
    if action_steps is not None:
        import dataclasses
        limit = policy.config.horizon - policy.config.n_obs_steps + 1
        if not 1 <= action_steps <= limit:
            raise ValueError(f"--action-steps must be in [1, {limit}] for this checkpoint, got {action_steps}")
        policy.config = dataclasses.replace(policy.config, n_action_steps=int(action_steps))
    if backend != "torch":
        policy.set_backend(backend)
    return policy


class SimEvaluator:
    """The trainer's periodic evaluation: EMA checkpoint -> `episodes` rollouts -> summary dict.
    Picklable (plain fields) so rollouts can use worker processes."""

    def __init__(self, env: str, episodes: int, workers: int = 1, max_steps=None, seed: int = DEFAULT_SEED):
        from sim.envs import resolve_task

        self.env = resolve_task(env).name   # fail at start-up, not after an hour of training
        self.episodes, self.workers, self.max_steps, self.seed = int(episodes), int(workers), max_steps, int(seed)

    def __call__(self, checkpoint, step: int) -> dict:
        from policy_stack.checkpoint import read_config
        from policy_stack.spaces import obs_spec_from_dict
        from policy_stack.train.rollout import evaluate, summarize

        spec = obs_spec_from_dict(read_config(checkpoint)["obs_spec"])
        env_factory = functools.partial(make_sim_env, self.env, env_kwargs_for(spec, False))
        policy_factory = functools.partial(load_configured_policy, str(checkpoint), None, None, "torch", "cpu")
        seeds = [self.seed + k for k in range(self.episodes)]
        results = evaluate(env_factory, policy_factory, seeds, workers=self.workers, max_steps=self.max_steps)
        return summarize(results)


def run(args) -> int:
    from policy_stack.checkpoint import DEFAULT_CHECKPOINT
    from policy_stack.train.rollout import evaluate, results_to_json, summarize
    from sim.envs import resolve_task

    env_name = resolve_task(args.env).name
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    path = args.policy or str(DEFAULT_CHECKPOINT)
    from policy_stack.checkpoint import read_config, resolve_checkpoint
    folder = resolve_checkpoint(path)    # a missing folder is reported by the load below, with the shipped names
    if folder.is_dir() and read_config(folder)["policy_type"] == "kite":   # success + grounding metrics per split
        from policy_stack.cli import evaluate_kite
        return evaluate_kite.run(args)
    # Load once here: a missing/corrupt checkpoint or a bad --sampler fails before any env starts.
    probe = load_configured_policy(path, args.sampler, args.steps, "torch", args.device, args.action_steps)
    env_kwargs = env_kwargs_for(probe.obs_spec, bool(args.video))
    if args.backend not in probe.backends:
        raise ValueError(f"--backend {args.backend}: {probe.policy_type} policies run on {' | '.join(probe.backends)}")
    with contextlib.ExitStack() as cleanup:
        onnx_dir = None
        if args.backend == "onnx":   # export once, then every worker opens the same files
            # Removed when evaluation ends, however it ends (error, Ctrl-C): nothing accumulates in /tmp.
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="eval_onnx_"))
            onnx_dir = str(probe.export_onnx(Path(tmp)))
            policy_factory = functools.partial(_onnx_policy, path, args.sampler, args.steps, args.device, onnx_dir,
                                               args.action_steps)
        else:
            policy_factory = functools.partial(load_configured_policy, path, args.sampler, args.steps, "torch",
                                               args.device, args.action_steps)
        seeds = [args.seed + k for k in range(args.episodes)]
        env_factory = functools.partial(make_sim_env, env_name, env_kwargs)
        in_process = _onnx_policy(path, args.sampler, args.steps, args.device, onnx_dir, args.action_steps) \
            if args.backend == "onnx" and args.workers <= 1 else probe
        results = evaluate(env_factory, policy_factory, seeds, workers=args.workers, max_steps=args.max_steps,
                           video_dir=args.video, progress=not args.no_progress, policy=in_process)
    summary = summarize(results)
    summary.update(env=env_name, policy=path, policy_type=probe.policy_type, backend=args.backend,
                   sampler=probe.sampler_name,
                   workers=args.workers, seed=args.seed,
                   action_steps=int(probe.config.n_action_steps))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{env_name}: success {summary['successes']}/{summary['episodes']} ({summary['success_rate']:.0%}), "
              f"latency p50 {summary['latency_ms_p50']:.1f} ms, p99 {summary['latency_ms_p99']:.1f} ms, "
              f"{summary['steps_per_tick']:.1f} steps/tick")
        for r in results_to_json(results):
            print(f"  seed {r['seed']}: {'success' if r['success'] else 'fail'} in {r['env_steps']} steps",
                  file=sys.stderr)
    return 0


def _onnx_policy(path, sampler, steps, device, onnx_dir, action_steps=None):
    policy = load_configured_policy(path, sampler, steps, "torch", device, action_steps)
    policy.set_backend("onnx", onnx_dir=onnx_dir)
    return policy
