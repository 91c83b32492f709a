"""Inference-time composition variants of one trained KITE grounding model, without retraining.

For every row of a pack's evaluation sets (scripts/kite_offload_train.py pack --val ...), the grounding
network's log-probability maps are computed once for the full sub-instruction and for the same sentence
with each attribute word alone ("raise the small blue cube" -> "raise the small cube", "raise the blue
cube"); each variant below is a weighted sum of those maps (a weighted product of the distributions):

    w_full * log p(full) + w_size * log p(size word alone) + w_colour * log p(colour word alone)

Rows whose text has no two-word description only have the full map. It also reports, for the wrong
predictions, which cube of the frame the keypoint landed on ("landed_on": the other rows of the same
frame give each labelled cube's mask; a held-out-attribute collection labels only its held-out cubes,
so there "no labelled cube" includes the unlabelled cubes), read from the grounding folder the pack was made from.

    python scripts/kite_compose_sweep.py --pack runs/kg/pack --weights W.safetensors [--weights W2 ...] \
        [--variant "wf,ws,wc[;wf,ws,wc]" ...] [--grid] [--out JSON]

With several --weights, each is a member network and a variant gives one weight triple per member (the
members' weighted maps are summed: an ensemble whose members may compose differently).

Choosing a variant here is choosing on the evaluation sets themselves: confirm it on fresh collections.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kite_offload_train import _load_pack_set, _load_weights, _policy_for, _weights_file  # noqa: E402
from policy_stack.policies.kite.attribute_queries import attribute_variants, description_span  # noqa: E402
from policy_stack.policies.kite.data import argmax_pixels, load_grounding, rows_by_frame  # noqa: E402
from policy_stack.policies.kite.grounding import decode_keypoint  # noqa: E402
from policy_stack.policies.kite.train_grounding import batch_inputs  # noqa: E402

TWIN_RGB_DISTANCE = 40.0   # 0-255 RGB distance to the target cube's mean colour: "same colour" below it
DEFAULT_VARIANTS = ["1,0,0", "1,1,1", "0,1,1", "0.5,1,1", "0.25,1,1", "1,1,0.5", "1,0.5,1", "0.5,1,0.5",
                    "0.5,0.5,1", "1,2,1", "1,1,2", "0,1,0.5", "0,0.5,1", "0.5,1.5,1"]


@torch.no_grad()
def log_maps(policy, data, texts: list[str | None], batch: int = 64) -> torch.Tensor:
    """(N, H, W) log-softmax maps for (image i, texts[i]); rows with text None are NaN."""
    rows = [i for i, t in enumerate(texts) if t is not None]
    h, w = data.rgb.shape[1:3]
    out = torch.full((len(texts), h, w), float("nan"))
    for s in range(0, len(rows), batch):
        idx = torch.tensor(rows[s:s + batch])
        emb = policy.text_cache.get([texts[i] for i in idx.tolist()]).to(policy.device)
        logits = policy.grounding(batch_inputs(policy, data, idx).to(policy.device), emb)
        out[idx] = F.log_softmax(logits.reshape(len(idx), -1), 1).reshape(len(idx), h, w).cpu()
    return out


def frame_masks(folder: str, n: int):
    """Per row: the (size colour) name of each other visible cube of its frame and that cube's mask."""
    d = load_grounding(folder)
    m = d.meta
    names = [f"{m['target_size'][i]} {m['target_colour'][i]}" for i in range(n)]
    return d.target_mask.numpy()[:n], names, {i: rows for rows in rows_by_frame(m, n).values() for i in rows}


def member_policy(pack: Path, train, weights: str):
    policy = _policy_for(pack, train, dict(loss="softmax_ce", device="cpu", compose_attributes=False))
    _load_weights(policy, _weights_file(weights))
    return policy.eval()


def parse_variant(text: str, members: int) -> tuple[tuple[float, float, float], ...]:
    """"wf,ws,wc" (every member alike) or "wf,ws,wc;wf,ws,wc" (one triple per member)."""
    parts = [tuple(float(x) for x in p.split(",")) for p in text.split(";")]
    if len(parts) == 1:
        parts = parts * members
    if len(parts) != members or any(len(p) != 3 for p in parts):
        raise SystemExit(f"variant {text!r}: need one w_full,w_size,w_colour triple or {members}")
    return tuple(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--weights", action="append", required=True,
                    help="a member network (.safetensors or checkpoint folder); repeat for several")
    ap.add_argument("--variant", action="append", default=[],
                    help="w_full,w_size,w_colour for every member, or one triple per member joined by ';'")
    ap.add_argument("--grid", action="store_true", help="also every per-member triple from a small grid")
    ap.add_argument("--sets", default="", help="comma-separated evaluation sets (default: all of the pack's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    pack = Path(args.pack)
    meta = json.loads((pack / "pack.json").read_text())
    train = _load_pack_set(pack, "train", meta)
    policies = [member_policy(pack, train, w) for w in args.weights]
    vocab = set(meta["train"].get("attribute_words") or [])
    sizes = {"small", "large"} & vocab
    m = len(policies)
    variants = [parse_variant(v, m) for v in (args.variant or DEFAULT_VARIANTS)]
    if args.grid:
        import itertools
        triples = [(wf, ws, wc) for wf in (0, 0.5, 1) for ws in (0, 0.5, 1, 1.5) for wc in (0, 0.5, 1)
                   if (wf, ws, wc) != (0, 0, 0)]
        variants += list(itertools.product(triples, repeat=m))
    variants = list(dict.fromkeys(variants))
    names = [n for n in meta if n != "train"] if not args.sets else args.sets.split(",")
    result = {"weights": args.weights, "variants": {}}
    for name in names:
        data = _load_pack_set(pack, name, meta)
        n = len(data)
        size_t, colour_t = [None] * n, [None] * n
        for i, text in enumerate(data.instructions):
            for v in attribute_variants(text, vocab):
                start, end = description_span(v, vocab)
                if v[start:end] in sizes:
                    size_t[i] = v
                else:
                    colour_t[i] = v
        plain = torch.tensor([s is None and c is None for s, c in zip(size_t, colour_t)])
        maps = [(log_maps(p, data, data.instructions), torch.nan_to_num(log_maps(p, data, size_t), nan=0.0),
                 torch.nan_to_num(log_maps(p, data, colour_t), nan=0.0)) for p in policies]
        masks, cube_names, frame_rows = (frame_masks(meta[name]["folder"], n) if meta[name].get("folder")
                                         else (None, None, None))
        h, w = data.rgb.shape[1:3]
        target = data.target_mask.numpy()
        for variant in variants:
            total = torch.zeros(n, h, w)
            full_only = torch.zeros(n, h, w)
            for (wf, ws, wc), (full, size_m, colour_m) in zip(variant, maps):
                total += wf * full + ws * size_m + wc * colour_m
                full_only += full
            # a row without a two-word description is grounded by the members' full maps alone
            total[plain] = full_only[plain]
            uv = decode_keypoint(total, 2).numpy()
            ui, vi = argmax_pixels(uv, h, w)            # also where the misses below landed
            ok = target[np.arange(n), vi, ui] > 0
            px = np.linalg.norm(uv - data.kp_px.numpy(), axis=1)
            key = ";".join(f"{wf:g},{ws:g},{wc:g}" for wf, ws, wc in variant)
            entry = {"correct_object_rate": float(ok.mean()), "correct": int(ok.sum()), "rows": n,
                     "pixel_error_px_median": float(np.median(px))}
            if masks is not None:
                landed, wrong = Counter(), Counter()
                for i in np.flatnonzero(~ok):
                    on = [cube_names[j] for j in frame_rows[i] if j != i and masks[j, vi[i], ui[i]] > 0]
                    if not on:      # unlabelled: is the pixel the target's colour (its same-colour twin)?
                        rgb = data.rgb[i].numpy().astype(float)
                        ref = rgb[target[i] > 0].mean(0)
                        near = np.linalg.norm(rgb[vi[i], ui[i]] - ref) < TWIN_RGB_DISTANCE
                        on = ["an unlabelled cube of its colour" if near else "no labelled cube, not its colour"]
                    landed[f"{cube_names[i]} -> {on[0]}"] += 1
                    wrong[cube_names[i]] += 1
                entry["wrong_landed_on"] = dict(landed.most_common())
                totals = Counter(cube_names)
                entry["by_target"] = {k: round(1 - wrong[k] / totals[k], 4) for k in sorted(totals)}
            result["variants"].setdefault(key, {})[name] = entry
        print(name, "done", flush=True)
    best = sorted(result["variants"].items(), key=lambda kv: -min(
        kv[1].get(s, {}).get("correct_object_rate", 1) - t for s, t in
        (("heldout_templates", 0.90), ("heldout_attributes", 0.80), ("heldout_layouts", 0.97))))
    for key, rows in best[:25]:
        print(key, {s: round(r["correct_object_rate"], 4) for s, r in rows.items()})
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
