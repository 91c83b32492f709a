"""Language conditioning for Diffusion Policy: the instruction as extra global conditioning.

The instruction (a string: `obs["instruction"]` at run time, the episode's task string in a LeRobot
dataset) is embedded by the frozen all-MiniLM-L6-v2 sentence encoder that KITE uses
(policies/kite/text_encoder.py: one text encoder in the repo, cached per instruction). The 384-d
embedding is projected to `language_dim` and fused with the observation features by a small MLP; the
denoiser's global condition is [observation features, fused features].

Why a fusion MLP and not the raw embedding appended to the condition: the U-Net applies its condition by
FiLM, which is linear in the condition, so "go to the cube whose colour the instruction names" (a
product of instruction and cube features) would have to be assembled across blocks; one hidden layer
over both lets it form that product directly.

Embeddings of every training instruction are a buffer (`instruction_embeddings`, rows named by
`config.instruction_vocab`), saved in model.safetensors, so a known instruction needs no transformer at
run time; an unknown one (a held-out paraphrase) loads the encoder once and is embedded on the fly.
The table is filled on first use (training's first loss, or the first act of an untrained policy),
never when a checkpoint is loaded (its buffer holds the rows).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policy_stack.policies.kite.text_encoder import EMBED_DIM, EmbeddingCache, normalize_instruction


class LanguageConditioning(nn.Module):
    """(observation features (B, C), instructions [B]) -> global condition (B, C + hidden)."""

    def __init__(self, obs_dim: int, vocab: list[str], language_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.vocab = [normalize_instruction(t) for t in vocab]
        self.register_buffer("instruction_embeddings", torch.zeros(len(self.vocab), EMBED_DIM))
        self.project = nn.Linear(EMBED_DIM, language_dim)
        self.fuse = nn.Sequential(nn.Linear(obs_dim + language_dim, hidden), nn.Mish(), nn.Linear(hidden, hidden))
        self.output_dim = obs_dim + hidden
        self._cache: EmbeddingCache | None = None
        self._table_ready = False

    # ------------------------------------------------------------------ embeddings
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "instruction_embeddings" in state_dict:
            self._table_ready, self._cache = True, None

    def fill_table(self) -> None:
        """Embed the vocabulary into the buffer (the encoder loads once); a no-op once filled."""
        if self._table_ready:
            return
        if self.vocab:
            cache = EmbeddingCache()
            self.instruction_embeddings.copy_(cache.get(self.vocab).to(self.instruction_embeddings.device))
        self._table_ready, self._cache = True, None

    @property
    def cache(self) -> EmbeddingCache:
        self.fill_table()
        if self._cache is None:
            table = self.instruction_embeddings.detach().cpu()
            self._cache = EmbeddingCache({k: table[i] for i, k in enumerate(self.vocab)})
        return self._cache

    def embed(self, instructions) -> torch.Tensor:
        """[B] strings -> (B, 384) on the module's device (same string, same row: cached)."""
        texts = as_instruction_list(instructions)
        return self.cache.get(texts).to(self.instruction_embeddings.device)

    # ------------------------------------------------------------------ conditioning
    def forward(self, obs_features: torch.Tensor, instructions) -> torch.Tensor:
        emb = self.embed(instructions)
        if emb.shape[0] != obs_features.shape[0]:
            raise ValueError(f"{emb.shape[0]} instruction(s) for a batch of {obs_features.shape[0]} observations")
        fused = self.fuse(torch.cat([obs_features, self.project(emb)], dim=-1))
        return torch.cat([obs_features, fused], dim=-1)


def as_instruction_list(value) -> list[str]:
    """A batch's instructions as a list of strings: a str, a list/tuple of str, or a numpy string array
    (a DataLoader collates strings into a list; an (B, To) history array keeps its newest column)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray):
        value = value.reshape(value.shape[0], -1)[:, -1].tolist() if value.ndim > 1 else value.tolist()
    out = []
    for v in value:
        if isinstance(v, (list, tuple)):     # a (To,) history of one sample: the newest instruction
            v = v[-1]
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"instruction must be a non-empty string, got {v!r}")
        out.append(v)
    return out
