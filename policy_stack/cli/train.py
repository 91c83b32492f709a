"""`policy-stack train`: train a policy from a LeRobot v3 dataset into a checkpoint folder.

    policy-stack train --policy diffusion --data data/lift --out runs/dp_lift
    torchrun --nproc_per_node=2 -m policy_stack.cli train --policy diffusion --data ... --out ...

Rerunning the same command after a crash or kill continues from the last snapshot (--no-resume
refuses instead). Periodic rollout evaluation needs the simulator, so this module (the composition
root) builds the evaluator and hands it to the sim-free trainer in policy_stack/train.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from policy_stack.cli.overrides import parse_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="diffusion", help="policy family: diffusion | ebt | kite (default diffusion)")
    p.add_argument("--data", required=True, help="LeRobot v3.0 dataset folder (kite: a grounding folder)")
    p.add_argument("--val", default=None, help="kite: a grounding folder to report metrics on")
    p.add_argument("--out", required=True, help="checkpoint folder (created; holds tb/ and snapshots)")
    p.add_argument("--obs", default="lowdim", choices=["lowdim", "rgbd", "rgb"], help="observation set")
    p.add_argument("--cameras", nargs="+", default=["agentview", "robot0_eye_in_hand"],
                   help="cameras for --obs rgbd/rgb")
    p.add_argument("--lowdim-keys", nargs="+", default=[], help="low-dim keys (default: eef pose, gripper, objects)")
    p.add_argument("--steps", type=int, default=20000, help="optimizer steps")
    p.add_argument("--time-budget", type=float, default=0.0, metavar="MINUTES",
                   help="stop planning steps beyond this wall-clock budget: the first steps are timed and "
                        "--steps is lowered so the LR schedule completes in time (0 = off)")
    p.add_argument("--batch", type=int, default=256, help="batch size per process")
    p.add_argument("--lr", type=float, default=None, help="peak LR (default: the policy config's, 1e-4)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None, help="LR warmup steps (default: policy config's, 500)")
    p.add_argument("--grad-clip", type=float, default=None,
                   help="max grad norm, 0 = off (default: the policy config's: diffusion 0 as DP, ebt 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=1000, help="snapshot every K steps (atomic)")
    p.add_argument("--keep", type=int, default=2, help="snapshots kept under OUT/checkpoints")
    p.add_argument("--eval-every", type=int, default=5000, help="rollout evaluation every K steps (0 = never)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-workers", type=int, default=1, help="processes for the rollouts")
    p.add_argument("--eval-max-steps", type=int, default=0, help="episode cap for rollouts (0 = env default)")
    p.add_argument("--env", default=None, help="env for rollouts (default: the dataset's info.json 'env')")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="policy config field, VALUE as JSON (e.g. --set down_dims=[32,64,128]); repeatable")
    p.add_argument("--init", default="", metavar="CKPT",
                   help="fine-tune: start from this checkpoint (folder or shipped name): its architecture, weights "
                        "and normalization; the optimizer settings come from this command")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue a run found in --out")
    p.add_argument("--find-unused-parameters", action="store_true", help="DDP option for partial losses")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")


def config_from_args(args):
    from policy_stack.train.config import TrainConfig

    return TrainConfig(
        policy=args.policy, data=str(Path(args.data).resolve()), out=str(Path(args.out).resolve()),
        obs=args.obs, cameras=list(args.cameras), lowdim_keys=list(args.lowdim_keys), steps=args.steps,
        batch=args.batch, time_budget_s=60.0 * max(0.0, args.time_budget), lr=args.lr,
        weight_decay=args.weight_decay, warmup=args.warmup,
        grad_clip=args.grad_clip, seed=args.seed, ckpt_every=max(1, args.ckpt_every), keep=max(1, args.keep),
        eval_every=max(0, args.eval_every), eval_episodes=args.eval_episodes, eval_workers=args.eval_workers,
        eval_max_steps=args.eval_max_steps, env=args.env, workers=args.workers, log_every=max(1, args.log_every),
        device=args.device, progress=not args.no_progress, resume="never" if args.no_resume else "auto",
        find_unused_parameters=args.find_unused_parameters, policy_overrides=parse_overrides(args.overrides),
        init=args.init)


def make_evaluator(cfg):
    """A rollout evaluator for the trainer, or None (no env known, or evaluation switched off)."""
    if cfg.eval_every <= 0 or cfg.eval_episodes <= 0:
        return None
    env = cfg.env
    if env is None:
        # `policy-stack collect` names the env in meta/policy_stack.json (beside LeRobot's info.json)
        for name in ("policy_stack.json", "info.json"):
            try:
                env = json.loads((Path(cfg.data) / "meta" / name).read_text()).get("env")
            except (OSError, json.JSONDecodeError):
                env = None
            if env:
                break
    if env is None:
        print("train: no --env given and the dataset names none; rollout evaluation is off", file=sys.stderr)
        return None
    from policy_stack.cli.evaluate import SimEvaluator

    return SimEvaluator(env, cfg.eval_episodes, workers=cfg.eval_workers, max_steps=cfg.eval_max_steps or None)


def run(args) -> int:
    if args.policy == "kite":   # trains on grounding images, not action chunks (policies/kite/build.py)
        from policy_stack.policies.kite.build import train_kite
        summary = train_kite(args.data, args.out, args.steps, args.batch, args.seed, parse_overrides(args.overrides),
                             args.device, args.val, progress=not args.no_progress)
        print(json.dumps(summary) if args.json else f"kite: checkpoint {summary['checkpoint']} "
              f"(final loss {summary['final_loss']:.4f}, {summary['wall_s']:.0f} s)")
        return 0
    from policy_stack.train.trainer import Trainer

    cfg = config_from_args(args)
    summary = Trainer(cfg, make_evaluator(cfg)).run()
    if args.json and int(__import__("os").environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":   # torchrun -m policy_stack.cli.train ... (policy_stack.cli works too)
    from policy_stack.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
