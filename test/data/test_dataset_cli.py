"""`policy-stack dataset info/viz/repair`."""
import json
import subprocess
import sys

import av
import numpy as np

from policy_stack.cli import main


def test_info_json_subprocess(written_dataset):
    root, episodes = written_dataset
    out = subprocess.run([sys.executable, "-m", "policy_stack.cli", "dataset", "info", str(root), "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    info = json.loads(out)
    assert info["episodes"] == 3 and info["frames"] == sum(len(e["action"]) for e in episodes) and info["fps"] == 20
    assert info["cameras"] == {"rgb": ["agentview_rgb"], "depth": ["agentview_depth"]}
    assert info["success_rate"] == 2 / 3                     # seeds 0 and 2 succeed
    assert info["size_on_disk_bytes"] > 0
    assert info["features"]["observation.depth.agentview"] == {"env_key": "agentview_depth", "dtype": "uint16",
                                                               "shape": [84, 84]}


def test_info_text(written_dataset, capsys):
    assert main(["dataset", "info", str(written_dataset[0])]) == 0
    text = capsys.readouterr().out
    assert "episodes  3" in text and "success   66.7%" in text


def test_viz_png_and_mp4(written_dataset, tmp_path, capsys):
    import cv2

    root = written_dataset[0]
    png = tmp_path / "ep1.png"
    assert main(["dataset", "viz", str(root), "--episode", "1", "--out", str(png)]) == 0
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] == 8 * 168 and img.shape[1] == 2 * 168    # 8 frames; rgb | depth
    assert img[:, 168:].std() > 10                                                      # depth is colourized
    mp4 = tmp_path / "ep0.mp4"
    assert main(["dataset", "viz", str(root), "--episode", "0", "--out", str(mp4)]) == 0
    with av.open(str(mp4)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 20 and frames[0].shape == (168, 336, 3)
    assert main(["dataset", "viz", str(root), "--episode", "9", "--out", str(mp4)]) == 2
    assert "--episode 9" in capsys.readouterr().err


def test_repair_command(written_dataset, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(written_dataset[0], root)
    (root / "data/chunk-000/file-003.parquet").write_bytes(b"orphan")     # the next episode's slot: debris
    assert main(["dataset", "repair", str(root)]) == 0
    assert not (root / "data/chunk-000/file-003.parquet").exists()
    assert "3 episodes" in capsys.readouterr().out
    # A file no killed writer could have left is not deleted: repair refuses and changes nothing.
    (root / "data/chunk-000/file-009.parquet").write_bytes(b"someone's data")
    assert main(["dataset", "repair", str(root)]) == 2
    assert (root / "data/chunk-000/file-009.parquet").exists()
    assert "file-009.parquet" in capsys.readouterr().err
