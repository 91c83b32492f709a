"""EBTPolicy: EBT-Policy (energy-based transformer, actions by gradient descent on energy) behind the one
Policy interface.

act(obs) is stateful: it keeps the last To observations (the first tick of an episode repeats it) and the
last optimized chunk, which warm-starts the next tick's descent after a shift by Ta (RTI-style), so 2
descent steps suffice once an episode is running. sample() and loss() are stateless.

The final energy of the returned chunk is the uncertainty signal (`info["uncertainty"]`): low energy =
the chunk sits in a well of the learned landscape; high = the model has not seen this situation. EBT-Policy
claims this use but gives no thresholds (docs/background.md), so the policy reports the number and does not act on it.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque

import numpy as np
import torch
from torch import nn

from policy_stack.nn.obs_encoder import ObservationEncoder
from policy_stack.normalize import ACTION_KEY, Normalizer
from policy_stack.policies.base import Policy
from policy_stack.policies.common import ChunkPolicyMixin, as_tensor, resolve_device
from policy_stack.policies.ebt.config import EBTConfig
from policy_stack.policies.registry import register_policy
from policy_stack.denoising.samplers import shift_and_pad as shift_warm_start  # RTI-style shift, shared
from policy_stack.policies.ebt.descent import DescentTrace, EnergyDescent
from policy_stack.policies.ebt.energy import ActionEnergyDecoder, ConditionTokens
from policy_stack.spaces import ActionSpace, FeatureSpec




@register_policy("ebt", EBTConfig)
class EBTPolicy(ChunkPolicyMixin, nn.Module, Policy):

    def __init__(self, config: EBTConfig, stats: dict | Normalizer, action_space: ActionSpace,
                 obs_spec: dict[str, FeatureSpec] | None = None):
        super().__init__()
        self._init_observation_side(config, stats, action_space, obs_spec)
        self.discrete_dims = list(action_space.discrete)

        c = config
        lowdim_dims = {k: self.normalizer.dim(k) for k in self.preprocessor.feature_keys}
        self.obs_encoder = ObservationEncoder(lowdim_dims, c.n_obs_steps, c.cameras, c.use_depth, c.crop_shape,
                                              c.vision_channels, c.num_keypoints, c.camera_feature_dim)
        self.cond_tokens = ConditionTokens(self.obs_encoder.per_step_dim, c.n_obs_steps, c.d_model, c.n_heads,
                                           c.obs_layers, c.dropout)
        self.energy = ActionEnergyDecoder(self.action_dim, c.horizon, c.d_model, c.n_layers, c.n_heads,
                                          c.mlp_ratio, c.dropout)
        self.descent = EnergyDescent(c.step_size, c.step_size_learnable, c.energy_temp, c.energy_exp_max,
                                     c.max_step_change, c.momentum)

        self.device_ = resolve_device(c.device)
        self.to(self.device_)
        self.eval()
        self._generator = torch.Generator().manual_seed(c.seed)
        self._history: deque[dict[str, torch.Tensor]] = deque(maxlen=c.n_obs_steps)
        self._warm: torch.Tensor | None = None      # last optimized chunk (1, Tp, A), normalized
        self._info: dict = {}
        self._loss_info: dict[str, float] = {}

    # ------------------------------------------------------------------ Policy interface
    @property
    def sampler_name(self) -> str:
        return "ebt"

    def set_sampler(self, name: str | None, steps: int | None = None) -> None:
        """EBT has one "sampler", the energy descent; steps caps its descent steps per act()/sample()."""
        if name not in (None, "ebt"):
            raise ValueError(f"sampler {name!r}: an EBT checkpoint optimises energy; use sampler 'ebt'")
        if steps is not None:
            self.config = dataclasses.replace(self.config, infer_steps=int(steps))   # validates

    def reset(self, seed: int | None = None) -> None:
        """New episode: clear the observation history and the warm start; optionally reseed the start noise."""
        self._history.clear()
        self._warm = None
        self._observed_since_act = 0
        if seed is not None:
            self._generator.manual_seed(int(seed))

    @torch.no_grad()   # the descent re-enables grad for dE/da itself; nothing else needs a graph
    def act(self, obs: dict[str, np.ndarray], executed_steps: int | None = None) -> np.ndarray:
        """One tick -> (Ta, A) env-unit actions. executed_steps: actions executed since the last act()
        (the warm-start shift); default: observations received since then (observe() calls + this one)."""
        start = time.perf_counter()
        c = self.config
        if executed_steps is None:
            executed_steps = self._executed_since_act()
        self._push_observation(obs)
        self._observed_since_act = 0
        raw = self._history_batch()

        with self._eval_mode():
            cond = self.encode(self.preprocess(raw))
            warm = c.warm_start and self._warm is not None
            x0 = shift_warm_start(self._warm, executed_steps) if warm else self._noise(1)
            trace = self.optimize(cond, x0)
            final_energy = self.energy(cond, trace.actions)

        chunk = trace.actions
        self._warm = chunk.detach().clone()
        actions = self.unnormalize_action(chunk)[0].cpu().numpy().astype(np.float32)
        first = c.n_obs_steps - 1   # the chunk starts at the oldest observation in the history
        actions = self._postprocess(actions[first:first + c.n_action_steps])
        self._info = {
            "latency_ms": (time.perf_counter() - start) * 1e3, "sampler": "ebt", "steps": trace.steps,
            "uncertainty": float(final_energy[0]), "energy_start": float(trace.energies[0][0]) if trace.energies else float("nan"),
            "grad_norm": float(trace.grad_norms[-1][0]) if trace.grad_norms else float("nan"),
            "stopped_early": trace.stopped_early, "nonfinite": trace.nonfinite, "warm_start": warm,
            "backend": "torch", "device": str(self.device)}
        return actions

    @torch.no_grad()
    def sample(self, obs_batch: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """(B, n, Tp, A) normalized chunks: n random starts per observation, each optimized independently."""
        with self._eval_mode():
            cond = self.encode({k: v.to(self.device) for k, v in obs_batch.items()})
            cond = cond.repeat_interleave(n, dim=0)
            trace = self.optimize(cond, self._noise(cond.shape[0]))
        return trace.actions.reshape(-1, n, self.config.horizon, self.action_dim)

    def loss(self, batch: dict) -> torch.Tensor:
        """Reconstruction of the demo chunk by the unrolled descent, on a raw-unit batch
        {"obs": {k: (B,To,...)}, "action": (B,Tp,A)[, "action_is_pad": (B,Tp)]}.

        Mean over the descent steps of the (pad-masked) MSE between each step's output and the demo chunk
        (EBT-Policy's `compute_loss`), or only the final step with loss_every_step=False."""
        c = self.config
        obs_norm = self.preprocess(batch["obs"])
        target = self.normalize_action(as_tensor(batch["action"], self.device))
        if target.shape[1:] != (c.horizon, self.action_dim):
            raise ValueError(f"batch 'action' shape {tuple(target.shape)}, expected (B, {c.horizon}, {self.action_dim})")
        # the descent lives in [-1, 1]; a target outside (data beyond the stats' range) is unreachable
        target = target.clamp(-1.0, 1.0)
        valid = None
        if batch.get("action_is_pad") is not None:
            valid = (~as_tensor(batch["action_is_pad"], self.device).bool()).to(target.dtype)[..., None]

        def mse(pred: torch.Tensor) -> torch.Tensor:
            err = (pred - target) ** 2
            if valid is None:
                return err.mean()
            return (err * valid).sum() / (valid.sum() * self.action_dim).clamp_min(1.0)

        n_steps = c.train_steps + int(torch.randint(0, c.train_steps_random + 1, ()))
        with torch.enable_grad():   # training through dE/da needs a graph even in a validation pass
            cond = self.encode(obs_norm)
            x0 = torch.rand(target.shape, device=self.device) * 2 - 1
            trace = self.descent.unroll(lambda a: self.energy(cond, a), x0, n_steps, c.langevin_sigma_min,
                                        c.langevin_sigma_max, c.step_size_random_scale, c.detach_between_steps)
            losses = [mse(p) for p in trace.predictions]
            loss = torch.stack(losses).mean() if c.loss_every_step else losses[-1]
        self._loss_info = {   # the trainer logs these (EBT's init/final gap)
            "loss_first_step": float(losses[0].detach()), "loss_final_step": float(losses[-1].detach()), "steps": n_steps,
            "energy_gap": float((trace.energies[0] - trace.energies[-1]).detach().mean()),
            "step_size": float(self.descent.step_size.detach())}
        return loss

    def export_onnx(self, folder=None):
        raise ValueError("export onnx: 'ebt' policies are not exportable (EBT inference differentiates the "
                         "energy network in a Python descent loop; it runs on torch)")

    @property
    def loss_info(self) -> dict[str, float]:
        return dict(self._loss_info)

    # ------------------------------------------------------------------ pieces other code reuses
    def encode(self, obs_norm: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalized histories -> condition tokens (B, To, d_model); computed once per decision."""
        feats = self.obs_encoder(obs_norm)
        return self.cond_tokens(feats.reshape(feats.shape[0], self.config.n_obs_steps, -1))

    def optimize(self, cond: torch.Tensor, x0: torch.Tensor, max_steps: int | None = None) -> DescentTrace:
        """Inference descent from x0 (B, Tp, A) for condition tokens (B, To, d)."""
        c = self.config
        return self.descent.optimize(lambda a: self.energy(cond, a), x0, max_steps or c.infer_steps,
                                     c.min_grad, c.min_energy_delta)

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize(ACTION_KEY, action.to(torch.float32))

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self.normalizer.unnormalize(ACTION_KEY, action)

    # ------------------------------------------------------------------ internals
    def _noise(self, batch: int) -> torch.Tensor:
        """Uniform starts in [-1, 1]: the descent's domain, with no mass piled on the clamp boundary
        (a clamped Gaussian would put ~32% of the elements exactly at ±1)."""
        shape = (batch, self.config.horizon, self.action_dim)
        return (torch.rand(shape, generator=self._generator) * 2 - 1).to(self.device)

