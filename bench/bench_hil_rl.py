"""RL fine-tuning from human interventions (HIL-SERL style) vs the same run without them, on Lift.

    nice python -m bench.bench_hil_rl --work runs/bench/hil_rl            # resumable; rerun to continue
    nice python -m bench.bench_hil_rl --work /tmp/hil_smoke --smoke       # the pipeline in minutes

Protocol (all in-process sim, the same replay and session code a `finetune --env ros` run uses):
1. a weak base policy: a small Diffusion policy (UNet (32, 64), 4 DDIM steps) trained briefly on a few
   noisy, suboptimal scripted Lift demos (`policy-stack collect`, then trained in process: base_policy()), evaluated with
   `policy-stack eval` on unseen seeds ("before");
2. two EXPO sessions (finetune's `cpu` preset, UTD 1 at episode ends, the demos as offline replay),
   same seed, same episode seeds:
   - `interventions`: during the first K episodes a scripted operator (the task's scripted expert, no
     noise) takes over at step `--takeover-at` and drives to the end of the episode, as a person who
     sees the policy stall would (policy_stack/rl/interventions.py). Its rows are flagged, copied to
     the demo store and cloned into the base policy (intervention_bc);
   - `no_interventions`: the agent alone throughout;
3. "after": each run's success over the episodes after K (the agent alone in both runs), and an
   `eval` of each run's fine-tuned base policy (the Q-free policy, the one a deployment would load).
Both runs go side by side, one torch thread each. Every stage resumes (sessions from their
checkpoints), results are rewritten atomically after each stage.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import RUNS
from bench.bench_rl import cli, log
from policy_stack.persist import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
RUN_NAMES = ("interventions", "no_interventions")
# The base policy: bench_rl's small UNet (32, 64) with 4 DDIM steps (cheap to act and to update on a CPU).
BASE_CONFIG = dict(n_obs_steps=2, horizon=16, n_action_steps=8, down_dims=(32, 64), step_embed_dim=32, n_groups=8,
                   sampler_steps=4, device="cpu")


def base_policy(a, work: Path, results: dict) -> Path:
    """Collect noisy demos with `policy-stack collect`, then train the small base policy IN PROCESS:
    `policy.loss` on the demos' stride-1 windows (the offline replay rows, the same windows training
    uses), AdamW at a constant `--base-lr`, `--train-steps` steps, one torch thread. Why not
    `policy-stack train`: here it ran at 1.6-4.7 s per step (measured with 6 demos while the box was
    loaded); in process the same loss step took 2.9 s with 2 torch threads and 0.08 s with 1 (two
    threads on two busy cores spin-wait on each other)."""
    demos, base = work / "demos", work / "base"
    if not (demos / "meta" / "info.json").is_file():
        cli("collect", "--env", "lift", "--episodes", a.demos, "--noise", a.demo_noise, "--suboptimal", a.suboptimal,
            "--seed", 1000, "--out", demos, "--json", capture_json=True)
    if not (base / "config.json").is_file():
        import numpy as np
        import torch

        from policy_stack.checkpoint import save_checkpoint
        from policy_stack.cli.finetune import offline_replay
        from policy_stack.data.reader import LeRobotDatasetReader
        from policy_stack.policies import make_policy
        from sim.envs import default_action_space

        torch.manual_seed(a.seed)
        torch.set_num_threads(1)     # 2 threads on 2 busy cores spin-wait: 2.9 s per step measured, 1 thread 0.09 s
        stats = LeRobotDatasetReader(demos).normalization_stats()
        keys = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "cube_pos"]
        cfg = dict(BASE_CONFIG, lowdim_keys=keys, derived_features=["robot0_eef_pos-cube_pos"])
        policy = make_policy("diffusion", cfg, {k: stats[k] for k in keys + ["action"]}, default_action_space())
        rows = offline_replay(str(demos), policy, 0.99)
        opt = torch.optim.AdamW(policy.parameters(), lr=a.base_lr, weight_decay=1e-6)
        rng, t0 = np.random.default_rng(a.seed), time.perf_counter()
        policy.train()
        for step in range(a.train_steps):
            b = rows.sample(64, rng, sources="offline")
            loss = policy.loss({"obs": {k: torch.as_tensor(v) for k, v in b["obs"].items()},
                                "action": torch.as_tensor(b["action"]), "action_is_pad": torch.as_tensor(b["action_is_pad"])})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % 250 == 0 or step == a.train_steps - 1:
                log(f"base step {step} loss {loss.item():.4f}")
        policy.eval()
        results["base_train"] = {"steps": a.train_steps, "lr": a.base_lr, "batch": 64, "windows": rows.offline.size,
                                 "wall_s": round(time.perf_counter() - t0, 1), "config": {k: list(v) if isinstance(v, tuple)
                                                                                          else v for k, v in cfg.items()}}
        save_checkpoint(policy, base, meta={"bench": "bench_hil_rl", "train_steps": a.train_steps})
    return base


def evaluate(a, policy: Path) -> dict:
    t0 = time.perf_counter()
    ev = cli("eval", "--env", "lift", "--policy", policy, "--episodes", a.eval_episodes, "--seed", 100000,
             "--device", "cpu", "--max-steps", a.max_episode_steps, "--json", "--no-progress", capture_json=True)
    out = {k: ev.get(k) for k in ("success_rate", "episodes", "mean_length") if k in ev}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


# ------------------------------------------------------------------------------ one session
def run_one(a, work: Path, name: str) -> dict:
    """One EXPO session in this process (the parent starts one process per run)."""
    import torch

    from policy_stack.checkpoint import load_policy, save_checkpoint
    from policy_stack.cli.finetune import offline_replay, sim_env_factory
    from policy_stack.rl.interventions import InterventionEnv
    from policy_stack.rl.presets import agent_preset, session_preset
    from policy_stack.rl.session import SessionConfig, run_session

    torch.set_num_threads(1)
    out = work / "runs" / name
    policy = load_policy(str(work / "base"), device="cpu")
    cfg = SessionConfig.from_dict({
        "algo": "expo", "total_env_steps": a.budget, "max_episode_steps": a.max_episode_steps, "seed": a.seed,
        "checkpoint_every_env_steps": a.checkpoint_every, "success_window": 10, "progress": False,
        "tensorboard": False, **session_preset("cpu", "expo"),
        "agent": {**agent_preset("cpu", "expo"), "intervention_bc": a.intervention_bc}})
    inner = sim_env_factory("lift", policy, None, cfg.max_episode_steps)
    with_operator = name == "interventions"

    def factory():
        env = inner()
        if not with_operator:
            return env
        from sim.experts import make_expert
        operator = make_expert("lift", rng=a.seed).bind(env.env)     # SuccessEnv -> SimEnv (privileged state)
        return InterventionEnv(env, operator, lambda ep, t, obs: ep < a.intervene_episodes and t >= a.takeover_at)

    resume = (out / "checkpoints").is_dir()
    replay = None if resume else offline_replay(str(work / "demos"), policy, cfg.gamma)
    summary = run_session(cfg, factory, policy, replay, out, resume=resume)
    save_checkpoint(policy, out / "policy", meta={"finetuned_by": "expo", "bench": "bench_hil_rl", "run": name})
    return summary


def after_k(curve: list, k: int) -> dict:
    """Success of the episodes after the first k (the agent alone in both runs)."""
    s = [bool(x[1]) for x in curve[k:]]
    return {"episodes": len(s), "successes": int(sum(s)), "rate": round(sum(s) / len(s), 3) if s else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=RUNS / "hil_rl")
    p.add_argument("--budget", type=int, default=3000, help="online env steps per run")
    p.add_argument("--demos", type=int, default=6)
    p.add_argument("--demo-noise", type=float, default=0.3)
    p.add_argument("--suboptimal", type=float, default=0.3)
    p.add_argument("--train-steps", type=int, default=1500, help="base policy optimizer steps (short: a weak base)")
    p.add_argument("--base-lr", type=float, default=3e-4)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--max-episode-steps", type=int, default=120)
    p.add_argument("--intervene-episodes", type=int, default=8, help="K: episodes with a scripted takeover")
    p.add_argument("--takeover-at", type=int, default=16, help="step of the episode at which the operator takes over")
    p.add_argument("--intervention-bc", type=float, default=1.0)
    p.add_argument("--checkpoint-every", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-final-eval", action="store_true", help="skip the eval of the fine-tuned policies")
    p.add_argument("--smoke", action="store_true", help="tiny everything: checks the pipeline")
    p.add_argument("--only-run", choices=RUN_NAMES, help=argparse.SUPPRESS)   # child process of the parent
    a = p.parse_args(argv)
    if a.smoke:
        a.budget, a.demos, a.train_steps, a.eval_episodes = 120, 2, 20, 1
        a.max_episode_steps, a.intervene_episodes, a.takeover_at, a.checkpoint_every = 40, 1, 5, 60
    work = a.work.resolve()
    if a.only_run:
        print(json.dumps(run_one(a, work, a.only_run)))
        return 0

    work.mkdir(parents=True, exist_ok=True)
    res_path = work / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    results["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "only_run"}
    results["machine"] = f"{os.cpu_count()} cores, torch 1 thread per run, loadavg at start {os.getloadavg()}"
    t_all = time.perf_counter()
    os.environ["OMP_NUM_THREADS"] = "1"          # every `policy-stack` stage: one torch thread (base_policy doc)
    base = base_policy(a, work, results)
    write_json_atomic(res_path, results, indent=1)
    if "base_eval" not in results:
        results["base_eval"] = evaluate(a, base)
        write_json_atomic(res_path, results, indent=1)
    log(f"base policy: {results['base_eval']}")

    # Both sessions side by side, each its own process (one torch thread each).
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), OMP_NUM_THREADS="1")
    argv_child = list(argv if argv is not None else sys.argv[1:])
    procs, t0 = {}, time.perf_counter()
    for name in RUN_NAMES:
        log(f"session {name}")
        procs[name] = subprocess.Popen([sys.executable, "-m", "bench.bench_hil_rl", *argv_child, "--work", str(work),
                                        "--only-run", name], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    for name, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"session {name} failed with exit code {proc.returncode}")
        s = json.loads(stdout.strip().splitlines()[-1])
        results.setdefault("runs", {})[name] = {
            "env_steps": s["env_steps"], "episodes": s["episodes"], "updates": s["updates"],
            "intervention_steps": s.get("intervention_steps", 0), "replay": s["replay"], "wall_s": s["wall_s"],
            "success_first_k": after_k([[0, x[1]] for x in s["curve"][: a.intervene_episodes]], 0),
            "success_after_k": after_k(s["curve"], a.intervene_episodes),
            "curve": [int(x[1]) for x in s["curve"]]}
    results["sessions_wall_s"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(res_path, results, indent=1)
    if not a.no_final_eval:
        for name in RUN_NAMES:
            key = f"final_eval_{name}"
            if key not in results:
                results[key] = evaluate(a, work / "runs" / name / "policy")
                write_json_atomic(res_path, results, indent=1)
    results["total_wall_s_this_sitting"] = round(time.perf_counter() - t_all, 1)
    write_json_atomic(res_path, results, indent=1)
    log(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
