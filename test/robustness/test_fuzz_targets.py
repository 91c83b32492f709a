"""The checkpoint and node fuzz targets run, survive, and would catch what they look for."""
import json

import pytest

import bench.bench_fuzz as fuzz

pytestmark = pytest.mark.robustness


def test_checkpoint_target_small_run(tmp_path):
    out = tmp_path / "fuzz.json"
    assert fuzz.main(["--targets", "checkpoint", "--cases", "20", "--seed", "1", "--out", str(out), "--no-progress"]) == 0
    r = json.loads(out.read_text())["targets"]["checkpoint"]
    assert r["cases_tried"] == 20 and r["cases_survived"] == 20


def test_checkpoint_target_sees_a_traceback(tmp_path, monkeypatch):
    """A loader that raises something other than a one-line user error must count as a failed case."""
    import numpy as np

    import bench.fuzz_targets as targets
    import policy_stack.checkpoint as ckpt

    def boom(*a, **k):
        raise KeyError("unexpected")
    monkeypatch.setattr(ckpt, "load_checkpoint", boom)
    target = targets.CheckpointTarget()
    target.prepare(tmp_path / "t")
    (tmp_path / "c").mkdir()
    res = target.run_case(np.random.default_rng([0, 0]), tmp_path / "c", 60)
    assert not res["survived"] and "KeyError" in res["commands"][0]["why"]


@pytest.mark.ros
def test_node_target_small_run(ros_env, tmp_path):
    out = tmp_path / "fuzz.json"
    assert fuzz.main(["--targets", "node", "--cases", "60", "--seed", "2", "--out", str(out), "--no-progress"]) == 0
    r = json.loads(out.read_text())["targets"]["node"]
    assert r["cases_tried"] == 60 and r["cases_survived"] == 60
    assert r["damaged_observations"] > 10 and r["chunks_answering_damaged_observations"] == 0
    assert r["node_exit_code"] == 0 and r["chunks"] > 0
