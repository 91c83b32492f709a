"""Sim-to-real sessions as commands: preflight, evaluation, calibration, demos, fine-tuning, re-evaluation.

`policy-stack session run --dir SESSION` (policy_stack/cli/session.py) runs the steps of `config.STEPS` in
order. Every step writes its result under `SESSION/<step>/` with the one atomic writer
(policy_stack/persist.py); `SESSION/<step>/result.json` is its commit point, so a rerun skips finished
steps, and an evaluation resumes episode by episode (each finished episode is its own committed file).

This package never imports rclpy, robosuite or MuJoCo: each step runs `policy-stack` verbs or the ROS probe
(ros_nodes/session_probe.py) as child processes and reads their JSON. Docs: docs/sim_to_real.md.
"""
from policy_stack.session.config import STEPS, SessionConfig  # noqa: F401
