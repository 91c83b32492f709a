"""Train the KITE grounding model from a compact pack (RGB, keypoint labels, precomputed instruction
embeddings; no depth, which only lifts keypoints at run time), then turn the weights into a checkpoint.
The training itself is the same `train_grounding` that `policy-stack train --policy kite` runs.

This is how the shipped `kite_multi_cube` and the loss comparison were made (docs/kite.md): the pack
holds out whole episodes for validation, trains several losses from one seed, and can store RGB as
JPEG (4:4:4, quality 95) to move the data to another machine (then `train` needs only torch, numpy,
safetensors and opencv: no transformers).

    python scripts/kite_offload_train.py pack   --train DIR [--train DIR ...] [--val NAME=DIR ...] [--jpeg 95] --out PACK
    python scripts/kite_offload_train.py train  --pack PACK --out OUT --steps N --batch B --loss softmax_ce,bce
    python scripts/kite_offload_train.py finish --pack PACK --weights OUT/LOSS.safetensors [--train DIR] --out CKPT
    python scripts/kite_offload_train.py evaluate --pack PACK --weights OUT/LOSS.safetensors [--set JSON]

`pack --attribute-queries` also derives single-attribute queries from the training rows
(policy_stack/policies/kite/attribute_queries.py); `train --attribute-frac F` mixes them in.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy_stack.policies.kite.data import (GroundingData, concat_grounding, grounding_metrics,  # noqa: E402
                                             load_grounding)


def _pack(args) -> None:
    from policy_stack.policies.kite.text_encoder import EmbeddingCache

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = {"train": args.train[0], **dict(v.split("=", 1) for v in args.val)}
    # Training strings and evaluation strings are cached apart, so a checkpoint made from the pack
    # (`finish`) carries only the embeddings of what it trained on.
    cache, val_cache = EmbeddingCache(), EmbeddingCache()
    meta = {}
    # Several train collections (disjoint episode seeds) are trained on as one.
    full = concat_grounding([load_grounding(d) for d in args.train])
    # Validation rows for choosing the loss: the train folder's last episodes (whole episodes, since rows
    # of one episode share a rendered frame), never seen in training.
    episodes = np.asarray(full.meta.get("episode_seed", np.arange(len(full))))
    cut = np.quantile(np.unique(episodes), 1.0 - args.holdout_frac)
    parts = {"train": np.flatnonzero(episodes < cut), "val_episodes": np.flatnonzero(episodes >= cut)}
    for name, folder in [("train", None), ("val_episodes", None), *[(k, v) for k, v in sets.items() if k != "train"]]:
        if folder is None:
            d = full.subset(parts[name])
        else:
            d = load_grounding(folder)
            d = d.subset(np.arange(min(len(d), args.val_rows)))
        (cache if name == "train" else val_cache).get(d.instructions)
        arrays = {"rgb": d.rgb.numpy(), "kp_px": d.kp_px.numpy()}
        if args.jpeg:     # smaller to carry; decoded back to uint8 RGB on load (quality >= 95: ~1 grey level)
            import cv2
            blobs = [cv2.imencode(".jpg", im[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, args.jpeg])[1].ravel()
                     for im in arrays.pop("rgb")]
            arrays["jpeg"] = np.concatenate(blobs)
            arrays["jpeg_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
            arrays["shape"] = np.array(d.rgb.shape)
        if name != "train":
            arrays["target_mask"] = d.target_mask.numpy()
        np.savez_compressed(out / f"{name}.npz", **arrays)
        meta[name] = {"instructions": d.instructions, "task": d.task, "K": d.K[0].tolist(),
                      "T_base_cam": d.T_base_cam[0].tolist(), "rows": len(d),
                      "meta": {k: v for k, v in d.meta.items() if not isinstance(v, list)},
                      "folder": str(Path(folder).resolve()) if folder else
                      ",".join(str(Path(d).resolve()) for d in args.train)}
        if name == "train" and args.attribute_queries:
            from policy_stack.policies.kite.attribute_queries import attribute_vocab
            meta[name]["attribute_queries"] = _attribute_queries(d, cache)
            meta[name]["attribute_words"] = sorted({w for ws in attribute_vocab(d.meta).values() for w in ws})
    cache.save(out)
    (out / VAL_TEXT).mkdir(exist_ok=True)
    val_cache.save(out / VAL_TEXT)
    (out / "pack.json").write_text(json.dumps(meta))
    print({p.name: p.stat().st_size for p in out.iterdir()})


VAL_TEXT = "val_text"      # the evaluation strings' embeddings (kept out of checkpoints)


def _attribute_queries(d: GroundingData, cache) -> dict:
    """Single-attribute queries derived from the training rows (policy_stack/policies/kite/
    attribute_queries.py): stored as row references, so the pack holds no second copy of the images."""
    from policy_stack.policies.kite.attribute_queries import single_attribute_queries

    queries = single_attribute_queries(d.instructions, d.meta)
    cache.get([q.text for q in queries])
    print(f"attribute queries: {len(queries)} rows from {len(d)} training rows", flush=True)
    return {"source_row": [q.source_row for q in queries], "answer_row": [q.answer_row for q in queries],
            "attribute": [q.attribute for q in queries], "text": [q.text for q in queries]}


def _with_attribute_queries(train: GroundingData, queries: dict, fraction: float, seed: int) -> GroundingData:
    """The training rows plus derived single-attribute rows making up `fraction` of the result (drawn
    from the pack's queries, with repeats if there are too few). Each derived row: the source row's
    image, the answer row's keypoint, the derived text, the source row's skill label."""
    n_extra = int(round(len(train) * fraction / (1.0 - fraction)))
    rng = np.random.default_rng(seed)
    q = len(queries["text"])
    pick = rng.permutation(q)[:n_extra] if n_extra <= q else rng.integers(0, q, n_extra)
    src = torch.as_tensor([queries["source_row"][i] for i in pick], dtype=torch.long)
    ans = torch.as_tensor([queries["answer_row"][i] for i in pick], dtype=torch.long)
    # Only the images and keypoints are copied: the training rows of a pack carry no depth, mask or 3-D
    # label (zeros), so those stay broadcast views and the extra rows cost 48 KB each, not 120 KB.
    n, h, w = len(train) + len(pick), train.rgb.shape[1], train.rgb.shape[2]
    tasks = train.task + [train.task[i] for i in src.tolist()] if train.task else []
    zeros = lambda *shape, dtype=torch.float32: torch.zeros(1, *shape, dtype=dtype).expand(n, *shape)
    return GroundingData(torch.cat([train.rgb, train.rgb[src]]), zeros(h, w), torch.cat([train.kp_px, train.kp_px[ans]]),
                         zeros(h, w, dtype=torch.uint8), train.K[:1].expand(n, 3, 3),
                         train.T_base_cam[:1].expand(n, 4, 4), zeros(3),
                         train.instructions + [queries["text"][i] for i in pick], tasks, [], dict(train.meta))


def _load_pack_set(pack: Path, name: str, meta: dict) -> GroundingData:
    z = dict(np.load(pack / f"{name}.npz"))
    m = meta[name]
    if "jpeg" in z:
        import cv2
        off = z["jpeg_offsets"]
        z["rgb"] = np.stack([cv2.imdecode(z["jpeg"][off[i]:off[i + 1]], cv2.IMREAD_COLOR)[..., ::-1]
                             for i in range(len(off) - 1)]).astype(np.uint8)
    n, h, w = z["rgb"].shape[:3]
    # No depth or 3-D labels in a pack: zeros, as broadcast views (a training set of 12k rows would
    # otherwise hold 0.75 GB of zero depth).
    mask = (torch.from_numpy(z["target_mask"]) if "target_mask" in z
            else torch.zeros(1, h, w, dtype=torch.uint8).expand(n, h, w))
    K = torch.tensor(m["K"], dtype=torch.float32).expand(n, 3, 3).clone()
    T = torch.tensor(m["T_base_cam"], dtype=torch.float32).expand(n, 4, 4).clone()
    return GroundingData(torch.from_numpy(z["rgb"]), torch.zeros(1, h, w).expand(n, h, w), torch.from_numpy(z["kp_px"]),
                         mask, K, T, torch.zeros(n, 3), m["instructions"], m["task"], [], dict(m["meta"]))


def _policy_for(pack: Path, data: GroundingData, overrides: dict):
    from policy_stack.policies.kite.build import build_policy
    from policy_stack.policies.kite.text_encoder import EmbeddingCache

    words = json.loads((pack / "pack.json").read_text())["train"].get("attribute_words")
    policy = build_policy(data, dict({"attribute_words": words} if words else {}, **overrides))
    policy._cache = EmbeddingCache.load(pack)      # precomputed: no transformer needed here
    if (pack / VAL_TEXT).is_dir():
        policy._cache._table.update(EmbeddingCache.load(pack / VAL_TEXT)._table)
    return policy


def _load_weights(policy, path, weights: dict | None = None) -> None:
    from safetensors.torch import load_file

    weights = dict(weights) if weights is not None else load_file(str(path))
    weights.pop("instruction_embeddings", None)     # tied to the vocabulary the weights were frozen with
    missing, unexpected = torch.nn.Module.load_state_dict(policy, weights, strict=False)
    if [k for k in missing if k != "instruction_embeddings"] or unexpected:
        raise SystemExit(f"weights in {path} do not fit: missing {missing}, unexpected {unexpected}")


def _train(args) -> None:
    from safetensors.torch import save_file

    from policy_stack.policies.kite.train_grounding import predict, train_grounding

    pack, out = Path(args.pack), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((pack / "pack.json").read_text())
    train = _load_pack_set(pack, "train", meta)
    vals = {name: _load_pack_set(pack, name, meta) for name in meta if name != "train"}
    if args.attribute_frac > 0:
        if "attribute_queries" not in meta["train"]:
            raise SystemExit(f"{pack} has no attribute queries: pack it with --attribute-queries")
        train = _with_attribute_queries(train, meta["train"]["attribute_queries"], args.attribute_frac, args.seed)
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "runs": {}}
    for loss in args.loss.split(","):
        torch.manual_seed(args.seed)
        policy = _policy_for(pack, train, dict(json.loads(args.set), loss=loss, device=args.device))
        if args.init:      # continue from a checkpoint's weights (same architecture; the vocabulary is rebuilt)
            _load_weights(policy, Path(args.init) / "model.safetensors" if Path(args.init).is_dir() else args.init)
        t0 = time.perf_counter()
        result = train_grounding(policy, train, args.steps, batch=args.batch, seed=args.seed, progress=False,
                                 log_every=100, log_path=out / f"{loss}_log.jsonl")
        run = {"train_s": round(time.perf_counter() - t0, 1), "final_loss": result["final_loss"], "val": {}}
        for name, val in vals.items():
            m = grounding_metrics(predict(policy, val), val)
            run["val"][name] = {k: m[k] for k in ("samples", "correct_object_rate", "pixel_error_px_median",
                                                  "pixel_error_px_p90")}
        report["runs"][loss] = run
        save_file({k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()},
                  str(out / f"{loss}.safetensors"))
        print(json.dumps({loss: run}), flush=True)
    report.update(steps=args.steps, batch=args.batch, seed=args.seed, rows=len(train), init=args.init,
                  attribute_frac=args.attribute_frac, set=json.loads(args.set))
    (out / "report.json").write_text(json.dumps(report, indent=1))


def _evaluate(args) -> None:
    """The pack's validation sets scored with trained weights (e.g. with and without compose_attributes)."""
    from policy_stack.policies.kite.train_grounding import predict

    pack = Path(args.pack)
    meta = json.loads((pack / "pack.json").read_text())
    train = _load_pack_set(pack, "train", meta)
    from policy_stack.policies.kite.grounding import LOSSES

    first = _weights_file(args.weights[0])
    loss = first.stem if len(args.weights) == 1 and first.stem in LOSSES else "softmax_ce"
    overrides = dict(json.loads(args.set), loss=loss, device="cpu")
    if len(args.weights) > 1:       # an ensemble: the members' logits are summed
        overrides["grounding_ensemble"] = len(args.weights)
        policy = _policy_for(pack, train, overrides)
        _load_weights(policy, args.weights, _ensemble_weights(args.weights))
    else:
        policy = _policy_for(pack, train, overrides)
        _load_weights(policy, first)
    policy.eval()
    out = {"weights": str(args.weights), "set": json.loads(args.set), "val": {}}
    for name in [n for n in meta if n != "train"]:
        val = _load_pack_set(pack, name, meta)
        m = grounding_metrics(predict(policy, val), val)
        out["val"][name] = {k: m[k] for k in ("samples", "correct_object_rate", "pixel_error_px_median",
                                              "pixel_error_px_p90")}
    print(json.dumps(out), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


def _weights_file(path) -> Path:
    return Path(path) / "model.safetensors" if Path(path).is_dir() else Path(path)


def _ensemble_weights(paths: list[str]) -> dict:
    """Several trainings' weights as one KitePolicy with grounding_ensemble = len(paths): member i's
    grounding network from paths[i]; the skill head from the first."""
    from safetensors.torch import load_file

    merged = {}
    for i, path in enumerate(paths):
        for key, value in load_file(str(_weights_file(path))).items():
            if key.startswith("grounding."):
                merged[f"grounding.members.{i}.{key[len('grounding.'):]}"] = value
            elif i == 0:
                merged[key] = value
    return merged


def _finish(args) -> None:
    from safetensors.torch import load_file

    from policy_stack.checkpoint import save_checkpoint
    from policy_stack.policies.kite.build import build_policy

    pack = Path(args.pack)
    if args.train:
        data = load_grounding(args.train)
    else:       # the pack's training rows carry what the policy is built from (size, skills, camera)
        meta_all = json.loads((pack / "pack.json").read_text())
        data = _load_pack_set(pack, "train", meta_all)
        data.meta.setdefault("camera", (meta_all["train"]["meta"].get("summary") or {}).get("camera", "grounding"))
    weights = _ensemble_weights(args.weights) if len(args.weights) > 1 else load_file(_weights_file(args.weights[0]))
    from policy_stack.policies.kite.grounding import LOSSES
    stem = _weights_file(args.weights[0]).stem
    loss = stem if len(args.weights) == 1 and stem in LOSSES else "softmax_ce"   # a checkpoint: model.safetensors
    words = json.loads((pack / "pack.json").read_text())["train"].get("attribute_words")
    overrides = dict(json.loads(args.set), loss=loss, device="cpu", **({"attribute_words": words} if words else {}))
    if len(args.weights) > 1:
        overrides["grounding_ensemble"] = len(args.weights)
    policy = build_policy(data, overrides)
    policy._cache = __import__("policy_stack.policies.kite.text_encoder", fromlist=["x"]).EmbeddingCache.load(args.pack)
    weights.pop("instruction_embeddings", None)
    missing, unexpected = torch.nn.Module.load_state_dict(policy, weights, strict=False)
    if [k for k in missing if k != "instruction_embeddings"] or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    policy.freeze_instruction_cache()
    report = json.loads(Path(args.report).read_text()) if args.report else {}
    cfg = policy.config
    train_config = {"steps": report.get("steps"), "batch": report.get("batch"), "seed": report.get("seed"),
                    "rows": report.get("rows"), "loss": cfg.loss, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                    "warmup": cfg.lr_warmup_steps, "grad_clip": cfg.grad_clip, "device": report.get("device")}
    save_checkpoint(policy, args.out, meta={"trained_with": "scripts/kite_offload_train.py", "train_config": train_config,
                                            "report": report,
                                            "data": str(Path(args.train).resolve()) if args.train else
                                            json.loads((pack / "pack.json").read_text())["train"]["folder"]})
    print(f"wrote {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--train", required=True, action="append", help="grounding folder; repeat to train on several")
    a.add_argument("--val", action="append", default=[], metavar="NAME=DIR")
    a.add_argument("--val-rows", type=int, default=400)
    a.add_argument("--holdout-frac", type=float, default=0.15)
    a.add_argument("--attribute-queries", action="store_true",
                   help="derive single-attribute queries from the training rows (train --attribute-frac uses them)")
    a.add_argument("--jpeg", type=int, default=0, metavar="QUALITY", help="store RGB as JPEG (0 = raw, compressed npz)")
    a.add_argument("--out", required=True)
    b = sub.add_parser("train")
    b.add_argument("--pack", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--steps", type=int, default=3000)
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--loss", default="softmax_ce,bce")
    b.add_argument("--device", default="auto")
    b.add_argument("--set", default="{}", help="KiteConfig fields as a JSON object")
    b.add_argument("--attribute-frac", type=float, default=0.0,
                   help="share of training rows that are derived single-attribute queries (needs a pack made "
                        "with --attribute-queries)")
    b.add_argument("--init", default=None, help="start from these weights (a checkpoint folder or .safetensors)")
    c = sub.add_parser("finish")
    c.add_argument("--pack", required=True)
    c.add_argument("--weights", required=True, action="append",
                   help="trained weights (.safetensors or a checkpoint folder); repeat for an ensemble "
                        "(grounding_ensemble = how many, the skill head from the first)")
    c.add_argument("--train", default=None, help="grounding folder (default: the pack's training rows)")
    c.add_argument("--report", default=None)
    c.add_argument("--set", default="{}", help="KiteConfig fields as a JSON object (e.g. compose_attributes)")
    c.add_argument("--out", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--pack", required=True)
    e.add_argument("--weights", required=True, action="append", help="repeat for an ensemble")
    e.add_argument("--set", default="{}", help="KiteConfig fields as a JSON object")
    e.add_argument("--out", default=None)
    args = p.parse_args()
    {"pack": _pack, "train": _train, "finish": _finish, "evaluate": _evaluate}[args.cmd](args)


if __name__ == "__main__":
    main()
