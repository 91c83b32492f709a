"""Hostile cases against datasets through the real CLI and real files: each broke the stack once.

Every case checks the CLI's contract for bad data: exit code 0 or 2, at most one line per problem on
stderr, never a traceback, and no committed, complete episode lost.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.fuzz_data import LENGTHS, TASKS, dataset_copy, episode_files, make_dataset
from policy_stack.cli import main
from policy_stack.data.reader import LeRobotDatasetReader

pytestmark = pytest.mark.robustness
REPO = Path(__file__).resolve().parents[2]
INFO = "meta/info.json"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("robust") / "template")


@pytest.fixture
def ds(template, tmp_path):
    return dataset_copy(template, tmp_path / "ds")


def cli(*argv, capsys):
    """policy-stack ARGV in this process -> (rc, stdout, stderr). A traceback would raise here."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def edit_info(root: Path, **changes) -> None:
    info = json.loads((root / INFO).read_text())
    info.update(changes)
    (root / INFO).write_text(json.dumps(info))


def assert_one_line_error(rc, err, *words):
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


# --------------------------------------------------------------------------- writer lock

HOLD_WRITER = """
import sys, time
from policy_stack.data.writer import DatasetWriter
w = DatasetWriter(sys.argv[1])
open(sys.argv[2], "w").write("in progress")     # an episode file being written, no metadata row yet
print("holding", flush=True)
time.sleep(600)
"""


def test_repair_refuses_while_a_writer_holds_the_dataset_and_works_after_it_is_killed(ds, capsys):
    """Was: repair deleted the in-progress episode's files of a running collect."""
    in_progress = ds / "data/chunk-000/file-003.parquet"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(ds), str(in_progress)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "holding"
        rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
        assert_one_line_error(rc, err, "another process", f"pid {proc.pid}")
        assert in_progress.exists()
        # A second writer from another process is refused the same way.
        res = subprocess.run([sys.executable, "-m", "policy_stack.cli", "dataset", "repair", str(ds)],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
        assert_one_line_error(res.returncode, res.stderr, "another process")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The lock died with the SIGKILLed writer: no stale lock, repair now runs and drops the debris.
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert rc == 0, err
    assert not in_progress.exists() and LeRobotDatasetReader(ds).num_episodes == 3


# --------------------------------------------------------------------------- repair vs edited metadata

def test_repair_keeps_complete_episodes_when_info_undercounts(ds, capsys):
    """Was: total_episodes=1 (truly 3) made repair delete 2 complete episodes."""
    before = episode_files(ds)
    edit_info(ds, total_episodes=1)
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert rc == 0, err
    assert episode_files(ds) == before
    assert "total_episodes=1" in err and "kept" in err
    reader = LeRobotDatasetReader(ds)
    assert reader.num_episodes == 3 and reader.num_frames == sum(LENGTHS)


@pytest.mark.parametrize("value", [-1, "3", 2.5, True, None])
def test_repair_refuses_invalid_episode_count_and_deletes_nothing(ds, capsys, value):
    """Was: total_episodes=-1 made repair delete the last episode."""
    before = {p: p.read_bytes() for p in episode_files(ds)}
    edit_info(ds, total_episodes=value)
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "total_episodes")
    assert {p: p.read_bytes() for p in episode_files(ds)} == before


def test_repair_refuses_when_info_overcounts(ds, capsys):
    before = episode_files(ds)
    edit_info(ds, total_episodes=5)
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "5 episodes", "nothing changed")
    assert episode_files(ds) == before


def test_repair_refuses_a_hole_past_the_commit_point(ds, capsys):
    """Episode 1's data gone while episode 2 is complete: not a state a killed writer leaves."""
    edit_info(ds, total_episodes=1)
    (ds / "data/chunk-000/file-001.parquet").unlink()
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "episode 1", "nothing changed")
    assert (ds / "data/chunk-000/file-002.parquet").exists()


def test_repair_refuses_a_row_past_the_commit_point_with_a_broken_video(ds, capsys):
    """Was: such a last episode was dropped as "unfinished" and its intact data parquet deleted. A writer
    publishes a row only after the episode's files are whole, so this is damage, not a crash."""
    edit_info(ds, total_episodes=2)
    mp4 = ds / "videos/observation.images.agentview/chunk-000/file-002.mp4"
    mp4.write_bytes(mp4.read_bytes()[:100])
    before = {p: p.read_bytes() for p in episode_files(ds)}
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "episode 2", "nothing changed")
    assert {p: p.read_bytes() for p in episode_files(ds)} == before


def test_repair_refuses_an_episodes_table_that_no_longer_names_a_file(ds, capsys):
    """Found by bench_fuzz: episode 2's row edited to name episode 1's file made repair delete
    episode 2's complete files as "orphans" (then fail)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = ds / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(table).to_pylist()
    rows[2]["data/file_index"] = 1
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(table)), table)
    before = {p: p.read_bytes() for p in episode_files(ds)}
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "file-002.parquet", "Nothing changed")
    assert {p: p.read_bytes() for p in episode_files(ds)} == before


def test_a_new_writer_refuses_episode_files_without_info_json(ds, capsys):
    """info.json deleted: creating a dataset there (collect --out DIR) used to erase every episode file."""
    from bench.fuzz_data import FEATURES, FPS
    from policy_stack.data.writer import DatasetWriter

    (ds / INFO).unlink()
    before = {p: p.read_bytes() for p in episode_files(ds)}
    with pytest.raises(ValueError, match="no meta/info.json"):
        DatasetWriter(ds, FPS, FEATURES)
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert rc == 2 and "Traceback" not in err
    assert {p: p.read_bytes() for p in episode_files(ds)} == before


def test_repair_rebuilds_a_deleted_task_table_from_the_data(ds, capsys):
    """Was: an empty task table while the episodes still used tasks 0 and 1."""
    (ds / "meta/tasks.parquet").unlink()
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert rc == 0, err
    assert "tasks.parquet" in err
    reader = LeRobotDatasetReader(ds)
    assert reader.tasks == ["lift the cube", "lift it higher"]
    for k in range(3):
        ep = reader.episode(k)
        assert reader.tasks[int(ep["task_index"][0])] == TASKS[k]


@pytest.mark.parametrize("value", [0, -3, "1000", "delete"])
def test_info_and_repair_refuse_a_bad_chunks_size(ds, capsys, value):
    """Was: ZeroDivisionError traceback for 0; a KeyError traceback when deleted (found by bench_fuzz)."""
    if value == "delete":
        info = json.loads((ds / INFO).read_text())
        del info["chunks_size"]
        (ds / INFO).write_text(json.dumps(info))
    else:
        edit_info(ds, chunks_size=value)
    for verb in ("info", "repair", "verify"):
        rc, out, err = cli("dataset", verb, str(ds), capsys=capsys)
        assert rc == 2 and "chunks_size" in err and "Traceback" not in err, (verb, err)


# --------------------------------------------------------------------------- path templates

@pytest.mark.parametrize("key,tmpl,words", [
    ("data_path", "/etc/passwd", ["data_path", "inside the dataset"]),
    ("data_path", "../../../../etc/{chunk_index}{file_index}", ["data_path", "inside the dataset"]),
    ("data_path", "data/{chunk_index.__class__.__mro__}/{file_index}.parquet", ["data_path", "field"]),
    ("data_path", "data/{chunk_index:>1000000000}/{file_index}.parquet", ["data_path", "format spec"]),
    ("data_path", "data/{chunk_index!r}/{file_index}.parquet", ["data_path", "conversion"]),
    ("data_path", "data/{episode_index}/{file_index}.parquet", ["data_path", "field"]),
    ("video_path", "videos/{video_key}/../../../{chunk_index}/{file_index}.mp4", ["video_path", "inside"]),
    ("video_path", "videos/{video_key:>99999}/{chunk_index}/{file_index}.mp4", ["video_path", "format spec"]),
])
def test_untrusted_path_templates_are_refused(ds, capsys, key, tmpl, words):
    edit_info(ds, **{key: tmpl})
    for verb in ("info", "verify", "repair"):
        rc, out, err = cli("dataset", verb, str(ds), capsys=capsys)
        assert rc == 2 and "Traceback" not in err, (verb, err)
        for w in words:
            assert w in err, (verb, err)
    assert len(episode_files(ds)) == 6                     # repair deleted nothing


def test_symlink_out_of_the_dataset_is_refused(ds, tmp_path, capsys):
    outside = tmp_path / "outside"
    (ds / "data/chunk-000").rename(outside)
    (ds / "data/chunk-000").symlink_to(outside)
    rc, out, err = cli("dataset", "info", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "outside the dataset")


def test_lerobot_templates_with_width_specs_still_load(ds, capsys):
    edit_info(ds, data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    rc, out, err = cli("dataset", "info", str(ds), capsys=capsys)
    assert rc == 0 and "episodes  3" in out, err


# --------------------------------------------------------------------------- truncation: repair, info, verify

def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_parquet_is_reported_by_repair_and_verify(ds, capsys):
    """Was: repair said "metadata consistent" (rc 0) on a truncated data parquet."""
    _truncate(ds / "data/chunk-000/file-001.parquet")
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "file-001.parquet")
    assert "metadata consistent" not in out
    rc, out, err = cli("dataset", "verify", str(ds), "--no-progress", capsys=capsys)
    assert rc == 2 and "file-001.parquet" in err and "Traceback" not in err


def test_truncated_mp4_fails_info_and_verify(ds, capsys):
    """Was: `dataset info` returned 0 on a truncated MP4."""
    mp4 = ds / "videos/observation.images.agentview/chunk-000/file-002.mp4"
    _truncate(mp4, 0.6)
    rc, out, err = cli("dataset", "info", str(ds), capsys=capsys)
    assert_one_line_error(rc, err, "file-002.mp4")
    rc, out, err = cli("dataset", "verify", str(ds), "--no-progress", capsys=capsys)
    assert rc == 2 and "file-002.mp4" in err and "Traceback" not in err


def test_verify_counts_video_frames_against_the_episodes_table(ds, template, capsys):
    """A valid MP4 with the wrong number of frames passes every header check; only decoding sees it."""
    video = "videos/observation.images.agentview/chunk-000/file-{:03d}.mp4"
    (ds / video.format(0)).write_bytes((template / video.format(2)).read_bytes())   # 5 frames, not 6
    rc, out, err = cli("dataset", "info", str(ds), capsys=capsys)
    assert rc == 0, err
    rc, out, err = cli("dataset", "verify", str(ds), "--no-progress", capsys=capsys)
    assert rc == 2 and "episode 0" in err and "Traceback" not in err, err


def test_verify_passes_a_clean_dataset_and_repair_says_what_it_does_not_check(ds, capsys):
    rc, out, err = cli("dataset", "verify", str(ds), "--no-progress", capsys=capsys)
    assert rc == 0 and f"{len(LENGTHS)} episodes, {sum(LENGTHS)} frames" in out, err
    rc, out, err = cli("dataset", "repair", str(ds), capsys=capsys)
    assert rc == 0 and "not checked" in out and "dataset verify" in out


# --------------------------------------------------------------------------- collect workers

def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_collect_workers_die_with_a_sigkilled_parent(tmp_path):
    """Was: SIGKILL of `collect --workers 2` left both workers running (each went on with its episode
    and only died on the broken result pipe afterwards, minutes later for long episodes). The workers
    are stopped (SIGSTOP) before the parent is killed, which makes the old behaviour permanent and the
    test deterministic: only a kernel-delivered SIGKILL (PR_SET_PDEATHSIG) ends a stopped process."""
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "policy_stack.cli", "collect", "--env", "lift", "--episodes",
                             "500", "--workers", "2", "--max-steps", "3", "--keep-failures", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers = []
    try:
        deadline = time.monotonic() + 240                  # a bound on a hang, not a timing assertion
        while not (out / INFO).exists() or json.loads((out / INFO).read_text())["total_episodes"] < 1:
            assert proc.poll() is None, f"collect exited early (rc {proc.returncode})"
            assert time.monotonic() < deadline, "collect wrote no episodes"
            time.sleep(0.5)
        workers = [p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2, workers
        for p in workers:
            os.kill(p, signal.SIGSTOP)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if _alive(p)]
    for p in left:                                         # do not leak them past the test on old code
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their SIGKILLed parent"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
