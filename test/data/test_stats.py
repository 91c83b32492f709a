"""Normalization stats: compute, merge, save/load."""
import numpy as np
import pytest

from policy_stack.data.stats import compute_stats, load_stats, merge_stats, save_stats


def test_compute_merge_save_load(tmp_path):
    rng = np.random.default_rng(0)
    a = {"action": rng.normal(size=(50, 7)), "agentview_rgb": rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8),
         "agentview_depth": rng.uniform(0.3, 2.0, (5, 8, 8))}
    b = {k: v[:20] + (1 if k == "action" else 0) for k, v in a.items()}
    merged = merge_stats(compute_stats(a), compute_stats(b))
    joint = compute_stats({k: np.concatenate([a[k], b[k]]) for k in a})
    for key in a:
        for name in ("min", "max", "mean", "std"):
            np.testing.assert_allclose(merged[key][name], joint[key][name], rtol=1e-9, err_msg=f"{key}.{name}")
    assert joint["agentview_rgb"]["mean"].shape == (3,) and joint["agentview_rgb"]["max"].max() <= 1.0
    assert joint["agentview_depth"]["mean"].shape == (1,)
    save_stats(tmp_path / "stats.json", merged)
    loaded = load_stats(tmp_path / "stats.json")
    np.testing.assert_allclose(loaded["action"]["std"], merged["action"]["std"], rtol=1e-6)
    (tmp_path / "bad.json").write_text('{"action": {"min": [0], "max": [1], "mean": [0]}}')
    with pytest.raises(ValueError, match="'action' lack \\['std'\\]"):
        load_stats(tmp_path / "bad.json")
