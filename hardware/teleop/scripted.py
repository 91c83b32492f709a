"""The scripted virtual device: what tests and benchmarks teleoperate with.

It plays an episode protocol the way an operator would: start -> act -> stop as success (the task
reports success for `success_hold_steps` consecutive ticks) or as failure (after `max_steps` ticks)
-> reset -> wait until the scene is ready -> start again; after `episodes` stopped episodes, quit.
The actions come from either
  - a waypoint file (JSON: {"actions": [[a0..], [a1..], ...], "end_event": "success"}), replayed one
    action per tick, the same list every episode; the episode ends with end_event after the last one.
    An optional "engaged": [true/false per action] scripts the deadman (default: held throughout), so a
    test can play a human intervention window during a policy rollout; or
  - an expert: any callable obs -> action with a reset() method (the teleop node binds sim/experts.py's
    scripted experts to the observations it receives).
With takeover_after_steps N > 0 the device plays an operator supervising a policy rollout (interventions):
released (the policy drives) for the first N ticks of an episode; then, if the task has not succeeded, it
takes over: the source is reset at that tick (the expert plans from the state it finds, as an operator
grabbing the device would) and holds the deadman to the episode's end.
`obs` passed to poll() may carry "success" (bool, the task's success signal) and "ready" (bool, the
scene was reset and a new episode may start; absent = ready).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hardware.teleop.device import EVENTS, TeleopCommand, TeleopDevice


class WaypointSource:
    def __init__(self, path):
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("actions"), list) or not data["actions"]:
            raise ValueError(f"{path}: waypoint file needs a non-empty 'actions' list")
        self.actions = np.asarray(data["actions"], np.float64)
        if self.actions.ndim != 2 or not np.all(np.isfinite(self.actions)):
            raise ValueError(f"{path}: 'actions' must be a list of equal-length lists of finite numbers")
        self.end_event = data.get("end_event", "success")
        if self.end_event not in ("success", "failure"):
            raise ValueError(f"{path}: end_event must be success or failure, got {self.end_event!r}")
        engaged = data.get("engaged", [True] * len(self.actions))
        if (not isinstance(engaged, list) or len(engaged) != len(self.actions)
                or not all(isinstance(e, bool) for e in engaged)):
            raise ValueError(f"{path}: 'engaged' must be a list of {len(self.actions)} booleans (one per action)")
        self.engaged = engaged
        self.engaged_now = True      # the deadman of the action returned last
        self.i = 0

    def reset(self) -> None:
        self.i = 0

    @property
    def done(self) -> bool:
        return self.i >= len(self.actions)

    def __call__(self, obs) -> np.ndarray:
        k = min(self.i, len(self.actions) - 1)
        a, self.engaged_now = self.actions[k], self.engaged[k]
        self.i += 1
        return a


class ScriptedDevice(TeleopDevice):
    name = "scripted"

    def __init__(self, space, source, episodes: int = 0, max_steps: int = 200, success_hold_steps: int = 5,
                 takeover_after_steps: int = 0, **kw):
        super().__init__(space, **kw)
        if int(max_steps) < 1 or int(success_hold_steps) < 1 or int(episodes) < 0 or int(takeover_after_steps) < 0:
            raise ValueError("scripted device: max_steps and success_hold_steps must be >= 1, episodes and "
                             "takeover_after_steps >= 0")
        self.takeover_after_steps = int(takeover_after_steps)
        self.took_over = False
        self.source, self.episodes = source, int(episodes)
        self.max_steps, self.success_hold_steps = int(max_steps), int(success_hold_steps)
        self.state = "idle"          # idle -> running -> idle ... -> finished
        self.steps = self.success_run = self.stopped = 0
        self.hold_action = self.mapper.zero(-1.0)

    def poll(self, now: float, obs: dict | None = None) -> TeleopCommand:
        obs = obs or {}
        events: list[str] = []
        if self.state == "idle" and obs.get("ready", True):
            self.source.reset()
            self.steps = self.success_run = 0
            self.took_over = False
            self.state = "running"
            events.append("start")
        if self.state != "running":
            return TeleopCommand(self.hold_action, False, events, self.mapper.twist(self.hold_action))
        supervising = self.takeover_after_steps > 0 and not self.took_over
        if supervising and self.steps >= self.takeover_after_steps and not obs.get("success"):
            self.source.reset()          # take over: the expert plans from the state it finds
            self.took_over, supervising = True, False
        if supervising:                  # released: the source is not consulted, so its plan does not drift
            action = self.hold_action.astype(np.float64)
        else:
            action = np.asarray(self.source(obs), np.float64).reshape(-1)
        if action.shape != (self.mapper.space.dim,) or not np.all(np.isfinite(action)):
            raise ValueError(f"scripted source gave action {action!r}; expected {self.mapper.space.dim} finite values")
        action = self.mapper.space.clip(action.astype(np.float32))
        self.steps += 1
        self.success_run = self.success_run + 1 if obs.get("success") else 0
        end = None
        if getattr(self.source, "done", False):
            end = self.source.end_event
        elif self.success_run >= self.success_hold_steps:
            end = "success"
        elif self.steps >= self.max_steps:
            end = "failure"
        if end is not None:
            events += [end, "reset"]
            self.stopped += 1
            self.hold_action = self.mapper.zero(float(action[self.mapper.gripper_idx])
                                                if self.mapper.gripper_idx is not None else -1.0)
            self.state = "idle"
            if self.episodes and self.stopped >= self.episodes:
                events.append("quit")
                self.state = "finished"
        assert all(e in EVENTS for e in events)
        self.last_input = now
        # an expert holds the deadman throughout (a supervising one only once it has taken over)
        engaged = not supervising and bool(getattr(self.source, "engaged_now", True))
        if not engaged:      # released, as a real device: zero motion, the gripper command kept
            action = self.mapper.zero(float(action[self.mapper.gripper_idx]) if self.mapper.gripper_idx is not None
                                      else -1.0)
        return TeleopCommand(action, engaged, events, self.mapper.twist(action))

    def _read(self, now, obs):      # poll() is overridden: the actions are not axes
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        return self.state == "finished"
