"""KITE grounding: heatmap decoding, losses, keypoint -> 3-D, and that the model learns the task."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policy_stack.policies.kite.geometry import base_to_pixel, deproject, keypoint_to_base, project, robust_depth
from policy_stack.policies.kite.grounding import decode_keypoint, gaussian_target, heatmap_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kite_synthetic import camera, make_grounding_data  # noqa: E402


def test_soft_argmax_recovers_a_subpixel_peak_and_ignores_a_far_mode():
    kp = torch.tensor([[10.3, 7.6]])
    logits = 8.0 * gaussian_target(kp, 32, 32, 1.5)
    logits += 7.0 * gaussian_target(torch.tensor([[25.0, 25.0]]), 32, 32, 1.5)   # weaker second object
    plain = decode_keypoint(logits, window=0)[0]
    refined = decode_keypoint(logits, window=2)[0]
    assert torch.equal(plain, torch.tensor([10.0, 8.0]))
    assert torch.linalg.norm(refined - kp[0]) < 0.15 < torch.linalg.norm(plain - kp[0])


@pytest.mark.parametrize("kind", ["softmax_ce", "bce"])
def test_losses_are_lowest_at_the_labelled_keypoint(kind):
    kp = torch.tensor([[12.0, 9.0]])
    good = 10.0 * gaussian_target(kp, 32, 32, 2.0) - 5
    bad = 10.0 * gaussian_target(kp + 6, 32, 32, 2.0) - 5
    assert heatmap_loss(good, kp, 2.0, kind) < heatmap_loss(bad, kp, 2.0, kind)
    with pytest.raises(ValueError, match="heatmap loss"):
        heatmap_loss(good, kp, 2.0, "mse")


def test_pixel_to_base_round_trip_with_a_tilted_camera():
    K = np.array([[110.0, 0, 63.5], [0, 110.0, 63.5], [0, 0, 1]])
    a = np.deg2rad(35)   # camera looking down and forward, like a table-top view
    R = np.array([[0, -np.sin(a), np.cos(a)], [-1, 0, 0], [0, -np.cos(a), -np.sin(a)]]).T
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R.T, [-0.6, 0.0, 1.4]
    for p_base in ([0.05, 0.1, 0.85], [-0.1, -0.2, 0.83], [0.2, 0.0, 0.9]):
        uv = base_to_pixel(p_base, K, T)
        z = (np.linalg.inv(T) @ np.append(p_base, 1.0))[2]
        depth = np.full((128, 128), z, np.float32)
        back = keypoint_to_base(uv[0], uv[1], depth, K, T, window=0)
        assert np.linalg.norm(back - p_base) < 1e-4
    assert np.allclose(project(deproject(40.2, 70.9, 1.3, K), K), [40.2, 70.9])


def test_robust_depth_keeps_the_object_at_an_edge_and_refuses_holes():
    depth = np.full((20, 20), 1.00, np.float32)   # table
    depth[5:10, 5:10] = 0.95                        # object top
    depth[7, 7] = 0.0                               # a hole (real sensors report 0)
    assert robust_depth(depth, 9, 9, window=2) == pytest.approx(0.95)   # edge pixel: table mostly behind it
    depth[:, :] = np.nan
    assert robust_depth(depth, 9, 9, window=2) is None
    assert robust_depth(depth, 50, 9) is None        # outside the image


def test_synthetic_labels_lift_to_their_base_frame_keypoints():
    d = make_grounding_data(20, 32, seed=3)
    K, T = camera(32)
    for i in range(len(d)):
        p = keypoint_to_base(*d.kp_px[i].tolist(), d.depth[i].numpy(), K, T, window=0)
        assert np.linalg.norm(p - d.kp_base[i].numpy()) < 0.02   # rounding to the pixel under the label


@pytest.mark.slow
def test_grounding_model_learns_which_square_the_instruction_names():
    """A few hundred steps on the synthetic task: from chance (1 of 3 squares) to nearly always the
    instructed square, on scenes and instruction strings it did not train on."""
    from policy_stack.policies.kite.build import build_policy
    from policy_stack.policies.kite.data import grounding_metrics
    from policy_stack.policies.kite.train_grounding import predict, train_grounding

    torch.manual_seed(0)
    train = make_grounding_data(300, 32, seed=0)
    test = make_grounding_data(100, 32, seed=1, templates=("lift the {size} {color} cube",))   # unseen wording
    policy = build_policy(train, {"grounding_channels": [8, 16, 32], "text_hidden": 64, "stem_stride": 1,
                                  "sigma_px": 1.0, "augment_shift_px": 2, "lr_warmup_steps": 20, "lr": 3e-3,
                                  "device": "cpu"})
    before = grounding_metrics(predict(policy, test), test)["correct_object_rate"]
    train_grounding(policy, train, 200, batch=16, progress=False)
    after = grounding_metrics(predict(policy, test), test)
    assert before < 0.5
    assert after["correct_object_rate"] >= 0.8, after
    assert after["pixel_error_px_median"] < 1.0
    # the per-wording breakdown covers every row, and agrees with the overall rate
    by = after["correct_by_wording"]
    assert list(by) == ["lift the {x}"], by
    assert by["lift the {x}"][1] == after["samples"]
    assert by["lift the {x}"][0] == round(after["correct_object_rate"] * after["samples"])


def test_wording_replaces_the_object_phrase_only():
    from policy_stack.policies.kite.data import wording
    assert wording("retrieve the small yellow cube") == "retrieve the {x}"
    assert wording("rest it atop the green cube") == "rest it atop the {x}"
    assert wording("lay it on the small purple one") == "lay it on the {x}"
    assert wording("the large red cube: pick it up") == "the {x}: pick it up"
    assert wording("put the can in its bin") == "put the can in its bin"
