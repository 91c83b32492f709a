"""Which observation answered each recorded action? Re-run the Lift scripted expert on a dataset's states.

For every episode the expert (sim/experts.py, the one `collect` and the scripted teleop device use) is
run frame by frame on the recorded states, e_t = expert(o_t), and each recorded action a_t is compared
with e_t (the action answers its own frame, `collect`'s pairing) and with e_{t-1} (it answers the
previous frame: a one-tick lag). Used for the training-from-recordings comparison (docs/results.md).

    python -m bench.check_action_alignment DATASET [DATASET ...] [--tol 1e-3] [--out FILE.json]
"""
from __future__ import annotations

import argparse

import numpy as np

from bench import emit

from policy_stack.data.reader import LeRobotDatasetReader


def expert_answers(episode: dict, env: str = "lift") -> np.ndarray:
    """(frames, action dim): the scripted expert's answer to each frame's state, run in frame order (its
    phase machine advances once per frame, as when it drove the episode)."""
    from sim.envs import resolve_task
    from sim.experts import make_expert
    objects = dict(resolve_task(env).objects)       # project name -> the expert's key prefix
    expert = make_expert(env, rng=np.random.default_rng(0))
    answers = []
    for t in range(len(episode["action"])):
        raw = {"robot0_eef_pos": np.asarray(episode["robot0_eef_pos"][t], np.float64),
               "robot0_eef_quat": np.asarray(episode["robot0_eef_quat"][t], np.float64)}
        for name, prefix in objects.items():
            raw[f"{prefix}_pos"] = np.asarray(episode[f"{name}_pos"][t], np.float64)
            raw[f"{prefix}_quat"] = np.asarray(episode[f"{name}_quat"][t], np.float64)
        answers.append(expert.act_from_state(raw, None))
    return np.asarray(answers, np.float64)


def check(path: str, tol: float) -> dict:
    ds = LeRobotDatasetReader(path)
    same = prev = frames = prev_frames = first_same = 0
    for ep in range(ds.num_episodes):
        e = ds.episode(ep)
        answers = expert_answers(e)
        a = np.asarray(e["action"], np.float64)
        hit = np.abs(a - answers).max(axis=1) <= tol
        same += int(hit.sum())
        first_same += int(hit[0])
        frames += len(a)
        if len(a) > 1:
            prev += int((np.abs(a[1:] - answers[:-1]).max(axis=1) <= tol).sum())
            prev_frames += len(a) - 1
    return {"dataset": path, "episodes": ds.num_episodes, "frames": frames, "tol": tol,
            "action_answers_own_frame": round(same / max(frames, 1), 4),
            "action_answers_previous_frame": round(prev / max(prev_frames, 1), 4),
            "first_frame_answers_itself": f"{first_same}/{ds.num_episodes}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="+")
    p.add_argument("--tol", type=float, default=1e-3, help="max |difference| per dimension counted as equal")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    result = [check(d, args.tol) for d in args.datasets]
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
