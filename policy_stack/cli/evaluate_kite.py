"""`policy-stack eval` for KITE checkpoints: end-to-end success plus grounding metrics, per split.

    policy-stack eval --env multi_cube --policy kite_multi_cube --instruction-split heldout --episodes 50 --seed 100000 --json

Each episode runs the real loop (policy_stack.episode.run_episode) in a language env. Every time the
policy grounds a sub-instruction, its keypoint is scored against the env's ground truth for the image
it grounded in: correct object (the pixel falls inside the instructed object's segmentation mask),
pixel error, and 3-D error (the lifted keypoint vs the object's labelled keypoint, mm).

`--instruction-split`: a split of sim/instructions.py (`heldout` draws the three held-out axes in turn)
or `all` (each split in turn, reported separately).
`--oracle-keypoints` replaces the grounding model's pixel by the labelled one (the rest, depth lifting,
skill parameters and primitives, unchanged): the upper bound that isolates grounding errors.
The policy receives the env's template parser as its instruction decomposition (the stand-in for the
language model KITE uses to split compound instructions); grounding each sub-instruction is the model's.
"""
from __future__ import annotations

import sys

import numpy as np



def resolve_splits(name: str) -> list[str]:
    from sim.instructions import SPLITS

    if name in SPLITS:          # "heldout" is a split of its own: the three held-out axes in turn, by seed
        return [name]
    if name == "all":
        return list(SPLITS)
    raise ValueError(f"--instruction-split {name!r}: expected all or one of {list(SPLITS)}")


class GroundingRecorder:
    """Callable actor for run_episode: steps the policy and scores each new grounding against labels."""

    def __init__(self, policy, env, camera: str, oracle: bool):
        self.policy, self.env, self.camera, self.oracle = policy, env, camera, oracle
        self.scores: list[dict] = []
        self._seen = 0

    def reset(self) -> None:
        from sim.instructions import split_instruction

        self.policy.reset()
        parse = getattr(self.env, "parse_instruction", split_instruction)   # an env with its own grammar
        self.policy.instruction_parser = lambda text: [(s.skill, s.text) for s in parse(text)]
        self.policy.keypoint_source = self._oracle_pixel if self.oracle else None
        self._seen = 0

    def _target(self, sub_index: int, obs: dict) -> tuple[dict, str]:
        gt = self.env.ground_truth(self.camera, obs)
        steps = gt["steps"]
        target = steps[min(sub_index, len(steps) - 1)][1]
        return gt["objects"][target], target

    def _oracle_pixel(self, sub_index: int, sub: str, obs: dict):
        return self._target(sub_index, obs)[0]["kp_px"]

    def __call__(self, obs: dict) -> np.ndarray:
        chunk = self.policy.act(obs)
        info = self.policy.info
        if info.get("groundings", 0) > self._seen:
            self._seen = info["groundings"]
            if info.get("keypoint_px") is not None:
                self.scores.append(self._score(info, obs))
        return chunk

    def _score(self, info: dict, obs: dict) -> dict:
        obj, target = self._target(int(info.get("sub_index", 0)), obs)
        u, v = info["keypoint_px"]
        mask = np.asarray(obj["mask"])
        h, w = mask.shape
        ui, vi = int(np.clip(round(u), 0, w - 1)), int(np.clip(round(v), 0, h - 1))
        score = {"target": target, "visible": bool(obj.get("visible", True)), "correct": bool(mask[vi, ui] > 0),
                 "pixel_error_px": float(np.hypot(u - obj["kp_px"][0], v - obj["kp_px"][1]))}
        if info.get("keypoint_base") is not None:
            score["error_3d_mm"] = float(np.linalg.norm(np.asarray(info["keypoint_base"]) - obj["kp_base"]) * 1e3)
        return score


def _summary(rows: list[dict], scores: list[dict]) -> dict:
    med = lambda xs: float(np.median(xs)) if xs else None
    kinds = sorted({r["kind"] for r in rows})
    visible = [s for s in scores if s["visible"]]
    return {
        "episodes": len(rows), "successes": int(sum(r["success"] for r in rows)),
        "success_rate": float(np.mean([r["success"] for r in rows])) if rows else None,
        "success_by_kind": {k: float(np.mean([r["success"] for r in rows if r["kind"] == k])) for k in kinds},
        "success_by_split": {s: float(np.mean([r["success"] for r in rows if r["split"] == s]))
                             for s in sorted({r["split"] for r in rows})},
        "episodes_by_kind": {k: sum(r["kind"] == k for r in rows) for k in kinds},
        "groundings": len(scores), "groundings_target_visible": len(visible),
        "correct_object_rate": float(np.mean([s["correct"] for s in visible])) if visible else None,
        "pixel_error_px_median": med([s["pixel_error_px"] for s in visible]),
        "error_3d_mm_median": med([s["error_3d_mm"] for s in visible if "error_3d_mm" in s]),
        "failures": sorted({r["failure"] for r in rows if r.get("failure")})[:10],
    }


def evaluate_kite(checkpoint: str, env_name: str, split: str, episodes: int, seed: int, oracle: bool = False,
                  max_steps: int | None = None, progress: bool = True, device: str = "cpu") -> dict:
    from tqdm import tqdm

    from policy_stack.checkpoint import load_policy
    from policy_stack.episode import run_episode
    from sim.envs import make_env

    policy = load_policy(checkpoint, device)
    camera = policy.config.grounding_camera
    size = int(policy.config.image_shape[0])
    out = {"env": env_name, "policy": str(checkpoint), "policy_type": policy.policy_type, "seed": seed,
           "oracle_keypoints": bool(oracle), "splits": {}}
    for sp in resolve_splits(split):
        env = make_env(env_name, cameras=(camera,), image_size=size, depth=True, instruction_split=sp)
        rows, scores = [], []
        try:
            for k in tqdm(range(episodes), desc=f"kite eval {sp}", disable=not progress, file=sys.stderr):
                actor = GroundingRecorder(policy, env, camera, oracle)
                rec = run_episode(env, actor, seed + k, max_steps, record_obs=False)
                ep = env.episode
                rows.append({"seed": seed + k, "success": bool(rec["episode_success"]), "kind": ep.kind,
                             "split": ep.split,
                             "instruction": ep.instruction, "failure": env._failure, "steps": rec["length"]})
                scores.extend(actor.scores)
        finally:
            env.close()
        out["splits"][sp] = dict(_summary(rows, scores), rows=rows)
    first = out["splits"][resolve_splits(split)[0]]
    out.update({k: first[k] for k in ("success_rate", "correct_object_rate", "pixel_error_px_median",
                                      "error_3d_mm_median")})
    return out


def run(args) -> int:
    import json

    result = evaluate_kite(args.policy, args.env, args.instruction_split, args.episodes, args.seed,
                           args.oracle_keypoints, args.max_steps, not args.no_progress,
                           "cpu" if args.device == "auto" else args.device)
    if args.json:
        print(json.dumps(result))
    else:
        for sp, s in result["splits"].items():
            print(f"{result['env']} [{sp}]: success {s['successes']}/{s['episodes']} ({s['success_rate']:.0%}) "
                  f"{s['success_by_kind']}, correct object {s['correct_object_rate']}, "
                  f"median px error {s['pixel_error_px_median']}, median 3-D error {s['error_3d_mm_median']} mm")
    return 0
