"""`policy-stack collect --grounding`: the grounding-data folder format the KITE trainer reads."""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.sim


def test_collect_grounding_writes_the_agreed_format(tmp_path):
    from policy_stack.cli import main
    from sim.grounding_data import load_grounding
    from sim.instructions import HELDOUT_COMBOS
    out = tmp_path / "g"
    assert main(["collect", "--env", "multi_cube", "--grounding", "--instruction-split", "heldout_attributes",
                 "--episodes", "1", "--seed", "5", "--out", str(out)]) == 0
    t, meta = load_grounding(out)
    n = len(meta["instructions"])
    assert n >= 2
    shapes = {"rgb": (n, 128, 128, 3), "depth": (n, 128, 128), "kp_px": (n, 2), "target_mask": (n, 128, 128),
              "K": (n, 3, 3), "T_base_cam": (n, 4, 4), "kp_base": (n, 3)}
    assert {k: v.shape for k, v in t.items()} == shapes
    assert t["rgb"].dtype == np.uint8 and t["target_mask"].dtype == np.uint8 and t["depth"].dtype == np.float32
    for key in ("template_ids", "split", "task", "target"):
        assert len(meta[key]) == n
    assert meta["env"] == "multi_cube" and meta["seed"] == 5 and set(meta["split"]) == {"heldout_attributes"}
    # every label sits on its target's mask, at the metric depth the keypoint projects to
    from policy_stack.skills.geometry import deproject, project
    for i in range(n):
        u, v = np.round(t["kp_px"][i]).astype(int)
        assert t["target_mask"][i, v, u] == 1
        assert 0.3 < t["depth"][i, v, u] < 2.0            # metres, not robosuite's normalized [0, 1]
        uv, z = project(t["kp_base"][i][None], t["K"][i], t["T_base_cam"][i])
        np.testing.assert_allclose(uv[0], t["kp_px"][i], atol=1e-3)
        back = deproject(t["kp_px"][i][None], [t["depth"][i, v, u]], t["K"][i], t["T_base_cam"][i])[0]
        assert np.linalg.norm(back - t["kp_base"][i]) < 0.005
        # heldout_attributes rows name a held-out combination with its size word
        assert (meta["target_size"][i], meta["target_colour"][i]) in HELDOUT_COMBOS
        assert f"{meta['target_size'][i]} {meta['target_colour'][i]}" in meta["instructions"][i]
    assert 0 < meta["summary"]["visibility_rate"] <= 1
    # each row's mask is the one of the state its image shows: replay episode 5 and compare
    from sim.envs import make_env
    from sim.grounding_data import _arm_frame
    with make_env("multi_cube", cameras=("grounding",), image_size=128, depth=True,
                  instruction_split="heldout_attributes") as env:
        frames = {"reset": env.reset(seed=5)}
        frames["reset_gt"] = env.ground_truth()
        frames["arm"] = _arm_frame(env, np.random.default_rng(5 + 7_000_003))
        frames["arm_gt"] = env.ground_truth()
        with pytest.raises(ValueError, match="current sim state"):
            env.ground_truth(obs=frames["reset"])          # an older frame cannot be labelled
    rows = list(range(n))
    assert {meta["frame"][i] for i in rows} == {"reset", "arm"}
    for i in rows:
        frame = meta["frame"][i]
        np.testing.assert_array_equal(t["rgb"][i], frames[frame]["grounding_rgb"])
        np.testing.assert_array_equal(t["target_mask"][i], frames[frame + "_gt"]["objects"][meta["target"][i]]["mask"])


def test_grounding_needs_a_language_task(tmp_path, capsys):
    from policy_stack.cli import main
    assert main(["collect", "--env", "lift", "--grounding", "--episodes", "1", "--out", str(tmp_path / "x")]) == 2
    assert "language task" in capsys.readouterr().err


def test_collect_demos_of_a_language_task_store_the_instruction_as_the_task(tmp_path):
    from policy_stack.cli import main
    from policy_stack.data.reader import LeRobotDatasetReader
    from sim.instructions import split_instruction
    out = tmp_path / "demos"
    assert main(["collect", "--env", "multi_cube_pick", "--episodes", "1", "--seed", "3", "--out", str(out)]) == 0
    reader = LeRobotDatasetReader(out)
    assert len(reader.tasks) >= 1
    for task in reader.tasks:
        assert [s.skill for s in split_instruction(task)] == ["pick"]   # an instruction, not the env name
    assert not any("instruction" in k for k in reader.info["features"])
