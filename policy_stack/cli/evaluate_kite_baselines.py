"""End-to-end evaluation of KITE's learned baselines on the language tasks (bench_kite modes `dp`, `kite_dp`).

- `evaluate_dp`: the language-conditioned Diffusion Policy (`dp_lang_multi_cube`): low-dim observations
  (robot state, cube poses, cube colour and size: privileged state) plus `obs["instruction"]`; it
  executes Ta actions per plan, as `policy-stack eval` does.
- `evaluate_kite_learned`: KITE's grounding model (a kite checkpoint) + the keypoint-conditioned
  Diffusion Policy as the skill (`kite_skill_dp`; policies/kite/learned_skill.py). Its groundings are
  scored like `evaluate_kite`'s (correct object, pixel and 3-D error) by the same recorder.

Both return `evaluate_kite`'s structure ({"splits": {split: summary}}), with the same success rule
(instructed objects only; touching another cube fails) and the same seeds, so the rows compare.
"""
from __future__ import annotations

import sys


def _episodes(env, actor, episodes: int, seed: int, desc: str, progress: bool, scores_of=None):
    from tqdm import tqdm

    from policy_stack.episode import run_episode

    rows, scores = [], []
    for k in tqdm(range(episodes), desc=desc, disable=not progress, file=sys.stderr):
        a = actor() if callable(actor) and not hasattr(actor, "act") else actor
        rec = run_episode(env, a, seed + k, None, record_obs=False)
        ep = env.episode
        rows.append({"seed": seed + k, "success": bool(rec["episode_success"]), "kind": ep.kind, "split": ep.split,
                     "instruction": ep.instruction, "failure": env._failure, "steps": rec["length"]})
        if scores_of is not None:
            scores.extend(scores_of(a))
    return rows, scores


def evaluate_dp(checkpoint: str, env_name: str, split: str, episodes: int, seed: int, progress: bool = True,
                device: str = "cpu") -> dict:
    from policy_stack.checkpoint import load_policy
    from policy_stack.cli.evaluate_kite import _summary, resolve_splits
    from sim.envs import make_env

    policy = load_policy(checkpoint, device)
    if not getattr(policy.config, "language_conditioning", False):
        raise ValueError(f"{checkpoint}: not a language-conditioned diffusion checkpoint")
    out = {"env": env_name, "policy": str(checkpoint), "policy_type": "dp_language", "seed": seed, "splits": {}}
    for sp in resolve_splits(split):
        env = make_env(env_name, instruction_split=sp)
        try:
            rows, _ = _episodes(env, policy, episodes, seed, f"dp eval {sp}", progress)
        finally:
            env.close()
        out["splits"][sp] = dict(_summary(rows, []), rows=rows)
    return out


def evaluate_kite_learned(kite_checkpoint: str, skill_checkpoint: str, env_name: str, split: str, episodes: int,
                          seed: int, oracle: bool = False, progress: bool = True, device: str = "cpu") -> dict:
    from policy_stack.checkpoint import load_policy
    from policy_stack.cli.evaluate_kite import GroundingRecorder, _summary, resolve_splits
    from policy_stack.policies.kite.learned_skill import KiteLearnedSkillPolicy
    from sim.envs import make_env

    policy = KiteLearnedSkillPolicy(load_policy(kite_checkpoint, device), load_policy(skill_checkpoint, device))
    camera = policy.config.grounding_camera
    size = int(policy.config.image_shape[0])
    out = {"env": env_name, "policy": f"{kite_checkpoint} + {skill_checkpoint}", "policy_type": "kite_dp",
           "seed": seed, "oracle_keypoints": bool(oracle), "splits": {}}
    for sp in resolve_splits(split):
        env = make_env(env_name, cameras=(camera,), image_size=size, depth=True, instruction_split=sp)
        try:
            rows, scores = _episodes(env, lambda: GroundingRecorder(policy, env, camera, oracle), episodes, seed,
                                     f"kite_dp eval {sp}", progress, scores_of=lambda rec: rec.scores)
        finally:
            env.close()
        out["splits"][sp] = dict(_summary(rows, scores), rows=rows)
    return out
