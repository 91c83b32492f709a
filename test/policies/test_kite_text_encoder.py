"""KITE's frozen sentence encoder (all-MiniLM-L6-v2 from the PyPI wheel) and its instruction cache."""
import pytest
import torch

from policy_stack.policies.kite.text_encoder import EMBED_DIM, EmbeddingCache, SentenceEncoder, cosine


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


def test_embedding_is_deterministic_and_unit_norm(encoder):
    a = encoder.encode(["pick up the small red cube"])
    b = encoder.encode(["pick up the small red cube", "stack the blue cube on the yellow one"])
    assert a.shape == (1, EMBED_DIM)
    assert torch.equal(a, encoder.encode(["pick up the small red cube"]))   # same string, same vector
    assert torch.allclose(a[0], b[0], atol=1e-5)   # padding in a batch is masked out of the mean
    assert torch.allclose(b.norm(dim=1), torch.ones(2), atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(encoder):
    e = encoder.encode(["pick up the red cube", "grab the red block", "lift the red cube up",
                        "what will the weather be tomorrow", "the stock market fell sharply"])
    for para in (1, 2):
        for unrelated in (3, 4):
            assert cosine(e[0], e[para]) > cosine(e[0], e[unrelated]) + 0.3


def test_cache_encodes_each_unique_string_once_and_round_trips(encoder, tmp_path):
    cache = EmbeddingCache(encoder=encoder)
    out = cache.get(["pick up the red cube", "pick up  the red cube ", "grab the blue one"])
    assert cache.misses == 2 and len(cache) == 2     # whitespace variants share an entry
    assert torch.equal(out[0], out[1])
    cache.save(tmp_path)
    loaded = EmbeddingCache.load(tmp_path)            # no encoder: hits must not need the transformer
    assert torch.equal(loaded.get(["grab the blue one"])[0], out[2])
    assert loaded.misses == 0 and loaded._encoder is None
