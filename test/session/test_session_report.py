"""The session summary names the stage to deploy: the best finished evaluation, with the policy and the
calibration gain it was measured with (a fine-tune that made things worse is not what gets deployed)."""
from policy_stack.session.config import SessionConfig
from policy_stack.session.report import summary
from policy_stack.session.store import SessionDir

GAIN = [0.5, 0.6, 0.4, 0.8, 0.8, 0.8]


def _session(tmp_path, reeval_successes: int) -> tuple[SessionDir, SessionConfig]:
    cfg = SessionConfig(eval_episodes=4, domain_base=10)
    store = SessionDir(tmp_path / "s")
    store.open(cfg)
    for step, ok in (("eval_base", 0), ("eval_calibrated", 3), ("reeval", reeval_successes)):
        for k, seed in enumerate(cfg.eval_seeds()):
            store.commit_episode(step, {"seed": seed, "success": k < ok, "steps": 100})
        store.write_result(step, {"success_rate": ok / 4})
    store.write_result("calibrate", {"gain": GAIN, "r2": [1.0] * 6})
    store.write_result("finetune", {"policy": str(tmp_path / "ft"), "steps": 10})
    return store, cfg


def test_best_stage_deploys_the_calibrated_base_when_the_fine_tune_is_worse(tmp_path):
    store, cfg = _session(tmp_path, reeval_successes=1)
    s = summary(store, cfg)
    assert s["improvement_pp"] == 25.0
    best = s["best_stage"]
    assert best["step"] == "eval_calibrated" and best["improvement_pp"] == 75.0
    assert best["deploy"] == {"policy": cfg.policy, "calibration_gain": GAIN}


def test_best_stage_deploys_the_fine_tuned_policy_when_it_wins(tmp_path):
    store, cfg = _session(tmp_path, reeval_successes=4)
    best = summary(store, cfg)["best_stage"]
    assert best["step"] == "reeval"
    assert best["deploy"] == {"policy": str(tmp_path / "ft"), "calibration_gain": GAIN}


def test_config_refuses_a_wrong_type_by_name():
    import pytest
    from policy_stack.cli.overrides import parse_overrides

    with pytest.raises(ValueError, match="eval_episodes must be int"):
        SessionConfig.from_dict(parse_overrides(["eval_episodes=oops"]))
    with pytest.raises(ValueError, match="calib_repeats must be int"):
        SessionConfig.from_dict({"calib_repeats": True})
    assert SessionConfig.from_dict(parse_overrides(["finetune_lr=1e-5", "eval_episodes=4"])).eval_episodes == 4
