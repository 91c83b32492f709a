"""bench_kite's baseline modes (one function per row, run in bench_kite's worker processes):

  dp       the language-conditioned Diffusion Policy (`--dp-policy`, default dp_lang_multi_cube): privileged
           low-dim state + the instruction, trained on the same demos as KITE's skills;
  kite_dp  KITE's grounding (`--policy`) + the learned keypoint-conditioned Diffusion Policy skill
           (`--skill-policy`, default kite_skill_dp) instead of the primitives.
Both come from policy_stack/cli/evaluate_kite_baselines.py and report what a `kite` row reports.
"""
from __future__ import annotations

import time

MODES = ("dp", "kite_dp")


def baseline_row(mode: str, kite_policy: str, dp_policy: str, skill_policy: str, task: str, split: str,
                 episodes: int, seed: int) -> dict:
    from policy_stack.cli.evaluate_kite_baselines import evaluate_dp, evaluate_kite_learned

    t0 = time.perf_counter()
    if mode == "dp":
        out = evaluate_dp(dp_policy, task, split, episodes, seed, progress=False)
    elif mode == "kite_dp":
        out = evaluate_kite_learned(kite_policy, skill_policy, task, split, episodes, seed, progress=False)
    else:
        raise ValueError(f"baseline mode {mode!r} not in {MODES}")
    row = dict(out["splits"][split])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    row["policy"] = out["policy"]
    return row


def merge(paths: list[str]) -> dict:
    """Several bench_kite JSONs (e.g. one per row and seed block, run in waves so that a deadline keeps
    every finished block) -> one {"runs": [...commands], "rollouts": {row: summary over all episodes}}."""
    import json
    import sys

    from policy_stack.cli.evaluate_kite import _summary

    rows: dict[str, list] = {}
    runs = []
    for p in paths:
        d = json.loads(open(p).read())
        runs.append({"file": p, "command": d.get("command"), "wall_s": d.get("wall_s"),
                     "load_avg_start": d.get("machine", {}).get("load_avg_start")})
        for name, row in d.get("rollouts", {}).items():
            rows.setdefault(name, []).append(row)
    out = {"runs": runs, "rollouts": {}}
    for name, parts in sorted(rows.items()):
        episodes = sorted((r for part in parts for r in part["rows"]), key=lambda r: r["seed"])
        seeds = [r["seed"] for r in episodes]
        if len(set(seeds)) != len(seeds):
            print(f"merge: {name} has repeated seeds", file=sys.stderr)
        # the grounding scores are per part; pool them as the row's summary would
        scores_summary = {k: [p.get(k) for p in parts] for k in ("correct_object_rate", "groundings_target_visible")}
        s = _summary(episodes, [])
        visible = [(p["correct_object_rate"], p["groundings_target_visible"]) for p in parts
                   if p.get("correct_object_rate") is not None]
        n_vis = sum(v for _, v in visible)
        s["correct_object_rate"] = sum(r * v for r, v in visible) / n_vis if n_vis else None
        s["groundings_target_visible"] = n_vis
        s["parts"] = scores_summary
        s["seeds"] = seeds
        s["rows"] = episodes
        out["rollouts"][name] = s
    return out


if __name__ == "__main__":     # python -m bench.kite_baselines merge OUT.json IN.json ...
    import json
    import sys

    if len(sys.argv) < 4 or sys.argv[1] != "merge":
        raise SystemExit("usage: python -m bench.kite_baselines merge OUT.json IN.json [IN.json ...]")
    merged = merge(sys.argv[3:])
    open(sys.argv[2], "w").write(json.dumps(merged, indent=1))
    print(json.dumps({k: {kk: v[kk] for kk in ("episodes", "successes", "success_rate", "success_by_split",
                                               "correct_object_rate")}
                      for k, v in merged["rollouts"].items()}))
