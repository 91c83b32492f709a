"""The training loop: AdamW + warmup/cosine LR, EMA, DDP, atomic snapshots, exact resume.

One process (`policy-stack train ...`) or many (`torchrun --nproc_per_node=N -m policy_stack.cli
train ...`): every rank runs the same loop on its DistributedSampler shard; DDP all-reduces the
gradients, so the weights (and hence every rank's EMA copy) stay identical. Rank 0 alone writes
snapshots, TensorBoard and the loss log, and runs the rollout evaluation (other ranks wait).

Resume: rerunning the same command continues from OUT/checkpoints/latest: raw weights, EMA,
optimizer moments, step, data position (epoch + batch within it) and every rank's RNG streams are
restored, so the continued loss curve is the one the killed run would have produced.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from policy_stack import persist
from policy_stack.checkpoint import optimizer_state_from_tensors, optimizer_state_to_tensors, save_checkpoint

from . import state as st
from .config import TrainConfig
from .data import action_space_of, obs_spec_of, open_dataset, policy_overrides
from .distributed import DistContext, init_distributed
from policy_stack.rng import capture_rng, restore_rng, seed_everything
from .data_order import ResumableDistributedSampler
from .schedule import set_lr

LOG_FILE = "train_log.jsonl"
EVAL_LOG_FILE = "eval_log.jsonl"
SUMMARY_FILE = "train_summary.json"

# evaluator(checkpoint_folder, step) -> summary dict with at least "success_rate"; built by the CLI
# (it imports sim/), so this core module never touches robosuite.
Evaluator = Callable[[Path, int], dict]


# --time-budget: steps of each sitting timed to estimate the rate (after the first steps' allocations),
# and the fraction of the remaining budget planned (saving, the final snapshot and jitter need the rest)
BUDGET_PROBE = (20, 120)
BUDGET_SAFETY = 0.95


def budget_steps(step: int, steps_per_s: float, seconds_left: float) -> int:
    """The step count a --time-budget run stops at: `step` plus what fits in the planned share of the
    time left at the measured rate (never fewer than `step`)."""
    return step + int(max(0.0, seconds_left) * steps_per_s * BUDGET_SAFETY)


class _LossModule(nn.Module):
    """DDP wraps a module and syncs gradients of what its forward() used; policies expose their
    objective as `loss(batch)`, so forward is that call."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict) -> torch.Tensor:
        return self.policy.loss(batch)


class Trainer:
    def __init__(self, cfg: TrainConfig, evaluator: Evaluator | None = None, ctx: DistContext | None = None):
        self.cfg = cfg
        self.evaluator = evaluator
        self.ctx = ctx
        self.out = Path(cfg.out)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.last_loss = float("nan")
        self._last_saved = -1
        self._budget_fitted = False
        self._probe_t0 = None
        self.last_eval: dict | None = None

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        from policy_stack.data.torch_dataset import WindowDataset
        from policy_stack.nn.ema import EMAModel
        from policy_stack.policies import make_policy

        cfg = self.cfg
        self.ctx = self.ctx or init_distributed(cfg.device)
        ctx = self.ctx
        self.snapshot = self._find_resume_point()
        # Same seed on every rank for the weight init (DDP would broadcast rank 0's anyway, but the
        # EMA copy is taken before that); per-rank streams for the training noise come below.
        seed_everything(cfg.seed)

        reader = open_dataset(cfg.data)
        self.reader = reader
        stats = reader.normalization_stats()
        action_space = action_space_of(reader)
        overrides = policy_overrides(cfg, reader)
        overrides["device"] = "cuda" if ctx.device.type == "cuda" else "cpu"
        keys = list(overrides["lowdim_keys"]) + [f"{c}_{s}" for c in overrides.get("cameras", [])
                                                 for s in (("rgb", "depth") if overrides.get("use_depth") else ("rgb",))]
        keys += [k for k in reader.lowdim_keys if k not in keys]   # derived-feature inputs, if any
        if cfg.init:
            policy = self._init_policy(overrides, reader)
        else:
            policy = make_policy(cfg.policy, overrides, stats, action_space, obs_spec_of(reader, keys))
        policy.to(ctx.device)
        self.policy = policy
        pc = policy.config
        # One owner per training setting: the policy config's preset, into which make_policy already
        # wrote the CLI's overrides (--lr, --warmup, --grad-clip, ...; train/data.py policy_overrides).
        self.optim_preset = pc.optimizer_preset()
        self.base_lr = self.optim_preset.lr
        self.warmup = self.optim_preset.warmup_steps
        self.optimizer = self.optim_preset.build(policy.parameters())
        self.ema = EMAModel(policy, pc.ema)

        pending_rng = self._restore(self.snapshot) if self.snapshot is not None else None

        # a language-conditioned policy also reads each episode's task string (the instruction)
        data_keys = list(policy.obs_spec) + (["instruction"] if getattr(pc, "language_conditioning", False) else [])
        dataset = WindowDataset(reader, data_keys, To=pc.n_obs_steps, Tp=pc.horizon,
                                progress=ctx.is_main and cfg.progress)
        if len(dataset) < ctx.world_size:
            raise ValueError(f"dataset {cfg.data} has {len(dataset)} windows, fewer than {ctx.world_size} ranks")
        per_rank = math.ceil(len(dataset) / ctx.world_size)
        drop_last = per_rank >= cfg.batch  # tiny datasets: keep the one short batch rather than none
        self.sampler = ResumableDistributedSampler(dataset, ctx.world_size, ctx.rank, seed=cfg.seed)
        self.batches_per_epoch = per_rank // cfg.batch if drop_last else math.ceil(per_rank / cfg.batch)
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch, sampler=self.sampler, drop_last=drop_last,
            num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
            pin_memory=ctx.device.type == "cuda",
            # its own generator: each new iterator draws a worker base seed, and drawing it from the
            # global stream would shift the training noise after a mid-epoch resume
            generator=torch.Generator().manual_seed(cfg.seed + ctx.rank))
        self.dataset = dataset

        self.model: nn.Module = _LossModule(policy)
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            self.model = DDP(self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                             find_unused_parameters=cfg.find_unused_parameters)
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._open_logs()
        # RNG last, after everything that might draw from it during setup
        seed_everything(cfg.seed + ctx.rank)
        if pending_rng:
            restore_rng(pending_rng, ctx.device)
        elif self.snapshot is not None:   # more ranks than were saved: fresh, reproducible streams
            seed_everything(cfg.seed + ctx.rank + 1_000_003 * self.step)

    def _init_policy(self, overrides: dict, reader):
        """--init CKPT (fine-tuning, e.g. a sim-to-real session): the architecture, weights AND normalization
        of an existing checkpoint, so the weights keep meaning what they meant; the new data's statistics are
        not used. Only the optimizer settings (--lr, --warmup, ...) are taken from this run."""
        from policy_stack.checkpoint import load_checkpoint

        cfg = self.cfg
        policy = load_checkpoint(cfg.init, device=overrides["device"]).policy
        family = type(policy.config).__module__.split(".")[2]      # policy_stack.policies.<family>.config
        if family != cfg.policy:
            raise ValueError(f"--init {cfg.init} holds a {family} policy, not --policy {cfg.policy}")
        missing = [k for k in policy.obs_spec if k not in reader.lowdim_keys and k not in reader.rgb_keys
                   and k not in reader.depth_keys]
        if missing:
            raise ValueError(f"--init {cfg.init}: the dataset {cfg.data} lacks the policy's inputs {missing}")
        for name in ("lr", "weight_decay", "adam_betas", "lr_warmup_steps", "grad_clip"):
            if name in overrides and hasattr(policy.config, name):
                value = overrides[name]
                setattr(policy.config, name, tuple(value) if isinstance(value, list) else value)
        policy.train()
        return policy

    def _find_resume_point(self) -> Path | None:
        cfg = self.cfg
        snap = st.latest_snapshot(self.out)
        if snap is None:
            return None
        if cfg.resume == "never":
            raise ValueError(f"--out {self.out} already holds a training run (step snapshots in "
                             f"{self.out / st.CKPT_DIR}); pass a new --out or drop --no-resume to continue it")
        return snap

    def _restore(self, snap: Path) -> dict:
        """Load weights, EMA, optimizer and position; return this rank's RNG state (applied last)."""
        tensors, meta = st.read_snapshot(snap)
        changed = self.cfg.incompatible_with(meta.get("train_config", {}))
        if changed:
            saved = meta.get("train_config", {})
            detail = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(self.cfg, k)!r}" for k in changed)
            raise ValueError(f"resume: {snap} was trained with other settings ({detail}); "
                             f"use the same command or a new --out")
        if int(meta.get("world_size", 1)) != self.ctx.world_size and self.ctx.is_main:
            print(f"resume: world size {meta.get('world_size')} -> {self.ctx.world_size}; the data order "
                  "changes from here on", file=sys.stderr)
        self.policy.load_state_dict(st.sub_dict(tensors, "model."), strict=True)
        self.ema.load_state_dict(tensors)
        optimizer_state_from_tensors(self.optimizer, tensors, meta["optimizer"])
        self.step = int(meta["step"])
        self.epoch = int(meta.get("epoch", 0))
        self.batch_in_epoch = int(meta.get("batch_in_epoch", 0))
        self.last_loss = float(meta.get("loss", float("nan")))
        self._last_saved = self.step
        saved_cfg = meta.get("train_config", {})
        if self.cfg.time_budget_s > 0 and saved_cfg.get("time_budget_s", 0) > 0:
            # the killed run already fitted its step count to the budget; keep its LR schedule
            self.cfg.steps = int(saved_cfg["steps"])
            self._budget_fitted = True
        return st.sub_dict(tensors, f"rng.{self.ctx.rank}.")

    def _open_logs(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events the killed run logged after its last snapshot (they get re-logged)
        self.tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step if self.step else None)
        log = self.out / LOG_FILE
        if log.exists():   # same idea for the JSONL loss log
            kept = [ln for ln in log.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= self.step]
            persist.write_text_atomic(log, "".join(ln + "\n" for ln in kept))
        self.log = open(log, "a")

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        self._setup()
        cfg, ctx = self.cfg, self.ctx
        t_start = time.time()
        start_step = self.step
        if self.step >= cfg.steps:
            if ctx.is_main:
                print(f"train: {self.out} is already trained to step {self.step} (>= --steps {cfg.steps}); "
                      "nothing to do", file=sys.stderr)
            return self._finish(t_start, start_step)
        bar = None
        if ctx.is_main and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.policy}", unit="step",
                       dynamic_ncols=True, file=sys.stderr)
        self.model.train()
        try:
            while self.step < cfg.steps:
                self.sampler.set_position(self.epoch, self.batch_in_epoch * cfg.batch)
                for batch in self.loader:
                    lr = set_lr(self.optimizer, self.base_lr, self.step, self.warmup, cfg.steps)
                    loss = self._train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    self._after_step(loss, lr, bar)
                    self._fit_time_budget(start_step, t_start, bar)
                    if self.step >= cfg.steps:
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    continue
                if self.batch_in_epoch >= self.batches_per_epoch:
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        finally:
            if bar is not None:
                bar.close()
        if self._last_saved != self.step:
            self._save()
        if self.evaluator is not None and cfg.eval_every > 0 and self.step % cfg.eval_every:
            self._evaluate()   # final evaluation unless the last periodic one was at this very step
        return self._finish(t_start, start_step)

    def _fit_time_budget(self, start_step: int, t_start: float, bar) -> None:
        """With --time-budget: time steps PROBE[0]..PROBE[1] of this sitting, then lower cfg.steps so
        the loop ends inside the budget. The probe lies inside the default 500-step LR warmup, whose
        LR does not depend on the total, so the cosine decay that follows is exactly the one a run
        started with the fitted --steps would have."""
        cfg, ctx = self.cfg, self.ctx
        if cfg.time_budget_s <= 0 or self._budget_fitted:
            return
        done = self.step - start_step
        if done == BUDGET_PROBE[0]:
            self._probe_t0 = time.time()
        if done < BUDGET_PROBE[1] or self._probe_t0 is None:
            return
        rate = (BUDGET_PROBE[1] - BUDGET_PROBE[0]) / max(1e-9, time.time() - self._probe_t0)
        left = cfg.time_budget_s - (time.time() - t_start)
        fitted = budget_steps(self.step, rate, left)
        fitted = int(-ctx.all_reduce_max(-float(fitted)))   # every rank must stop at the same step
        self._budget_fitted = True
        if fitted < cfg.steps:
            if ctx.is_main:
                print(f"train: {rate:.1f} steps/s measured; --time-budget {cfg.time_budget_s / 60:.1f} min "
                      f"-> {fitted} steps instead of {cfg.steps}", file=sys.stderr)
            cfg.steps = max(self.step, fitted)
            if bar is not None:
                bar.total = cfg.steps
                bar.refresh()

    def _train_step(self, batch: dict) -> float:
        loss = self.model(batch)
        if not torch.isfinite(loss):
            raise RuntimeError(f"train: loss is {loss.item()} at step {self.step}; lower --lr or check the "
                               "dataset statistics")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim_preset.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.optim_preset.grad_clip)
        self.optimizer.step()
        self.ema.step(self.policy)
        return float(loss.detach())

    def _after_step(self, loss: float, lr: float, bar) -> None:
        cfg, ctx = self.cfg, self.ctx
        self.last_loss = loss
        if self.step % cfg.log_every == 0 or self.step == cfg.steps:
            mean_loss = ctx.all_reduce_mean(loss)   # every rank reaches this at the same steps
            if ctx.is_main:
                self.tb.add_scalar("train/loss", mean_loss, self.step)
                self.tb.add_scalar("train/lr", lr, self.step)
                for k, v in self.policy.loss_info.items():
                    self.tb.add_scalar(f"train/{k}", float(v), self.step)
                self.log.write(json.dumps({"step": self.step, "loss": mean_loss, "lr": lr, "epoch": self.epoch,
                                           "time": time.time()}) + "\n")
                self.log.flush()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", epoch=self.epoch, refresh=False)
        if self.step % cfg.ckpt_every == 0:
            self._save()
        if self.evaluator is not None and cfg.eval_every > 0 and self.step % cfg.eval_every == 0:
            if self._last_saved != self.step:
                self._save()
            self._evaluate()

    # ------------------------------------------------------------------ snapshots and evaluation
    def _save(self) -> None:
        """Collective: every rank contributes its RNG state; rank 0 writes."""
        ctx = self.ctx
        rng_local = capture_rng(ctx.device)
        gathered = {name: ctx.all_gather(t) for name, t in rng_local.items()}
        if ctx.is_main:
            extra = {f"model.{k}": v for k, v in self.policy.state_dict().items()}
            extra.update(self.ema.state_dict())
            optim_tensors, optim_meta = optimizer_state_to_tensors(self.optimizer)
            extra.update(optim_tensors)
            for name, per_rank in gathered.items():
                for r, t in enumerate(per_rank):
                    extra[f"rng.{r}.{name}"] = t
            # after a finished epoch the position is (epoch+1, 0): normalise before saving
            epoch, bie = self.epoch, self.batch_in_epoch
            if bie >= self.batches_per_epoch:
                epoch, bie = epoch + 1, 0
            meta = {"step": self.step, "epoch": epoch, "batch_in_epoch": bie, "loss": self.last_loss,
                    "world_size": ctx.world_size, "optimizer": optim_meta,
                    "train_config": json.loads(json.dumps(self.cfg.to_dict())),
                    "dataset": str(self.cfg.data), "dataset_episodes": self.reader.num_episodes}
            snap = save_checkpoint(self.ema.averaged, st.snapshot_dir(self.out, self.step), extra, meta)
            st.commit_snapshot(self.out, snap, keep=self.cfg.keep)
        self._last_saved = self.step
        ctx.barrier()

    def _evaluate(self) -> None:
        ctx = self.ctx
        if ctx.is_main:
            snap = st.snapshot_dir(self.out, self.step)
            t0 = time.time()
            summary = dict(self.evaluator(snap, self.step))
            summary.update(step=self.step, eval_s=time.time() - t0)
            for k in ("success_rate", "latency_ms_p50", "latency_ms_p99", "steps_per_tick"):
                if isinstance(summary.get(k), (int, float)):
                    self.tb.add_scalar(f"eval/{k}", summary[k], self.step)
            with open(self.out / EVAL_LOG_FILE, "a") as f:
                f.write(json.dumps({k: v for k, v in summary.items() if k not in ("seeds", "videos")}) + "\n")
            print(f"eval step {self.step}: success {summary.get('success_rate', float('nan')):.2f} "
                  f"({summary.get('episodes')} episodes)", file=sys.stderr)
            self.last_eval = summary
        ctx.barrier()

    def _finish(self, t_start: float, start_step: int) -> dict:
        ctx = self.ctx
        diff = self._param_divergence()
        summary = {"step": self.step, "start_step": start_step, "loss": self.last_loss,
                   "world_size": ctx.world_size, "ddp_param_max_diff": diff, "wall_s": time.time() - t_start,
                   "checkpoint": str(self.out), "eval": self.last_eval}
        if ctx.is_main:
            persist.write_json_atomic(self.out / SUMMARY_FILE, summary, indent=1)
            if hasattr(self, "tb"):
                self.tb.close()
                self.log.close()
        print(f"[rank {ctx.rank}/{ctx.world_size}] finished at step {self.step}", file=sys.stderr)
        ctx.close()
        return summary

    def _param_divergence(self) -> float:
        """Max |w_rank - w_rank0| over all weights: 0 when DDP kept the replicas in lock-step."""
        if not self.ctx.enabled:
            return 0.0
        flat = torch.cat([p.detach().reshape(-1).float() for p in self.policy.parameters()]).cpu()
        ref = flat.clone()
        self.ctx.broadcast_(ref, src=0)
        return self.ctx.all_reduce_max(float((flat - ref).abs().max()))


def train(cfg: TrainConfig, evaluator: Evaluator | None = None) -> dict:
    return Trainer(cfg, evaluator).run()
