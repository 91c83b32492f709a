"""WindowDataset: the torch face of WindowSampler, for torch.utils.data.DataLoader.

Items are {"obs": {key: (To, ...)}, "action": (Tp, A) float32, "action_is_pad": (Tp,) bool} tensors;
the default collate stacks them into the training batch of docs/CONVENTIONS.md. Images stay uint8 HWC
(the policy converts). Kept apart from windows.py so the sampler stays importable without torch.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .reader import LeRobotDatasetReader
from .windows import WindowSampler


class WindowDataset(Dataset):
    def __init__(self, source, obs_keys=None, To: int = 2, Tp: int = 16, action_key: str = "action",
                 episodes=None, progress: bool = False):
        """source: a WindowSampler, a LeRobotDatasetReader, or a dataset folder (then obs_keys is required)."""
        if isinstance(source, WindowSampler):
            self.sampler = source
        else:
            reader = source if isinstance(source, LeRobotDatasetReader) else LeRobotDatasetReader(source)
            if obs_keys is None:
                raise ValueError("WindowDataset: obs_keys is required when building from a dataset")
            self.sampler = WindowSampler(reader, obs_keys, To=To, Tp=Tp, action_key=action_key,
                                         episodes=episodes, progress=progress)

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, i: int) -> dict:
        item = self.sampler[i]
        # strings (a language task's instruction) stay strings: the default collate makes them a list
        return {"obs": {k: v if isinstance(v, str) else torch.from_numpy(v) for k, v in item["obs"].items()},
                "action": torch.from_numpy(item["action"]),
                "action_is_pad": torch.from_numpy(item["action_is_pad"])}
