"""Broken datasets give errors that name the offending file and key."""
import json
import shutil

import pytest

from policy_stack.data.reader import DatasetFormatError, LeRobotDatasetReader


@pytest.fixture
def copy(written_dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(written_dataset[0], root)
    return root


def test_missing_info_json(copy):
    (copy / "meta/info.json").unlink()
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        LeRobotDatasetReader(copy)


def test_wrong_codebase_version(copy):
    info = json.loads((copy / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (copy / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="info.json: codebase_version is 'v2.1'"):
        LeRobotDatasetReader(copy)


def test_truncated_data_parquet(copy):
    path = copy / "data/chunk-000/file-001.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetFormatError, match="data/chunk-000/file-001.parquet: unreadable"):
        LeRobotDatasetReader(copy)


def test_corrupt_episodes_parquet(copy):
    (copy / "meta/episodes/chunk-000/file-000.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DatasetFormatError, match="meta/episodes/chunk-000/file-000.parquet"):
        LeRobotDatasetReader(copy)


def test_corrupt_mp4(copy):
    path = copy / "videos/observation.images.agentview/chunk-000/file-002.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetFormatError, match="observation.images.agentview/chunk-000/file-002.mp4"):
        LeRobotDatasetReader(copy)


def test_truncated_mp4_found_on_decode(copy):
    path = copy / "videos/observation.images.agentview/chunk-000/file-001.mp4"
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(DatasetFormatError, match="file-001.mp4"):
        reader = LeRobotDatasetReader(copy)       # the moov atom may or may not survive the cut
        reader.episode(1)


def test_missing_mp4(copy):
    (copy / "videos/observation.images.agentview/chunk-000/file-000.mp4").unlink()
    with pytest.raises(DatasetFormatError, match="file-000.mp4: missing"):
        LeRobotDatasetReader(copy)


def test_shape_mismatch_between_info_and_data(copy):
    info = json.loads((copy / "meta/info.json").read_text())
    info["features"]["action"]["shape"] = [6]
    (copy / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="file-000.parquet: column 'action'.*shape \\[6\\]"):
        LeRobotDatasetReader(copy)


def test_depth_shape_mismatch(copy):
    info = json.loads((copy / "meta/info.json").read_text())
    info["features"]["observation.depth.agentview"]["shape"] = [84, 80]
    (copy / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="column 'observation.depth.agentview'"):
        LeRobotDatasetReader(copy)


def test_cli_reports_error_in_one_line(copy, capsys):
    from policy_stack.cli import main

    (copy / "meta/info.json").unlink()
    assert main(["dataset", "info", str(copy)]) == 2
    assert "meta/info.json" in capsys.readouterr().err
