"""Shared pytest setup: headless rendering, few threads, and an isolated ROS 2 domain per test."""
import itertools
import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("OMP_NUM_THREADS", "2")

_domain_counter = itertools.count()


@pytest.fixture
def ros_env(monkeypatch):
    """Environment for tests that start rclpy processes: a domain no other test (or CI run) shares."""
    domain = 100 + (os.getpid() * 7 + next(_domain_counter)) % 130
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env
