"""nut_assembly_both env (real robosuite/MuJoCo): the instruction and both nuts' and pegs' labels at reset,
and the world -> pixel -> world round trip under 5 mm on them."""
import numpy as np
import pytest

pytestmark = pytest.mark.sim


def test_reset_labels_and_round_trip_on_nuts_and_pegs():
    from policy_stack.skills.geometry import deproject
    from sim.envs import make_env
    env = make_env("nut_assembly_both", cameras=("grounding",), image_size=128, depth=True)
    try:
        errors, hidden = [], 0
        for seed in range(3):
            obs = env.reset(seed=seed)
            gt = env.ground_truth(obs=obs)
            assert obs["instruction"] == gt["instruction"] and gt["steps"][0][0] == "pick_handle"
            assert set(gt["objects"]) == {"square_nut", "round_nut", "square_peg", "round_peg"}
            K, T = gt["camera"]["K"], gt["camera"]["T_base_cam"]
            for name, o in gt["objects"].items():
                if not o["visible"]:                 # the hand at its rest pose can hide a nut's handle
                    hidden += 1
                    continue
                u, v = o["kp_px"]
                d = obs["grounding_depth"][int(round(v)), int(round(u))]
                errors.append(np.linalg.norm(deproject([[u, v]], [d], K, T)[0] - o["kp_base"]))
        assert hidden <= 2 and max(errors) < 0.005, (hidden, max(errors))
    finally:
        env.close()
