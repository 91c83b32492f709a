"""Interoperability with the real lerobot 0.4.4, run in its own venv (it pins another torch).

Runs only when that venv exists: POLICY_STACK_LEROBOT_PYTHON names its python, else a `lerobot-venv`
folder beside this checkout is used (docs/datasets.md, "Interoperability with lerobot", says how to
make it); otherwise every test here is skipped. The lerobot side is bench/lerobot_side.py.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from policy_stack.data import DatasetWriter, LeRobotDatasetReader
from policy_stack.data.features import STATE_KEY

REPO = Path(__file__).resolve().parents[2]
SIDE = REPO / "bench" / "lerobot_side.py"


def lerobot_python() -> Path | None:
    named = os.environ.get("POLICY_STACK_LEROBOT_PYTHON")
    path = Path(named) if named else REPO.parent / "lerobot-venv" / "bin" / "python"
    return path if path.is_file() else None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(lerobot_python() is None,
                                 reason="no lerobot venv (set POLICY_STACK_LEROBOT_PYTHON; docs/datasets.md)")]


def run_lerobot(tmp_path, *args, timeout=300) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LEROBOT_HOME"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "hf_cache"), HF_HOME=str(tmp_path / "hf_home"),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([str(lerobot_python()), str(SIDE), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"lerobot_side {args[0]} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lerobot_loads_our_dataset(tmp_path):
    """Split keys, the concatenated observation.state, RGB video and uint16 depth, as lerobot sees them."""
    root = tmp_path / "ours"
    rng = np.random.default_rng(0)
    feats = {"robot0_eef_pos": (3,), "robot0_gripper_qpos": (2,), "agentview_rgb": (32, 32, 3),
             "agentview_depth": (32, 32), "action": (7,), "success": ()}
    eps = []
    with DatasetWriter(root, 20, feats) as w:
        for n in (10, 8):
            ep = {"robot0_eef_pos": rng.normal(size=(n, 3)), "robot0_gripper_qpos": rng.normal(size=(n, 2)),
                  "agentview_rgb": rng.integers(0, 255, (n, 32, 32, 3)).astype(np.uint8),
                  "agentview_depth": rng.integers(0, 60000, (n, 32, 32)).astype(np.uint16),
                  "action": rng.normal(size=(n, 7)), "success": np.zeros(n, bool)}
            w.add_episode(ep, "lift")
            eps.append(ep)
    out = run_lerobot(tmp_path, "load", root)
    assert out["num_frames"] == 18 and out["task"] == "lift"
    want = np.concatenate([np.concatenate([e["robot0_eef_pos"], e["robot0_gripper_qpos"]], 1) for e in eps])
    np.testing.assert_array_equal(np.asarray(out["state"], np.float32), want.astype(np.float32))
    assert out["state_names"][0] == "robot0_eef_pos.x"
    assert out["item_shapes"]["observation.images.agentview"] == [3, 32, 32]
    assert out["item_shapes"]["observation.depth.agentview"] == [32, 32]
    assert out["window_shapes"]["observation.images.agentview"] == [2, 3, 32, 32]


def test_we_read_train_and_append_a_lerobot_created_dataset(tmp_path):
    """lerobot's own writer makes a plain-observation.state dataset (with 2-D uint16 depth); we read it,
    append to it, and lerobot loads the result and appends to it again."""
    root = tmp_path / "created"
    created = run_lerobot(tmp_path, "create", root, "--episodes", 2, "--length", 12, "--depth")
    reader = LeRobotDatasetReader(root)
    assert reader.lowdim_keys == [STATE_KEY]
    got = np.concatenate([reader.episode(k)[STATE_KEY] for k in range(reader.num_episodes)])
    np.testing.assert_array_equal(got, np.asarray(created["state"], np.float32))
    # lerobot's stats shapes, which our appended episodes must match
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.depth.wrist"]["mean"]).shape == (8,)

    ep = reader.episode(0)
    with DatasetWriter(root) as w:
        w.add_episode({k: ep[k] for k in (STATE_KEY, "action", "front_rgb", "wrist_depth")}, "pick up the block")
    appended = run_lerobot(tmp_path, "append", root, "--length", 6)     # lerobot loads, then appends after us
    assert appended["episodes_before"] == 3 and len(appended["state_before"]) == 36
    np.testing.assert_array_equal(np.asarray(appended["state_before"][24:], np.float32), ep[STATE_KEY])
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 4
    np.testing.assert_array_equal(reader.episode(3)[STATE_KEY], np.asarray(appended["state"], np.float32))
