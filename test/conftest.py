"""Shared pytest setup: headless rendering, few threads, and an isolated ROS 2 domain per test."""
import itertools
import os
from pathlib import Path

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


_TEST_DIR = Path(__file__).resolve().parent
_DIRECTORY_MARKS = {"ros": "ros", "sim": "sim"}   # test/<folder>/ -> marker (pytest.ini lists them)


def pytest_collection_modifyitems(config, items):
    """`ros` and `sim` by folder, and `ros` for any test that starts ROS processes (the ros_env
    fixture), so `make test-fast` (-m "not ros and not sim and not slow") needs no per-test upkeep."""
    for item in items:
        try:
            folder = Path(str(item.fspath)).resolve().relative_to(_TEST_DIR).parts[0]
        except ValueError:
            continue
        if folder in _DIRECTORY_MARKS:
            item.add_marker(_DIRECTORY_MARKS[folder])
        if "ros_env" in getattr(item, "fixturenames", ()):
            item.add_marker("ros")
