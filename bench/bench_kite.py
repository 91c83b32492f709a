"""KITE benchmark: grounding metrics on labelled images, end-to-end success in sim, and the oracle-keypoint
upper bound, in one run.

    python -m bench.bench_kite --policy kite_multi_cube --out runs/bench/kite.json \
        [--grounding NAME=DIR ...] [--tasks multi_cube_pick,multi_cube_stack] [--splits train,heldout_templates,...]
        [--episodes 50] [--seed 100000] [--workers 2] [--no-oracle]

Rows:
  grounding[NAME]          the checkpoint's keypoint on every row of a grounding folder (images and
                           sub-instructions it never trained on): correct-object rate (argmax inside the
                           instructed object's mask), median / p90 pixel error, median 3-D error (mm);
  rollouts[task/split/mode] mode "kite": the policy end to end; mode "oracle": the same policy with
                           ground-truth keypoints (policy-stack eval --oracle-keypoints): success rate per
                           task kind, plus the grounding scores of the keypoints used in the episodes;
                           modes "dp" (language-conditioned Diffusion Policy) and "kite_dp" (KITE grounding
                           + learned keypoint-conditioned skill): bench/kite_baselines.py, via --baselines
                           dp,kite_dp or --rows.
Rows of an env in TASK_POLICIES (pick_place_multi) use that env's checkpoint (kite_pick_place), the
others --policy; each row records the checkpoint it used.
Each rollout row is one `evaluate_kite` call (policy_stack/cli/evaluate_kite.py) in its own process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


# Tasks whose scenes the default checkpoint was not trained on: env -> the checkpoint their rows use
# (its camera pose and skills are that scene's). --task-policy ENV=CKPT overrides or adds.
TASK_POLICIES = {"pick_place_multi": "kite_pick_place"}


def policy_for(env_name: str, default: str, table: dict) -> str:
    return table.get(env_name, default)


def grounding_env(folder: str) -> str:
    return json.loads((Path(folder) / "grounding.json").read_text()).get("env", "")


def one_thread_worker() -> None:
    """Pool initializer: each row's process uses one torch thread (the rows run side by side)."""
    import torch
    torch.set_num_threads(1)


def grounding_row(policy_path: str, folder: str) -> dict:
    from policy_stack.checkpoint import load_policy
    from policy_stack.policies.kite.data import grounding_metrics, load_grounding
    from policy_stack.policies.kite.train_grounding import predict

    policy = load_policy(policy_path, "cpu")
    data = load_grounding(folder)
    t0 = time.perf_counter()
    m = grounding_metrics(predict(policy, data), data, policy.config.depth_window)
    m["wall_s"] = round(time.perf_counter() - t0, 1)
    m["folder"] = str(Path(folder).resolve())
    m["policy"] = str(policy_path)
    return m


def rollout_row(policy_path: str, task: str, split: str, oracle: bool, episodes: int, seed: int,
                baseline: tuple | None = None) -> dict:
    if baseline is not None:     # (mode, dp_policy, skill_policy): bench/kite_baselines.py
        from bench.kite_baselines import baseline_row
        mode, dp_policy, skill_policy = baseline
        return baseline_row(mode, policy_path, dp_policy, skill_policy, task, split, episodes, seed)
    from policy_stack.cli.evaluate_kite import evaluate_kite

    t0 = time.perf_counter()
    out = evaluate_kite(policy_path, task, split, episodes, seed, oracle=oracle, progress=False)
    row = dict(out["splits"][split])
    row["policy"] = str(policy_path)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="kite_multi_cube")
    ap.add_argument("--grounding", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--tasks", default="multi_cube_pick,multi_cube_stack")
    ap.add_argument("--splits", default="train")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=100000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--rows", default="", help="explicit rollout rows task/split/mode[:episodes],... (overrides "
                                                "--tasks/--splits; mode kite | oracle | dp | kite_dp)")
    ap.add_argument("--baselines", default="", help="extra rollout modes per task/split: dp,kite_dp")
    ap.add_argument("--dp-policy", default="dp_lang_multi_cube", help="mode dp: language-conditioned DP")
    ap.add_argument("--skill-policy", default="kite_skill_dp", help="mode kite_dp: keypoint-conditioned DP skill")
    ap.add_argument("--task-policy", action="append", default=[], metavar="ENV=CHECKPOINT",
                    help=f"checkpoint for one env's rows (default {TASK_POLICIES})")
    ap.add_argument("--out", default="runs/bench/kite.json")
    args = ap.parse_args()
    task_policies = dict(TASK_POLICIES, **dict(v.split("=", 1) for v in args.task_policy))
    from bench.kite_baselines import MODES as BASELINE_MODES

    def baseline_of(mode: str):
        if mode in ("kite", "oracle"):
            return None
        if mode not in BASELINE_MODES:
            raise SystemExit(f"baseline mode {mode!r} not in {BASELINE_MODES}")
        return (mode, args.dp_policy, args.skill_policy)

    t0 = time.perf_counter()
    result = {"command": " ".join(["python -m bench.bench_kite", *sys.argv[1:]]), "policy": args.policy,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
              "grounding": {}, "rollouts": {}}
    # Every row, grounding or rollout, is one job in one pool of --workers processes: the rollout rows in
    # the order given (put the longest first), then the grounding rows, so that the pool stays busy.
    jobs = []                                     # (section, name, function, args)
    for spec in [r for r in args.rows.split(",") if r]:
        name, _, n = spec.partition(":")
        task, split, mode = name.split("/")
        if mode not in ("kite", "oracle", *BASELINE_MODES):
            raise SystemExit(f"--rows {spec!r}: mode must be one of kite, oracle, {', '.join(BASELINE_MODES)}")
        jobs.append(("rollouts", name, rollout_row, (policy_for(task, args.policy, task_policies), task, split,
                                                     mode == "oracle", int(n or args.episodes), args.seed,
                                                     baseline_of(mode))))
    for task in [t for t in args.tasks.split(",") if t and not args.rows]:
        for split in [s for s in args.splits.split(",") if s]:
            for oracle in ((False,) if args.no_oracle else (False, True)):
                jobs.append(("rollouts", f"{task}/{split}/{'oracle' if oracle else 'kite'}", rollout_row,
                             (policy_for(task, args.policy, task_policies), task, split, oracle, args.episodes,
                              args.seed)))
            for mode in [m for m in args.baselines.split(",") if m]:
                jobs.append(("rollouts", f"{task}/{split}/{mode}", rollout_row,
                             (args.policy, task, split, False, args.episodes, args.seed, baseline_of(mode))))
    for spec in args.grounding:                   # after the episodes: shorter, they fill the gaps
        name, folder = spec.split("=", 1)
        jobs.append(("grounding", name, grounding_row,
                     (policy_for(grounding_env(folder), args.policy, task_policies), folder)))
    from policy_stack.persist import write_json_atomic
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        # written after every finished row, so a run stopped at a deadline keeps what it measured
        done = sum(len(result[k]) for k in ("grounding", "rollouts"))
        result["complete"] = done == len(jobs)
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        result["machine"]["load_avg_end"] = os.getloadavg()
        write_json_atomic(out, result, indent=1)

    save()
    with ProcessPoolExecutor(max_workers=max(1, args.workers), initializer=one_thread_worker) as pool:
        futures = {pool.submit(fn, *a): (section, name) for section, name, fn, a in jobs}
        for fut in as_completed(futures):
            (section, name), row = futures[fut], fut.result()
            result[section][name] = row
            if section == "grounding":
                print(f"grounding {name}: {json.dumps(row)}", file=sys.stderr, flush=True)
            else:
                print(f"rollouts {name}: success {row['success_rate']}, correct {row['correct_object_rate']}, "
                      f"{row.get('wall_s')} s", file=sys.stderr, flush=True)
            save()
    for section in ("grounding", "rollouts"):      # the order asked for, not the order finished
        result[section] = {name: result[section][name] for s, name, _, _ in jobs if s == section}
    save()
    print(json.dumps({k: v for k, v in result.items() if k != "rollouts"} | {
        "rollouts": {k: {kk: v[kk] for kk in ("episodes", "success_rate", "success_by_kind", "correct_object_rate",
                                              "pixel_error_px_median", "error_3d_mm_median")}
                     for k, v in result["rollouts"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
