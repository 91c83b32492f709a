"""bench/bench_rl.py's bookkeeping: steps-to-80%, the targets section and the comparison plot, on
hand-made curves (the benchmark itself runs on demand, not in CI)."""
import json
from argparse import Namespace

from bench.bench_rl import aggregate, check_targets, plot_runs, steps_to_reach


def _curve(successes, step=100):
    return [[step * (i + 1), bool(s)] for i, s in enumerate(successes)]


def test_steps_to_reach_needs_a_full_window():
    assert steps_to_reach(_curve([1, 1, 1]), 0.8, window=4) is None           # one lucky start is not 80%
    assert steps_to_reach(_curve([0, 1, 1, 1, 1, 1]), 0.8, window=5) == 500    # 4 of the first 5
    assert steps_to_reach(_curve([0, 1, 0, 1, 0, 1]), 0.8, window=2) is None


def _run(final, to80):
    return {"success_rate_final": final, "steps_to_80": to80, "costs": {"update_s": 1.0, "env_step_s": 0.1}}


def test_targets_compare_gain_and_steps_against_sac():
    runs = {"expo_seed0": _run(0.7, 4000), "expo_seed1": _run(0.5, 6000),
            "pa-rl_seed0": _run(0.3, None), "pa-rl_seed1": _run(0.3, None),
            "sac_seed0": _run(0.9, 10000), "sac_seed1": _run(0.8, 12000)}
    results = {"base_eval": {"success_rate": 0.2}, "aggregate": aggregate(runs)}
    t = check_targets(results, Namespace(budget=12000))
    assert t["expo"]["gain_pp"] == 40.0 and t["expo"]["gain_ge_40pp"]
    assert t["expo"]["steps_to_80_mean"] == 5000 and t["expo"]["sac_steps_to_80_mean"] == 11000
    assert t["pa-rl"]["gain_pp"] == 10.0 and not t["pa-rl"]["gain_ge_40pp"]
    assert t["pa-rl"]["steps_to_80_mean"] is None                              # never reached


def test_plot_has_every_run(tmp_path):
    for algo, seed in (("expo", 0), ("expo", 1), ("sac", 0)):
        d = tmp_path / "runs" / f"{algo}_seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"curve": _curve([0, 1, 1, 0, 1])}))
    out = tmp_path / "plot.png"
    plot_runs(tmp_path / "runs", ["expo", "pa-rl", "sac"], 3, 0.2, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
