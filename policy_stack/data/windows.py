"""WindowSampler: Diffusion-Policy training windows over a dataset held in memory (torch-free).

Window at (episode e, step t), with To observation steps and Tp action steps:
    steps  s = t - To + 1, ..., t - To + Tp           (the action horizon starts with the oldest obs)
    obs    = frames at s[:To]  (ending at t)
    action = actions at s
Steps outside [0, L) repeat the episode's first/last frame; `action_is_pad` marks those action steps,
so a loss can mask them (as LeRobot's `action_is_pad`). One window per (episode, t), t in [0, L).

Memory: every episode is decoded once into memory on construction. RGB stays uint8 and depth stays
uint16 millimetres (converted to float32 metres per window), so the ~200 episodes x 60 frames of an
84x84 camera here cost ~250 MB per RGB camera and ~170 MB per depth camera. Larger datasets need a
lazier sampler.
"""
from __future__ import annotations

import numpy as np

from .features import millimetres_to_metres

INSTRUCTION_KEY = "instruction"   # the episode's task string, for language-conditioned policies


class WindowSampler:
    """Index-addressable windows: `sampler[i]` -> {"obs": {key: (To, ...)}, "action": (Tp, A),
    "action_is_pad": (Tp,) bool}. Obs keys are env keys (`robot0_eef_pos`, `agentview_rgb`,
    `agentview_depth` in float32 metres, or `agentview_depth_mm` for raw uint16)."""

    def __init__(self, reader, obs_keys, To: int = 2, Tp: int = 16, action_key: str = "action",
                 episodes=None, progress: bool = False):
        if To < 1 or Tp < To:
            raise ValueError(f"WindowSampler: need 1 <= To <= Tp, got To={To}, Tp={Tp}")
        self.To, self.Tp = int(To), int(Tp)
        self.obs_keys = [k for k in obs_keys if k != INSTRUCTION_KEY]
        # "instruction": the episode's task string (a language task's instruction), one str per window
        self.with_instruction = INSTRUCTION_KEY in obs_keys
        self.action_key = action_key
        available = self._available_keys(reader)
        for key in self.obs_keys + [action_key]:
            if key not in available:
                raise ValueError(f"WindowSampler: key {key!r} not in dataset {reader.root}; "
                                 f"available: {sorted(available)}")
        episode_ids = list(range(reader.num_episodes)) if episodes is None else list(episodes)
        if not episode_ids:
            raise ValueError(f"WindowSampler: no episodes to sample from in {reader.root}")
        # Depth is kept as uint16 mm in memory (half the bytes of float32 metres).
        self._stored_key = {k: (k + "_mm" if k in reader.depth_keys else k) for k in self.obs_keys}
        self._stored_key[action_key] = action_key
        buffers: dict[str, list] = {k: [] for k in set(self._stored_key.values())}
        starts, lengths = [], []
        self._episode_tasks: list[str] = []
        offset = 0
        from tqdm import tqdm

        for e in tqdm(episode_ids, desc="decode episodes", disable=not progress):
            data = reader.episode(e)
            for k in buffers:
                buffers[k].append(data[k])
            starts.append(offset)
            lengths.append(len(data[action_key]))
            if self.with_instruction:
                self._episode_tasks.append(reader.episode_task(e))
                if not self._episode_tasks[-1]:
                    raise ValueError(f"WindowSampler: episode {e} of {reader.root} has no task string to "
                                     "condition on ('instruction' was asked for)")
            offset += lengths[-1]
        self._arrays = {k: np.concatenate(v) for k, v in buffers.items()}
        self.episode_ids = episode_ids
        self._starts = np.asarray(starts, np.int64)
        self._lengths = np.asarray(lengths, np.int64)
        # windows[i] = (episode slot, t)
        self._windows = np.concatenate([np.stack([np.full(n, j), np.arange(n)], 1)
                                        for j, n in enumerate(lengths)]).astype(np.int64)
        self._offsets = np.arange(self.Tp, dtype=np.int64) - (self.To - 1)

    @staticmethod
    def _available_keys(reader) -> set:
        keys = {f.env_key for f in reader.features}
        return keys | {k + "_mm" for k in reader.depth_keys}

    @property
    def nbytes(self) -> int:
        """Memory held by the decoded episodes."""
        return int(sum(a.nbytes for a in self._arrays.values()))

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def window_steps(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(episode index, clipped row indices into the memory arrays, is_pad) of window i."""
        slot, t = self._windows[i]
        length = self._lengths[slot]
        steps = t + self._offsets
        is_pad = (steps < 0) | (steps >= length)
        rows = self._starts[slot] + np.clip(steps, 0, length - 1)
        return self.episode_ids[slot], rows, is_pad

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range ({len(self)} windows)")
        _, rows, is_pad = self.window_steps(int(i) % len(self))
        obs = {}
        if self.with_instruction:
            obs[INSTRUCTION_KEY] = self._episode_tasks[self._windows[int(i) % len(self)][0]]
        for key in self.obs_keys:
            values = self._arrays[self._stored_key[key]][rows[: self.To]]
            obs[key] = millimetres_to_metres(values) if self._stored_key[key] != key else values
        return {"obs": obs, "action": self._arrays[self.action_key][rows], "action_is_pad": is_pad}

    def sample_batch(self, batch_size: int, rng: np.random.Generator | None = None) -> dict:
        """A random batch stacked along a new axis 0 (numpy; the torch wrapper is WindowDataset)."""
        rng = rng or np.random.default_rng()
        items = [self[int(i)] for i in rng.integers(0, len(self), batch_size)]
        obs = {k: np.stack([it["obs"][k] for it in items]) for k in self.obs_keys}
        if self.with_instruction:
            obs[INSTRUCTION_KEY] = [it["obs"][INSTRUCTION_KEY] for it in items]
        return {"obs": obs,
                "action": np.stack([it["action"] for it in items]),
                "action_is_pad": np.stack([it["action_is_pad"] for it in items])}
