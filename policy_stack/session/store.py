"""The session folder: what each step wrote, committed with the one atomic writer (policy_stack/persist.py).

    SESSION/session.json                  the settings (config.SessionConfig), written at the first run
    SESSION/<step>/result.json            the step's result: its presence means the step is finished
    SESSION/<step>/episodes/seed_<S>.json evaluation steps: one committed file per finished episode
    SESSION/<step>/log.txt                the child processes' logs (stderr), appended
    SESSION/summary.json, SESSION/curve.png   written after every run (report.py)
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from policy_stack import persist
from policy_stack.session.config import SessionConfig

CONFIG_FILE = "session.json"
RESULT_FILE = "result.json"


class SessionDir:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    # ------------------------------------------------------------------ settings
    def open(self, given: SessionConfig | None) -> SessionConfig:
        """The session's settings: the stored ones on a resume (`given` must agree with them on every field
        that shapes the measurement), else `given` (or the defaults), stored now."""
        path = self.root / CONFIG_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            cfg = SessionConfig.from_dict(saved)
            if given is not None:
                diff = given.differences(saved)
                if diff:
                    raise ValueError(f"session {self.root} was started with other settings ({'; '.join(diff)}); "
                                     "run it with the same settings, or use a new --dir")
                cfg.steps, cfg.device = list(given.steps), given.device
            return cfg
        cfg = given or SessionConfig()
        if cfg.domain_base == 0:
            # One block of ROS domains per session, so two sessions (or a test) on one machine do not meet.
            cfg.domain_base = random.randint(10, 90)
        persist.make_dirs(self.root)
        persist.write_json_atomic(path, cfg.to_dict())
        return cfg

    # ------------------------------------------------------------------ steps
    def step_dir(self, step: str) -> Path:
        return persist.make_dirs(self.root / step)

    def result(self, step: str) -> dict | None:
        path = self.root / step / RESULT_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def done(self, step: str) -> bool:
        return (self.root / step / RESULT_FILE).is_file()

    def write_result(self, step: str, result: dict) -> None:
        persist.write_json_atomic(self.step_dir(step) / RESULT_FILE, result)

    def write(self, step: str, name: str, obj) -> Path:
        path = self.step_dir(step) / name
        persist.write_json_atomic(path, obj)
        return path

    def read(self, step: str, name: str) -> dict | None:
        path = self.root / step / name
        return json.loads(path.read_text()) if path.is_file() else None

    def log_path(self, step: str) -> Path:
        return self.step_dir(step) / "log.txt"

    # ------------------------------------------------------------------ evaluation episodes
    def episodes(self, step: str) -> dict[int, dict]:
        folder = self.root / step / "episodes"
        if not folder.is_dir():
            return {}
        out = {}
        for path in sorted(folder.glob("seed_*.json")):      # temp files end in .tmp: never matched
            ep = json.loads(path.read_text())
            out[int(ep["seed"])] = ep
        return out

    def commit_episode(self, step: str, episode: dict) -> None:
        persist.write_json_atomic(self.step_dir(step) / "episodes" / f"seed_{int(episode['seed']):07d}.json", episode)

    def new_attempt_dir(self, step: str) -> Path:
        base = self.step_dir(step)
        n = len(list(base.glob("attempt_*")))
        return persist.make_dirs(base / f"attempt_{n:02d}")
