"""Gradient clipping is a policy-config setting the trainer reads (EBT ships with 1.0, diffusion 0), and
`--grad-clip` overrides it by writing the config field, so the checkpoint states what training used."""
import json

import torch

from policy_stack.checkpoint import read_config
from policy_stack.train.config import TrainConfig
from policy_stack.train.trainer import Trainer

from train_synthetic import TINY_EBT

torch.set_num_threads(1)
TINY_EBT_FIELDS = {item.split("=")[0]: json.loads(item.split("=")[1]) for item in TINY_EBT[1::2]}


def _trained(tiny_dataset, out, policy_fields=None, **train_kw):
    cfg = TrainConfig(policy="ebt", data=tiny_dataset, out=str(out), steps=1, batch=8, warmup=1, eval_every=0,
                      progress=False, device="cpu", policy_overrides={**TINY_EBT_FIELDS, **(policy_fields or {})},
                      **train_kw)
    trainer = Trainer(cfg)
    trainer._setup()
    before = {k: v.detach().clone() for k, v in trainer.policy.named_parameters()}
    trainer.model.train()
    trainer._train_step(next(iter(trainer.loader)))
    delta = sum((p.detach() - before[k]).abs().sum() for k, p in trainer.policy.named_parameters())
    return trainer, float(delta)


def test_grad_clip_comes_from_the_policy_config(tiny_dataset, tmp_path):
    trainer, _ = _trained(tiny_dataset, tmp_path / "default")
    assert trainer.optim_preset.grad_clip == 1.0          # EBTConfig's, with no flag given
    trainer.log.close()


def test_config_grad_clip_is_applied_and_the_flag_overrides_it(tiny_dataset, tmp_path):
    # The first AdamW step moves each weight by about lr * g / (|g| + 1e-8): clipping the gradient norm
    # to 1e-10 shrinks every step ~100x, while without clipping the steps are ~lr each.
    clipped, moved_clipped = _trained(tiny_dataset, tmp_path / "clipped", policy_fields={"grad_clip": 1e-10})
    free, moved_free = _trained(tiny_dataset, tmp_path / "free", grad_clip=0.0)    # --grad-clip 0
    assert clipped.policy.config.grad_clip == 1e-10 and free.policy.config.grad_clip == 0.0
    assert moved_clipped < 0.05 * moved_free
    for t in (clipped, free):
        t._save()
        t.log.close()
    assert read_config(tmp_path / "free")["config"]["grad_clip"] == 0.0   # what the training ran with
