"""policy_stack/policies/kite/attribute_queries.py: single-attribute training queries keep the split
discipline (train wording, train layouts, never a held-out (size, colour) pair) and answer with every
object that has the attribute."""
import random

import pytest

from policy_stack.policies.kite.attribute_queries import (attribute_variants, description_span,
                                                          single_attribute_queries, with_single_attribute)
from sim.instructions import (COLOURS, HELDOUT_COMBOS, SIZES, TEMPLATES, draw_episode, grounding_queries,
                              templates_for)

SLOTS = [("cube0", "small"), ("cube1", "small"), ("cube2", "large"), ("cube3", "large")]
WORDS = set(COLOURS) | set(SIZES)


def _train_rows(n_episodes=120, hide_every=7):
    """Grounding-collection-like labels built the way sim/grounding_data.py builds them: two frames per
    train-split episode, a row per visible cube (every `hide_every`-th frame loses one cube), each
    row a train sub-instruction naming it."""
    rows = {k: [] for k in ("instructions", "episode_seed", "frame", "target_size", "target_colour", "target")}
    for seed in range(n_episodes):
        ep = draw_episode(seed, "train", SLOTS)
        rng = random.Random(seed)
        for f, frame in enumerate(("reset", "arm")):
            cubes = list(ep.layout)
            if (2 * seed + f) % hide_every == 0:
                cubes = cubes[1:]
            for cube in cubes:
                (_tid, _skill, text), = grounding_queries(rng, "train", ep.layout, cube.name)
                for k, v in (("instructions", text), ("episode_seed", seed), ("frame", frame),
                             ("target_size", cube.size), ("target_colour", cube.colour), ("target", cube.name)):
                    rows[k].append(v)
    return rows


def _train_phrasings(attribute: str) -> set[str]:
    out = set()
    for t in TEMPLATES:
        if t.heldout:
            continue
        for _skill, _slot, sub in t.steps:
            fill = {k: f"{attribute} cube" for k in "abc"} | {f"{k}_one": f"{attribute} one" for k in "abc"}
            out.add(sub.format(x=f"{attribute} cube", **fill))
    return out


def test_derived_queries_name_one_attribute_in_train_wording_and_never_a_heldout_pair():
    rows = _train_rows()
    # the source layouts are train layouts: no held-out pair anywhere, not even as a distractor
    assert not set(zip(rows["target_size"], rows["target_colour"])) & HELDOUT_COMBOS
    queries = single_attribute_queries(rows["instructions"], rows)
    assert len(queries) > 400
    heldout_wording = {sub.split("{")[0] for t in TEMPLATES if t.heldout for _s, _sl, sub in t.steps}
    for q in queries:
        words = [w for w in q.text.replace(":", " ").split() if w in WORDS]
        assert words == [q.attribute], q.text            # one attribute word: it cannot name a (size, colour) pair
        for size, colour in HELDOUT_COMBOS:
            assert not (size in q.text.split() and colour in q.text.split())
        assert q.text in _train_phrasings(q.attribute), q.text
        assert not any(q.text.startswith(p) for p in heldout_wording if p.strip()), q.text
    assert {"small", "large"} <= {q.attribute for q in queries} <= WORDS


def test_every_object_with_the_attribute_is_an_answer_and_incomplete_frames_give_none():
    rows = _train_rows()
    queries = single_attribute_queries(rows["instructions"], rows)
    key = lambda i: (rows["episode_seed"][i], rows["frame"][i])
    by_frame_rows = {}
    for i in range(len(rows["instructions"])):
        by_frame_rows.setdefault(key(i), []).append(i)
    answered = {}
    for q in queries:
        assert key(q.source_row) == key(q.answer_row)           # the answer is in the image asked about
        answered.setdefault((key(q.source_row), q.attribute), set()).add(rows["target"][q.answer_row])
    for (frame, attribute), targets in answered.items():
        frame_rows = by_frame_rows[frame]
        assert len({rows["target"][i] for i in frame_rows}) == len(SLOTS)   # only complete frames
        want = {rows["target"][i] for i in frame_rows
                if attribute in (rows["target_size"][i], rows["target_colour"][i])}
        assert targets == want
        if attribute in SIZES:
            assert len(targets) == 2                             # two cubes of each size in every layout
    incomplete = {f for f, r in by_frame_rows.items() if len({rows["target"][i] for i in r}) < len(SLOTS)}
    assert incomplete and not incomplete & {f for f, _a in answered}


def test_description_rewrites():
    assert with_single_attribute("put it on the small red one", "red", WORDS) == "put it on the red one"
    assert with_single_attribute("the large blue cube: pick it up", "large", WORDS) == "the large cube: pick it up"
    assert with_single_attribute("grab the green cube", "green", WORDS) == "grab the green cube"
    assert with_single_attribute("open the drawer", "red", WORDS) is None
    assert description_span("lift the small red cube", WORDS) == (9, 18)
    assert attribute_variants("could you raise the small blue cube", WORDS) == [
        "could you raise the small cube", "could you raise the blue cube"]
    assert attribute_variants("could you raise the blue cube", WORDS) == []


def test_missing_labels_are_an_error():
    rows = _train_rows(3)
    del rows["target_size"]
    with pytest.raises(ValueError, match="target_size"):
        single_attribute_queries(rows["instructions"], rows)


def test_composed_grounding_adds_each_attribute_alone():
    """compose_attributes: logits(full) + logits(each attribute alone) for a multi-attribute description;
    a one-attribute description, or compose off, is the plain forward pass."""
    import sys
    from pathlib import Path

    import torch

    from policy_stack.policies.kite.build import build_policy
    from policy_stack.policies.kite.grounding import image_tensor
    from policy_stack.policies.kite.text_encoder import EmbeddingCache

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    from kite_synthetic import make_grounding_data

    data = make_grounding_data(2, 32, seed=3)
    cfg = {"grounding_channels": [8, 16, 32], "text_hidden": 32, "stem_stride": 1, "device": "cpu",
           "compose_attributes": True, "attribute_words": sorted(WORDS)}
    policy = build_policy(data, cfg)
    torch.manual_seed(0)
    for m in policy.grounding.modules():          # FiLM starts as the identity: make the text matter
        if m.__class__.__name__ == "FiLM":
            torch.nn.init.normal_(m.proj.weight, std=0.5)
    texts = ["grab the small red cube", "grab the small cube", "grab the red cube", "grab the blue cube"]
    gen = torch.Generator().manual_seed(1)
    policy._cache = EmbeddingCache({t: torch.nn.functional.normalize(torch.randn(384, generator=gen), dim=0)
                                    for t in texts})
    x = image_tensor(data.rgb[:1], None, 2.0)
    plain = lambda t: policy.grounding(x, policy.text_cache.get([t]))
    with torch.no_grad():
        composed = policy.grounding_logits(x, [texts[0]])
        assert torch.allclose(composed, plain(texts[0]) + plain(texts[1]) + plain(texts[2]), atol=1e-5)
        assert not torch.allclose(composed, plain(texts[0]), atol=1e-3)
        assert torch.equal(policy.grounding_logits(x, [texts[3]]), plain(texts[3]))
        policy.config.compose_attributes = False
        assert torch.equal(policy.grounding_logits(x, [texts[0]]), plain(texts[0]))


def test_ensemble_sums_members_and_composes_only_the_listed_ones():
    import sys
    from pathlib import Path

    import torch

    from policy_stack.policies.kite.build import build_policy
    from policy_stack.policies.kite.grounding import image_tensor
    from policy_stack.policies.kite.text_encoder import EmbeddingCache

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    from kite_synthetic import make_grounding_data

    data = make_grounding_data(2, 32, seed=4)
    cfg = {"grounding_channels": [8, 16, 32], "text_hidden": 32, "stem_stride": 1, "device": "cpu",
           "compose_attributes": True, "attribute_words": sorted(WORDS), "grounding_ensemble": 2,
           "compose_members": [1]}
    policy = build_policy(data, cfg)
    assert sorted({k.split(".")[2] for k in policy.state_dict() if k.startswith("grounding.members.")}) == ["0", "1"]
    torch.manual_seed(0)
    for m in policy.grounding.modules():
        if m.__class__.__name__ == "FiLM":
            torch.nn.init.normal_(m.proj.weight, std=0.5)
    texts = ["grab the small red cube", "grab the small cube", "grab the red cube"]
    gen = torch.Generator().manual_seed(2)
    policy._cache = EmbeddingCache({t: torch.nn.functional.normalize(torch.randn(384, generator=gen), dim=0)
                                    for t in texts})
    x = image_tensor(data.rgb[:1], None, 2.0)
    m0, m1 = policy.grounding.members
    e = lambda t: policy.text_cache.get([t])
    with torch.no_grad():
        want = m0(x, e(texts[0])) + m1(x, e(texts[0])) + m1(x, e(texts[1])) + m1(x, e(texts[2]))
        assert torch.allclose(policy.grounding_logits(x, [texts[0]]), want, atol=1e-5)
    with pytest.raises(ValueError, match="compose_members"):
        build_policy(data, dict(cfg, compose_members=[2]))
