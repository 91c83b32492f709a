"""Hostile cases against RL session checkpoints: a damaged newest checkpoint must not end the run."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # the `rl` test package (toy session)
from rl.run_toy_session import main as run_toy  # noqa: E402

pytestmark = pytest.mark.robustness


def _checkpoints(out: Path) -> list[Path]:
    return sorted(p for p in (out / "checkpoints").glob("ckpt_*") if p.is_dir())


def test_resume_falls_back_past_a_truncated_agent_file(tmp_path, capsys):
    """Was: a SafetensorError traceback, though the previous checkpoint was kept for exactly this."""
    out = tmp_path / "run"
    run_toy(str(out), "expo", 40, resume=False, sleep=0.0)
    older, newest = _checkpoints(out)[-2:]
    agent = newest / "agent.safetensors"
    agent.write_bytes(agent.read_bytes()[: agent.stat().st_size // 3])
    capsys.readouterr()
    summary = run_toy(str(out), "expo", 60, resume=True, sleep=0.0)
    err = capsys.readouterr().err
    assert summary["resumed_from"] and Path(summary["resumed_from"]).name == older.name
    assert f"checkpoint {newest}" in err and f"fell back to {older.name}" in err, err
    assert summary["env_steps"] >= 60
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == summary["resumed_from"]


def test_resume_with_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    out = tmp_path / "run"
    run_toy(str(out), "expo", 40, resume=False, sleep=0.0)
    for ckpt in _checkpoints(out):
        (ckpt / "rng.safetensors").write_bytes(b"\0" * 7)
    with pytest.raises(ValueError, match="no checkpoint .* loads") as info:
        run_toy(str(out), "expo", 60, resume=True, sleep=0.0)
    assert "\n" not in str(info.value)
