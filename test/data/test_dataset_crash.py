"""SIGKILL a writer mid-collection: finished episodes survive, the dataset stays valid and appendable."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from policy_stack.data.reader import LeRobotDatasetReader
from policy_stack.data.writer import DatasetWriter

from conftest import FEATURES, FPS, make_episode

HERE = Path(__file__).parent
EPISODE_LEN = 30

# Episode i always holds make_episode(EPISODE_LEN, seed=i), so survivors can be checked exactly.
WRITER_LOOP = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from conftest import FEATURES, FPS, make_episode
from policy_stack.data.writer import DatasetWriter
w = DatasetWriter(sys.argv[1], FPS, FEATURES)
while True:
    i = w.num_episodes
    w.add_episode(make_episode({EPISODE_LEN}, seed=i), "task %d" % (i % 2))
    print(i + 1, flush=True)
"""


def _run_and_kill(root: Path, min_committed: int, extra_delay_s: float) -> int:
    """Start the writer loop, wait for `min_committed` episodes, SIGKILL it a little later."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER_LOOP, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    committed = 0
    try:
        while committed < min_committed:     # the writer reports each committed episode (pytest-timeout bounds it)
            line = proc.stdout.readline()
            assert line, f"writer exited early (rc={proc.poll()})"
            committed = int(line)
        time.sleep(extra_delay_s)            # lands the kill somewhere inside a later add_episode: any point is valid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return committed


def _check_episodes(reader, count):
    for k in range(count):
        ep = reader.episode(k)
        src = make_episode(EPISODE_LEN, seed=k)
        np.testing.assert_array_equal(ep["action"], src["action"])
        np.testing.assert_array_equal(ep["agentview_depth_mm"], src["agentview_depth"])
        assert ep["agentview_rgb"].shape == (EPISODE_LEN, 84, 84, 3)


@pytest.mark.filterwarnings("ignore:.*unfinished episode")
@pytest.mark.parametrize("kills", [[0.0, 0.05, 0.13]])
def test_sigkill_mid_collection(tmp_path, kills):
    root = tmp_path / "ds"
    for round_, delay in enumerate(kills):
        before = LeRobotDatasetReader(root).num_episodes if (root / "meta/info.json").exists() else 0
        reported = _run_and_kill(root, before + 2, delay)
        reader = LeRobotDatasetReader(root)    # may warn about files of the episode cut short
        # Every episode whose add_episode returned is there; at most one more (killed between its
        # commit and the print).
        assert reported <= reader.num_episodes <= reported + 1, (round_, reported, reader.num_episodes)
        _check_episodes(reader, reader.num_episodes)
    # A writer reopening it cleans up and appends.
    n = LeRobotDatasetReader(root).num_episodes
    w = DatasetWriter(root)
    # One more if the kill fell between the episode's metadata row and info.json: it is complete and kept.
    assert n <= w.num_episodes <= n + 1
    n = w.num_episodes
    w.add_episode(make_episode(EPISODE_LEN, seed=n), "after crash")
    w.close()
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == n + 1 and reader.orphan_files == []
    assert not list(root.rglob("*.tmp"))
    _check_episodes(reader, n + 1)
    assert reader.stats["action"]["count"].tolist() == [(n + 1) * EPISODE_LEN]


def test_reopen_keeps_episode_whose_files_and_row_were_written(tmp_path):
    """The worst window: files and metadata row of episode 1 written, info.json not yet. Everything of
    episode 1 is on disk, so reopening commits it (it used to be deleted); temp files still go."""
    root = tmp_path / "ds"
    w = DatasetWriter(root, FPS, FEATURES)
    w.add_episode(make_episode(8, seed=0), "t")
    info_before = (root / "meta/info.json").read_bytes()
    w.add_episode(make_episode(8, seed=1), "t")
    w.close()
    (root / "meta/info.json").write_bytes(info_before)                 # roll back the commit point
    (root / "data/chunk-000/file-005.parquet.tmp").write_bytes(b"partial")
    with pytest.warns(UserWarning, match="unfinished episode"):
        reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 1 and "data/chunk-000/file-001.parquet" in reader.orphan_files
    w = DatasetWriter(root)
    assert w.num_episodes == 2 and any("kept" in note for note in w.repair_notes)
    assert (root / "data/chunk-000/file-001.parquet").exists()
    assert not (root / "data/chunk-000/file-005.parquet.tmp").exists()
    w.add_episode(make_episode(8, seed=7), "t")
    w.close()
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 3 and reader.orphan_files == []
    np.testing.assert_array_equal(reader.episode(1)["action"], make_episode(8, seed=1)["action"])
    np.testing.assert_array_equal(reader.episode(2)["action"], make_episode(8, seed=7)["action"])


def test_reopen_drops_unfinished_episode(tmp_path):
    """Files of episode 1 written, its metadata row not: the files are debris and go."""
    root = tmp_path / "ds"
    w = DatasetWriter(root, FPS, FEATURES)
    w.add_episode(make_episode(8, seed=0), "t")
    meta = sorted((root / "meta").rglob("*"))
    saved = {p: p.read_bytes() for p in meta if p.is_file() and p.name != ".writer.lock"}
    w.add_episode(make_episode(8, seed=1), "t")
    w.close()
    for p, data in saved.items():                                      # metadata as before episode 1
        p.write_bytes(data)
    w = DatasetWriter(root)
    assert w.num_episodes == 1
    assert not (root / "data/chunk-000/file-001.parquet").exists()
    assert not (root / "videos/observation.images.agentview/chunk-000/file-001.mp4").exists()
    w.add_episode(make_episode(8, seed=7), "t")
    w.close()
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 2 and reader.orphan_files == []
    np.testing.assert_array_equal(reader.episode(1)["action"], make_episode(8, seed=7)["action"])
