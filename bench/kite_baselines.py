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
    import torch
    torch.set_num_threads(1)
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
