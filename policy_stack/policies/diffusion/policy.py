"""DiffusionPolicy: Diffusion Policy (CNN / ConditionalUnet1D) behind the one Policy interface.

act(obs) is stateful: it keeps the last To observations (the first tick of an episode is padded by
repeating it) and, with sampler "rti", the warm start. sample() and loss() are stateless.
The network can run on torch (default) or ONNX Runtime (`set_backend("onnx")`); the sampling loop,
preprocessing and post-processing stay the same Python code for both.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from typing import Any

import numpy as np
import torch
from torch import nn

from policy_stack.nn.obs_encoder import ObservationEncoder
from policy_stack.nn.unet1d import ConditionalUnet1D
from policy_stack.normalize import ACTION_KEY, Normalizer
from policy_stack.policies.base import Policy
from policy_stack.policies.common import ChunkPolicyMixin, as_tensor, resolve_device
from policy_stack.policies.diffusion.config import DiffusionConfig
from policy_stack.policies.diffusion.language import LanguageConditioning
from policy_stack.policies.registry import register_policy
from policy_stack.denoising import SAMPLERS, NoiseSchedule, RTISampler, Sampler, make_sampler
from policy_stack.spaces import ActionSpace, FeatureSpec



class TorchBackend:
    """Runs the observation encoder and denoiser with torch (optionally torch.compile'd)."""
    name = "torch"

    def __init__(self, policy: "DiffusionPolicy"):
        self.policy = policy
        self.denoiser = torch.compile(policy.unet, dynamic=False) if policy.config.compile else policy.unet

    def encode(self, obs_norm: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy.obs_encoder(obs_norm)

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, cond)


@register_policy("diffusion", DiffusionConfig)
class DiffusionPolicy(ChunkPolicyMixin, nn.Module, Policy):
    backends = ("torch", "onnx", "cuda_graph")

    def __init__(self, config: DiffusionConfig, stats: dict | Normalizer, action_space: ActionSpace,
                 obs_spec: dict[str, FeatureSpec] | None = None):
        super().__init__()
        self._init_observation_side(config, stats, action_space, obs_spec)

        lowdim_dims = {k: self.normalizer.dim(k) for k in self.preprocessor.feature_keys}
        self.obs_encoder = ObservationEncoder(lowdim_dims, config.n_obs_steps, config.cameras, config.use_depth,
                                              config.crop_shape, config.vision_channels, config.num_keypoints,
                                              config.camera_feature_dim)
        self.language = (LanguageConditioning(self.obs_encoder.output_dim, config.instruction_vocab,
                                              config.language_dim, config.language_hidden)
                         if config.language_conditioning else None)
        cond_dim = self.language.output_dim if self.language is not None else self.obs_encoder.output_dim
        self.unet = ConditionalUnet1D(self.action_dim, cond_dim, config.down_dims,
                                      config.step_embed_dim, config.kernel_size, config.n_groups)
        self.schedule = NoiseSchedule(config.num_train_timesteps, config.beta_schedule, clip_sample=config.clip_sample)
        self.discrete_dims = list(action_space.discrete)

        self.device_ = resolve_device(config.device)
        self.to(self.device_)
        self.eval()
        self._generator = torch.Generator().manual_seed(config.seed)
        self._history: deque[dict[str, torch.Tensor]] = deque(maxlen=config.n_obs_steps)
        self._backend: Any = TorchBackend(self)
        self._info: dict = {}
        self.sampler: Sampler = self._build_sampler()

    # ------------------------------------------------------------------ construction helpers
    def _build_sampler(self, config: DiffusionConfig | None = None) -> Sampler:
        c = config or self.config
        guess_value = None
        if c.rti_discrete_factor is not None:
            guess_value = 1.0 / (c.discrete_action_scale * c.rti_discrete_factor)
        steps = None if c.sampler == "rti" else c.sampler_steps
        return make_sampler(c.sampler, self.schedule, steps, rti_steps=c.rti_steps,
                            rti_start_level=c.rti_start_level, rti_timesteps_list=c.rti_timesteps,
                            rti_initial=c.rti_initial_sampler, rti_initial_steps=c.rti_initial_steps,
                            shift=c.n_action_steps, discrete_dims=self.discrete_dims, discrete_guess_value=guess_value,
                            rti_step_mode=c.rti_step_mode, rti_renoise=c.rti_renoise)

    # ------------------------------------------------------------------ runtime switches
    @property
    def sampler_name(self) -> str:
        return self.config.sampler

    def set_sampler(self, name: str | None, steps: int | None = None, start_level: int | None = None) -> None:
        """Switch sampler ("ddpm" | "ddim" | "rti"; None keeps the current one); steps = evaluations per
        call (rti: per warm tick, start_level = K'). The choice is written into the config, so a later
        checkpoint keeps it."""
        name = name or self.config.sampler
        if name not in SAMPLERS:
            raise ValueError(f"sampler {name!r}: a diffusion checkpoint samples with {' | '.join(SAMPLERS)}"
                             + (" (ebt needs an EBT checkpoint)" if name == "ebt" else ""))
        if name == "rti":
            changes = {"rti_steps": steps, "rti_timesteps": None} if steps is not None else {}
            if start_level is not None:
                changes.update(rti_start_level=start_level, rti_timesteps=None)
        else:
            changes = {"sampler_steps": steps}
        config = dataclasses.replace(self.config, sampler=name, **changes)  # validates
        self.sampler = self._build_sampler(config)
        self.config = config

    def set_backend(self, name: str, onnx_dir: str | None = None, providers: list[str] | None = None,
                    num_threads: int = 2) -> None:
        """"torch", "onnx" (exports to onnx_dir, or to a temporary folder deleted once ONNX Runtime has
        loaded the graphs, and runs ONNX Runtime), or "cuda_graph" (the denoiser replayed from a CUDA graph;
        needs the policy on a CUDA device)."""
        if name != "torch" and self.language is not None:
            raise ValueError(f"backend {name!r}: a language-conditioned diffusion policy runs on torch only "
                             "(the ONNX export and CUDA graph do not carry the instruction input yet)")
        if name == "torch":
            self._backend = TorchBackend(self)
        elif name == "cuda_graph":
            from policy_stack.policies.diffusion.cuda_graph import CudaGraphBackend
            self._backend = CudaGraphBackend(self)
        elif name == "onnx":
            from policy_stack.onnx_export import OnnxDiffusionRunner
            if onnx_dir is None:     # nothing to keep: export, open, and delete the files at once
                self._backend = OnnxDiffusionRunner.from_policy(self, providers=providers, num_threads=num_threads)
                return
            if not OnnxDiffusionRunner.files_present(onnx_dir):
                onnx_dir = self.export_onnx(onnx_dir)
            self._backend = OnnxDiffusionRunner(onnx_dir, providers=providers, num_threads=num_threads)
        else:
            raise ValueError(f"backend {name!r} not in {self.backends}")

    # ------------------------------------------------------------------ export hooks
    def export_onnx(self, folder=None):
        from policy_stack.onnx_export import export_onnx
        return export_onnx(self, folder)

    def check_export(self, folder, tol: float) -> float:
        """Encoder output, one denoiser call and a full DDIM-10 chunk against torch on ONNX Runtime's CPU
        provider; raises OnnxParityError above tol."""
        from policy_stack.onnx_export import OnnxDiffusionRunner, check_onnx_parity
        return check_onnx_parity(self, OnnxDiffusionRunner(folder, providers=["CPUExecutionProvider"]), tol=tol)

    @property
    def backend(self) -> str:
        return self._backend.name

    # ------------------------------------------------------------------ Policy interface
    def reset(self, seed: int | None = None) -> None:
        """New episode: clear the observation history and the RTI warm start; optionally reseed sampling."""
        self._history.clear()
        self._observed_since_act = 0
        self._last_gripper = None
        self.sampler.reset()
        if seed is not None:
            self._generator.manual_seed(int(seed))

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], executed_steps: int | None = None) -> np.ndarray:
        """One tick -> (Ta, A) float32 env-unit actions. executed_steps: how many actions of the previous
        chunk were executed since the last call (the RTI warm-start shift); default: the number of
        observations received since the last act() (observe() calls + this one)."""
        start = time.perf_counter()
        if executed_steps is None and self._history:
            # every observation pushed since the last plan is one executed action (observe() or this call)
            executed_steps = self._executed_since_act()
        self._push_observation(obs)
        self._observed_since_act = 0
        if self.language is not None and not _has_instruction(obs):
            # a language-conditioned policy without an instruction has no task: hold, as KITE does
            return self._hold_chunk(start, "no instruction")
        raw = self._history_batch()

        with self._eval_mode():
            obs_norm = self.preprocess(raw)
            cond = self._condition(self._backend.encode(obs_norm), obs)
            evals = [0]

            def counted_eps(x, t, c):
                evals[0] += 1
                return self._backend.eps(x, t, c)

            shape = (1, self.config.horizon, self.action_dim)
            if isinstance(self.sampler, RTISampler):
                chunk = self.sampler.sample(counted_eps, cond, shape, self._generator, shift=executed_steps)
            else:
                chunk = self.sampler.sample(counted_eps, cond, shape, self._generator)
            fallback = False
            if not torch.isfinite(chunk).all():
                # a diverged warm start must not persist: start over with a full, fresh sample
                self.sampler.reset()
                chunk = self._stateless_sampler().sample(counted_eps, cond, shape, self._generator)
                fallback = True
                if not torch.isfinite(chunk).all():
                    raise RuntimeError("diffusion policy produced NaN/Inf actions: weights or normalization stats are corrupt")

        actions = self.unnormalize_action(chunk)[0].cpu().numpy().astype(np.float32)
        first = self.config.n_obs_steps - 1  # the chunk starts at the oldest observation in the history
        actions = self._postprocess(actions[first:first + self.config.n_action_steps])
        if self.discrete_dims:
            self._last_gripper = actions[-1, self.discrete_dims].copy()
        warm = isinstance(self.sampler, RTISampler) and self.sampler.last_was_warm
        self._info = {"latency_ms": (time.perf_counter() - start) * 1e3, "sampler": self.sampler.name,
                      "steps": evals[0], "warm_start": warm, "backend": self.backend,
                      "device": str(self.device), "fallback": fallback, "hold": ""}
        return actions

    @torch.no_grad()
    def sample(self, obs_batch: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """(B, n, Tp, A) normalized chunks from the stateless sampler (rti -> its full initial sampler)."""
        with self._eval_mode():
            cond = self._backend.encode({k: v.to(self.device) for k, v in obs_batch.items()
                                         if k != "instruction"})
            cond = self._condition(cond, obs_batch, batched=True)
            cond = cond.repeat_interleave(n, dim=0)
            shape = (cond.shape[0], self.config.horizon, self.action_dim)
            chunks = self._stateless_sampler().sample(self._backend.eps, cond, shape, self._generator)
        return chunks.reshape(-1, n, self.config.horizon, self.action_dim)

    def loss(self, batch: dict) -> torch.Tensor:
        """ε-prediction MSE on raw-unit batch {"obs": {k: (B,To,...)}, "action": (B,Tp,A)[, "action_is_pad": (B,Tp)]}."""
        obs_norm = self.preprocess(batch["obs"])
        actions = self.normalize_action(as_tensor(batch["action"], self.device))
        if actions.shape[1:] != (self.config.horizon, self.action_dim):
            raise ValueError(f"batch 'action' shape {tuple(actions.shape)}, expected (B, {self.config.horizon}, {self.action_dim})")
        cond = self._condition(self.obs_encoder(obs_norm), batch["obs"], batched=True)
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.schedule.num_train_timesteps, (actions.shape[0],), device=self.device)
        pred = self.unet(self.schedule.add_noise(actions, noise, t), t, cond)
        err = (pred - noise) ** 2
        if batch.get("action_is_pad") is not None:
            valid = (~as_tensor(batch["action_is_pad"], self.device).bool()).to(err.dtype)[..., None]
            return (err * valid).sum() / (valid.sum() * self.action_dim).clamp_min(1.0)
        return err.mean()

    # ------------------------------------------------------------------ pieces other code reuses
    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        a = self.normalizer.normalize(ACTION_KEY, action.to(torch.float32))
        if self.discrete_dims and self.config.discrete_action_scale != 1.0:
            a = a.clone()
            a[..., self.discrete_dims] /= self.config.discrete_action_scale
        return a

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        if self.discrete_dims and self.config.discrete_action_scale != 1.0:
            action = action.clone()
            action[..., self.discrete_dims] *= self.config.discrete_action_scale
        return self.normalizer.unnormalize(ACTION_KEY, action)

    # ------------------------------------------------------------------ internals
    def _hold_chunk(self, start: float, reason: str) -> np.ndarray:
        """(Ta, A): no motion, the gripper as last commanded (open before any plan)."""
        chunk = np.zeros((self.config.n_action_steps, self.action_dim), np.float32)
        if self.discrete_dims:
            last = getattr(self, "_last_gripper", None)
            chunk[:, self.discrete_dims] = last if last is not None else np.asarray(self.action_space.low,
                                                                                     np.float32)[self.discrete_dims]
        self._info = {"latency_ms": (time.perf_counter() - start) * 1e3, "sampler": self.sampler.name, "steps": 0,
                      "warm_start": False, "backend": self.backend, "device": str(self.device), "fallback": False,
                      "hold": reason}
        return self.action_space.clip(chunk).astype(np.float32)

    def _condition(self, obs_features: torch.Tensor, obs: dict, batched: bool = False) -> torch.Tensor:
        """The denoiser's global condition: the observation features, plus the instruction's fused
        embedding for a language-conditioned policy (obs["instruction"]: a string, or [B] in a batch)."""
        if self.language is None:
            return obs_features
        instruction = obs.get("instruction") if isinstance(obs, dict) else None
        if instruction is None:
            raise ValueError("this diffusion policy is language-conditioned: the observation needs an "
                             "'instruction' (a string)")
        if not batched and isinstance(instruction, np.ndarray) and instruction.size == 1:
            instruction = str(instruction.item())
        return self.language(obs_features, [instruction] if not batched else instruction)

    def _stateless_sampler(self) -> Sampler:
        return self.sampler.initial if isinstance(self.sampler, RTISampler) else self.sampler


def _has_instruction(obs: dict) -> bool:
    value = obs.get("instruction")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    return isinstance(value, str) and bool(value.strip())
