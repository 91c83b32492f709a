"""WindowSampler / WindowDataset: Diffusion-Policy windows, edge padding, torch batches."""
import numpy as np
import pytest
import torch

from policy_stack.data.reader import LeRobotDatasetReader
from policy_stack.data.torch_dataset import WindowDataset
from policy_stack.data.windows import WindowSampler

from conftest import LENGTHS

OBS = ["robot0_eef_pos", "agentview_rgb", "agentview_depth"]


@pytest.fixture(scope="module")
def sampler(written_dataset):
    return WindowSampler(LeRobotDatasetReader(written_dataset[0]), OBS, To=2, Tp=16)


def test_window_count_and_shapes(sampler):
    assert len(sampler) == sum(LENGTHS)
    item = sampler[0]
    assert item["obs"]["robot0_eef_pos"].shape == (2, 3)
    assert item["obs"]["agentview_rgb"].shape == (2, 84, 84, 3) and item["obs"]["agentview_rgb"].dtype == np.uint8
    assert item["obs"]["agentview_depth"].dtype == np.float32
    assert item["action"].shape == (16, 7) and item["action_is_pad"].shape == (16,)


def test_padding_at_episode_start(sampler, written_dataset):
    src = written_dataset[1][0]
    item = sampler[0]                       # episode 0, t = 0: steps -1 .. 14
    np.testing.assert_array_equal(item["obs"]["robot0_eef_pos"], src["robot0_eef_pos"][[0, 0]])
    np.testing.assert_array_equal(item["action"][0], src["action"][0])       # repeated edge frame
    np.testing.assert_array_equal(item["action"][1:], src["action"][0:15])
    assert item["action_is_pad"].tolist() == [True] + [False] * 15
    np.testing.assert_allclose(item["obs"]["agentview_depth"][1], src["agentview_depth"][0] / 1000.0, rtol=1e-6)


def test_padding_at_episode_end(sampler, written_dataset):
    src = written_dataset[1][1]             # episode 1, length 35
    i = LENGTHS[0] + LENGTHS[1] - 1         # its last step t = 34: steps 33 .. 48
    item = sampler[i]
    np.testing.assert_array_equal(item["obs"]["robot0_eef_pos"], src["robot0_eef_pos"][[33, 34]])
    np.testing.assert_array_equal(item["action"][:2], src["action"][33:35])
    np.testing.assert_array_equal(item["action"][2:], np.repeat(src["action"][34:35], 14, axis=0))
    assert item["action_is_pad"].tolist() == [False] * 2 + [True] * 14


def test_interior_window_matches_diffusion_policy(sampler, written_dataset):
    src = written_dataset[1][1]
    item = sampler[LENGTHS[0] + 10]         # episode 1, t = 10: obs 9, 10; actions 9 .. 24
    np.testing.assert_array_equal(item["obs"]["robot0_eef_pos"], src["robot0_eef_pos"][9:11])
    np.testing.assert_array_equal(item["action"], src["action"][9:25])
    assert not item["action_is_pad"].any()


def test_short_episode_pads_both_edges(written_dataset):
    reader = LeRobotDatasetReader(written_dataset[0])
    s = WindowSampler(reader, ["robot0_eef_pos"], To=3, Tp=16, episodes=[2])   # length 12
    item = s[0]
    assert item["action_is_pad"].tolist() == [True, True] + [False] * 12 + [True, True]


def test_unknown_key(written_dataset):
    with pytest.raises(ValueError, match="'cube_pos' not in dataset"):
        WindowSampler(LeRobotDatasetReader(written_dataset[0]), ["cube_pos"])


def test_torch_dataset_batches(sampler):
    loader = torch.utils.data.DataLoader(WindowDataset(sampler), batch_size=4, shuffle=True)
    batch = next(iter(loader))
    assert batch["obs"]["agentview_rgb"].shape == (4, 2, 84, 84, 3)
    assert batch["obs"]["agentview_rgb"].dtype == torch.uint8
    assert batch["action"].shape == (4, 16, 7) and batch["action"].dtype == torch.float32
    assert batch["action_is_pad"].dtype == torch.bool
    np_batch = sampler.sample_batch(5, np.random.default_rng(0))
    assert np_batch["obs"]["agentview_depth"].shape == (5, 2, 84, 84)
