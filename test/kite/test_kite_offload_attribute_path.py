"""scripts/kite_offload_train.py end to end on a tiny two-cube collection: pack --attribute-queries,
train --attribute-frac, evaluate (one model and an ensemble), finish (an ensemble with composition), and
the checkpoint loads and grounds. The evaluation strings never enter a checkpoint."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policy_stack.policies.kite.data import GroundingData

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kite_offload_train.py"
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 40)}
SIDE = {"small": 4, "large": 7}
SMALL_NET = {"grounding_channels": [8, 16, 32], "text_hidden": 32, "stem_stride": 1}


def _collection(n_frames: int, seed: int, combos, wording: str) -> GroundingData:
    """Frames of two squares (one per size); a row per square naming it by size and colour."""
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("rgb", "kp", "mask")}
    labels = {k: [] for k in ("instructions", "episode_seed", "frame", "target_size", "target_colour")}
    for f in range(n_frames):
        img = np.full((32, 32, 3), 128, np.uint8)
        masks, kps, cubes = [], [], []
        for k, size in enumerate(("small", "large")):
            colour = combos[size][int(rng.integers(len(combos[size])))]
            s = SIDE[size]
            r, c = int(rng.integers(2, 12)) + 16 * k, int(rng.integers(2, 24))
            img[r:r + s, c:c + s] = COLOURS[colour]
            m = np.zeros((32, 32), np.uint8)
            m[r:r + s, c:c + s] = 1
            masks.append(m), kps.append((c + (s - 1) / 2, r + (s - 1) / 2)), cubes.append((size, colour))
        for m, kp, (size, colour) in zip(masks, kps, cubes):
            rows["rgb"].append(img), rows["kp"].append(kp), rows["mask"].append(m)
            for k, v in (("instructions", wording.format(f"{size} {colour}")), ("episode_seed", f),
                         ("frame", "reset"), ("target_size", size), ("target_colour", colour)):
                labels[k].append(v)
    n = len(rows["kp"])
    K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]]).expand(n, 3, 3).clone()
    return GroundingData(torch.from_numpy(np.stack(rows["rgb"])), torch.ones(n, 32, 32),
                         torch.tensor(rows["kp"], dtype=torch.float32), torch.from_numpy(np.stack(rows["mask"])),
                         K, torch.eye(4).expand(n, 4, 4).clone(), torch.zeros(n, 3), labels.pop("instructions"),
                         ["pick"] * n, ["train"] * n, dict(labels, env="squares", camera="grounding"))


def _script():
    sys.path.insert(0, str(SCRIPT.parent))
    import kite_offload_train
    return kite_offload_train


def _run(monkeypatch, capsys, *args):
    """The script's main() in this process (one torch/transformers import for the whole test)."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *map(str, args)])
    capsys.readouterr()
    _script().main()
    return capsys.readouterr().out


@pytest.mark.slow
def test_pack_train_evaluate_and_finish_an_ensemble_with_attribute_queries(tmp_path, monkeypatch, capsys):
    train = {"small": ["red", "green"], "large": ["blue", "green"]}          # never small blue, large red
    _collection(24, 0, train, "grab the {} cube").save(tmp_path / "train")
    _collection(6, 1, {"small": ["blue"], "large": ["red"]}, "could you raise the {} cube").save(tmp_path / "held")
    pack = tmp_path / "pack"
    _run(monkeypatch, capsys, "pack", "--train", tmp_path / "train", "--holdout-frac", 0.2, "--attribute-queries",
         "--val", f"held={tmp_path / 'held'}", "--out", pack)
    meta = json.loads((pack / "pack.json").read_text())
    queries = meta["train"]["attribute_queries"]
    assert meta["train"]["attribute_words"] == ["blue", "green", "large", "red", "small"]
    assert queries["text"] and all(len([w for w in t.split() if w in meta["train"]["attribute_words"]]) == 1
                                   for t in queries["text"])
    assert "grab the small cube" in queries["text"] and "grab the blue cube" in queries["text"]
    runs = []
    for seed, frac in ((0, 0.3), (1, 0.5)):
        out = tmp_path / f"run{seed}"
        _run(monkeypatch, capsys, "train", "--pack", pack, "--out", out, "--steps", 3, "--batch", 4,
             "--loss", "softmax_ce", "--device", "cpu", "--seed", seed, "--attribute-frac", frac,
             "--set", json.dumps(SMALL_NET))
        report = json.loads((out / "report.json").read_text())
        # the training set grew by the derived rows: frac of the result
        base = meta["train"]["rows"]
        assert report["rows"] == base + round(base * frac / (1 - frac))
        runs.append(out / "softmax_ce.safetensors")
    ensemble = json.dumps(dict(SMALL_NET, compose_attributes=True, compose_members=[1]))
    ens = json.loads(_run(monkeypatch, capsys, "evaluate", "--pack", pack, "--weights", runs[0],
                          "--weights", runs[1], "--set", ensemble))
    assert ens["val"]["held"]["samples"] == 12
    ckpt = tmp_path / "ckpt"
    _run(monkeypatch, capsys, "finish", "--pack", pack, "--weights", runs[0], "--weights", runs[1], "--out", ckpt,
         "--set", ensemble)
    from policy_stack.checkpoint import load_policy

    policy = load_policy(str(ckpt), "cpu")
    cfg = policy.config
    assert cfg.grounding_ensemble == 2 and cfg.compose_attributes and cfg.compose_members == [1]
    assert cfg.attribute_words == meta["train"]["attribute_words"]
    assert not any(t.startswith("could you raise") for t in cfg.instruction_vocab)      # no evaluation string
    assert "grab the small cube" in cfg.instruction_vocab
    out = policy.ground(np.full((32, 32, 3), 128, np.uint8), None, "grab the small red cube")
    assert out["uv"].shape == (2,) and np.isfinite(out["uv"]).all()
