"""policy_stack.persist, the one crash-safe writer: what it syncs, in which order, and what a kill leaves."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from policy_stack import persist

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def io_log(monkeypatch):
    """Records every fsync (by the path of the synced file or folder) and every rename, in order."""
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        log.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(persist.os, "fsync", fsync)
    monkeypatch.setattr(persist.os, "replace", replace)
    return log


def _index(log, entry):
    assert entry in log, f"{entry} not in {log}"
    return log.index(entry)


def test_file_write_syncs_file_then_renames_then_syncs_folder(tmp_path, io_log):
    path = tmp_path / "new" / "deeper" / "state.json"
    persist.write_json_atomic(path, {"step": 3})
    assert json.loads(path.read_text()) == {"step": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]     # no temp file left
    rename = next(e for e in io_log if e[0] == "replace")
    tmp = rename[1]
    assert tmp.endswith(persist.TMP_SUFFIX) and rename[2] == str(path)
    assert _index(io_log, ("fsync", tmp)) < io_log.index(rename) < _index(io_log, ("fsync", str(path.parent)))
    # the folders it created are synced into their parents (their entries survive a power loss)
    for created in (tmp_path / "new", tmp_path / "new" / "deeper"):
        _index(io_log, ("fsync", str(created.parent)))


def test_copy_replaces_an_existing_file_atomically(tmp_path, io_log):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    persist.copy_atomic(src, dst)
    assert dst.read_bytes() == b"new"
    rename = next(e for e in io_log if e[0] == "replace")
    assert _index(io_log, ("fsync", rename[1])) < io_log.index(rename) < _index(io_log, ("fsync", str(tmp_path)))


def test_folder_write_syncs_every_file_and_folder_before_the_rename_and_the_parent_after(tmp_path, io_log):
    final = tmp_path / "snap"
    final.mkdir()
    (final / "stale.txt").write_text("previous version")

    def write(tmp):
        (tmp / "a.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_bytes(b"\0" * 10)

    persist.write_dir_atomic(final, write)
    assert sorted(str(p.relative_to(final)) for p in final.rglob("*")) == ["a.json", "sub", "sub/b.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]      # no temp or moved-aside copy left
    publish = next(e for e in io_log if e[0] == "replace" and e[2] == str(final))
    tmp = Path(publish[1])
    for inside in (tmp / "a.json", tmp / "sub" / "b.bin", tmp / "sub", tmp):
        assert _index(io_log, ("fsync", str(inside))) < io_log.index(publish), inside
    assert io_log.index(publish) < _index(io_log, ("fsync", str(tmp_path)))


def test_failed_folder_write_leaves_the_previous_folder_and_no_temp(tmp_path):
    final = tmp_path / "snap"
    persist.write_dir_atomic(final, lambda tmp: (tmp / "v").write_text("1"))

    def broken(tmp):
        (tmp / "v").write_text("2")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        persist.write_dir_atomic(final, broken)
    assert (final / "v").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]


def test_resolve_dir_finds_the_moved_aside_copy(tmp_path):
    final = tmp_path / "snap"
    persist.write_dir_atomic(final, lambda tmp: (tmp / "v").write_text("1"))
    os.replace(final, tmp_path / ".snap.old-123-abcdef01")   # a kill between the two renames
    assert (persist.resolve_dir(final) / "v").read_text() == "1"
    persist.write_dir_atomic(final, lambda tmp: (tmp / "v").write_text("2"))
    assert persist.resolve_dir(final) == final
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]   # the stale copy is cleaned up
    with pytest.raises(FileNotFoundError):
        persist.resolve_dir(tmp_path / "missing")


def test_publish_snapshot_points_latest_and_prunes(tmp_path):
    root = tmp_path / "checkpoints"
    assert persist.latest_snapshot_dir(root) is None
    for step in (1, 2, 3):
        persist.write_dir_atomic(root / f"step_{step:07d}", lambda tmp: (tmp / "x").write_text("x"))
        persist.publish_snapshot(root, f"step_{step:07d}", keep=2)
    (root / ".step_0000004.tmp-99-deadbeef").mkdir()          # a writer killed mid-save
    persist.publish_snapshot(root, "step_0000003", keep=2)
    assert persist.latest_snapshot_dir(root) == root / "step_0000003"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000002", "step_0000003"]


KILL_SCRIPT = """
import sys
from pathlib import Path
from policy_stack import persist
root = Path(sys.argv[1])
for step in range(1, 4):
    persist.write_dir_atomic(root / f"step_{step}", lambda tmp: (tmp / "v").write_text(str(step)))
    persist.publish_snapshot(root, f"step_{step}", keep=0)
print("finished")
"""


@pytest.mark.parametrize("point, latest, written", [("snapshot-written:2", "step_1", ["step_1", "step_2"]),
                                                    ("snapshot-published:2", "step_2", ["step_1", "step_2"])])
def test_kill_at_fault_point_is_deterministic(tmp_path, point, latest, written):
    env = {**os.environ, persist.KILL_AT_ENV: point}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and "finished" not in proc.stdout, proc.stderr
    assert (tmp_path / "latest").read_text().strip() == latest
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == written


def test_failed_file_write_leaves_the_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "data.parquet"
    persist.write_bytes_atomic(path, b"v1")

    def broken(tmp):
        tmp.write_bytes(b"half of v2")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        persist.write_file_atomic(path, broken)
    assert path.read_bytes() == b"v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]
