"""The fuzzing benchmark itself: seeded, replayable, and its "data lost" count sees a lost episode."""
import json

import pytest

import bench.bench_fuzz as fuzz

pytestmark = pytest.mark.robustness


def test_small_run_survives_and_writes_json(tmp_path):
    out = tmp_path / "fuzz.json"
    assert fuzz.main(["--cases", "12", "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    r = report["targets"]["dataset"]
    assert r["cases_tried"] == 12 and r["cases_survived"] == 12 and r["episodes_lost"] == 0
    assert sum(m["applied"] for m in r["by_mutation"].values()) >= 12
    assert report["seed"] == 3 and "bench_fuzz" in report["command"]


def test_same_seed_same_mutations(tmp_path):
    import numpy as np

    target = fuzz.DatasetTarget()
    target.prepare(tmp_path / "t")
    runs = []
    for i in range(2):
        (tmp_path / f"c{i}").mkdir()
        runs.append(target.run_case(np.random.default_rng([5, 7]), tmp_path / f"c{i}", 60)["mutations"])
    assert runs[0] == runs[1]


def test_a_destructive_command_counts_as_data_lost(tmp_path, monkeypatch):
    """If a command deletes an untouched, committed episode, the case reports it."""
    real = fuzz.run_cli

    def destructive(argv, timeout_s):
        res = real(argv, timeout_s)
        if argv[1] == "repair":
            for p in (tmp_path / "w").rglob("file-001.parquet"):
                if "data" in p.parts and "case_" in str(p):
                    p.unlink()
        return res

    monkeypatch.setattr(fuzz, "run_cli", destructive)
    monkeypatch.setattr(fuzz.DatasetTarget, "_mutate", lambda self, rng, root: "nothing")
    monkeypatch.setattr(fuzz.tempfile, "TemporaryDirectory", lambda prefix: _Fixed(tmp_path / "w"))
    r = fuzz.run(["dataset"], cases=2, seed=0, timeout_s=60, progress=False)["dataset"]
    assert r["episodes_lost"] == 2 and r["cases_with_data_loss"] == 2


class _Fixed:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.path.mkdir()
        return str(self.path)

    def __exit__(self, *exc):
        return False
