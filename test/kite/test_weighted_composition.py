"""Weighted attribute composition (KiteConfig.compose_weights): the per-network weighted sum of the full
text's and each attribute word's heatmap logits, and its round trip through a checkpoint."""
import sys
from pathlib import Path

import pytest
import torch

from policy_stack.checkpoint import load_checkpoint, save_checkpoint
from policy_stack.policies.kite.build import build_policy
from policy_stack.policies.kite.text_encoder import EMBED_DIM, EmbeddingCache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "policies"))
from kite_synthetic import make_grounding_data  # noqa: E402

SMALL = {"grounding_channels": [8, 16, 32], "text_hidden": 32, "stem_stride": 1, "device": "cpu",
         "attribute_words": ["blue", "large", "red", "small"], "size_words": ["large", "small"]}
TEXTS = ["pick up the small blue cube", "pick up the small cube", "pick up the blue cube", "pick up the red cube"]


def _policy(data, **fields):
    torch.manual_seed(0)
    policy = build_policy(data, dict(SMALL, **fields))
    for p in policy.grounding.parameters():          # untrained FiLM starts as the identity: perturb it
        p.data.add_(0.3 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    policy._cache = EmbeddingCache({t: torch.nn.functional.normalize(torch.randn(EMBED_DIM, generator=gen), dim=0)
                                    for t in TEXTS})
    return policy.eval()


@pytest.fixture(scope="module")
def data():
    d = make_grounding_data(4, 32, seed=3)
    d.meta["camera"] = "grounding"
    return d


@torch.no_grad()
def test_weights_select_the_terms(data):
    x = data.rgb[:2].permute(0, 3, 1, 2).float() / 255
    plain = _policy(data)
    full, size, colour = (plain.grounding(x, plain.text_cache.get([t] * 2)) for t in TEXTS[:3])
    for weights, expect in (([1, 0, 0], full), ([0, 1, 0], size), ([0.5, 1, 2], 0.5 * full + size + 2 * colour)):
        policy = _policy(data, compose_attributes=True, compose_weights=[weights])
        got = policy.grounding_logits(x, [TEXTS[0]] * 2)
        assert torch.allclose(got, expect, atol=1e-5), weights
    # [1, 1, 1] is the unweighted composition of compose_attributes
    legacy = _policy(data, compose_attributes=True).grounding_logits(x, [TEXTS[0]] * 2)
    ones = _policy(data, compose_attributes=True, compose_weights=[[1, 1, 1]]).grounding_logits(x, [TEXTS[0]] * 2)
    assert torch.allclose(legacy, ones, atol=1e-5)
    # a text without a two-word description keeps its plain logits whatever the weights
    policy = _policy(data, compose_attributes=True, compose_weights=[[0, 1, 2]])
    assert torch.allclose(policy.grounding_logits(x, [TEXTS[3]] * 2),
                          plain.grounding(x, plain.text_cache.get([TEXTS[3]] * 2)), atol=1e-6)


@torch.no_grad()
def test_ensemble_members_get_their_own_weights_and_survive_a_checkpoint(data, tmp_path):
    x = data.rgb[:2].permute(0, 3, 1, 2).float() / 255
    policy = _policy(data, grounding_ensemble=2, compose_attributes=True, compose_weights=[[1, 0, 0], [0, 1, 0.5]])
    m0, m1 = policy.grounding.members
    emb = lambda t: policy.text_cache.get([t] * 2)
    expect = m0(x, emb(TEXTS[0])) + m1(x, emb(TEXTS[1])) + 0.5 * m1(x, emb(TEXTS[2]))
    got = policy.grounding_logits(x, [TEXTS[0]] * 2)
    assert torch.allclose(got, expect, atol=1e-5)
    policy.freeze_instruction_cache()
    save_checkpoint(policy, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", device="cpu").policy
    assert loaded.config.compose_weights == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]
    assert loaded.config.size_words == ["large", "small"]
    assert torch.allclose(loaded.grounding_logits(x, [TEXTS[0]] * 2), got, atol=1e-5)


def test_bad_weights_are_refused(data):
    with pytest.raises(ValueError, match="compose_weights"):
        build_policy(data, dict(SMALL, compose_weights=[[1, 0]]))
    with pytest.raises(ValueError, match="compose_weights"):
        build_policy(data, dict(SMALL, grounding_ensemble=2, compose_weights=[[1, 0, 0]]))
    with pytest.raises(ValueError, match="size_words"):
        build_policy(data, dict(SMALL, size_words=[], compose_weights=[[1, 1, 1]]))
