"""Runs a short toy fine-tuning session (used by test_checkpoint as a subprocess to SIGKILL).

usage: run_toy_session.py OUT_DIR ALGO TOTAL_STEPS [--resume] [--sleep S]
"""
import json
import sys
from pathlib import Path

import torch  # noqa: E402

from policy_stack.rl.session import run_session  # noqa: E402

if __package__:      # imported by the tests
    from .helpers import SMALL_AGENT, demo_replay
    from .tiny_policy import TinyPolicy
    from .toy_env import PointReach
else:                # run as a script: test/ on sys.path makes the `rl` test package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    torch.set_num_threads(1)
    from rl.helpers import SMALL_AGENT, demo_replay
    from rl.tiny_policy import TinyPolicy
    from rl.toy_env import PointReach


def config(algo: str, total: int) -> dict:
    return {"algo": algo, "agent": SMALL_AGENT[algo], "total_env_steps": total, "max_episode_steps": 20,
            "checkpoint_every_env_steps": 20, "progress": False, "tensorboard": True, "seed": 3,
            "update_when": "episode_end", "utd": 1}


def main(out: str, algo: str, total: int, resume: bool, sleep: float) -> dict:
    torch.manual_seed(0)
    return run_session(config(algo, total), lambda: PointReach(max_steps=20, sleep_s=sleep), TinyPolicy(),
                       demo_replay(3), out, resume=resume)


if __name__ == "__main__":
    sleep = float(sys.argv[sys.argv.index("--sleep") + 1]) if "--sleep" in sys.argv else 0.0
    summary = main(sys.argv[1], sys.argv[2], int(sys.argv[3]), "--resume" in sys.argv, sleep)
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}))
