"""What every fine-tuning algorithm offers the session loop, and the plumbing they share.

An Agent owns its networks and optimizers; the session owns replay, RNGs and counters. Everything an
agent holds goes through `state_dict()` (nested dict of tensors and plain values, no pickle), so a
checkpoint restores it bit-exactly.

Device: every network lives on the policy's device (`policy.device`), replay batches are moved there,
and random draws are made there. Learning steps return their metrics as detached tensors (no host
sync inside the step); `update()` turns them into floats once per call.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from policy_stack.policies.base import Policy
from policy_stack.rl.critic import Critic, ObsFeatures
from policy_stack.rl.nets import mode
from policy_stack.rl.chunk_io import ChunkIO
from policy_stack.rl.replay import Replay, batch_to_torch


@dataclass
class AgentConfig:
    batch_size: int = 256
    critic_lr: float = 3e-4
    tau: float = 0.005                      # critic target Polyak rate
    num_qs: int = 10                        # ensemble size
    num_min_qs: int = 2                     # size of the random subset whose min is the pessimistic Q
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    lowdim_keys: list[str] | None = None    # None: every low-dim key of policy.obs_spec
    share_image_encoder: bool = False       # append the policy's image features (frozen) to Q's input
    image_dim: int = 0
    train_image_encoder: bool = False
    grad_clip: float | None = None
    # Learning from human interventions (rows flagged `intervention`, docs/rl.md): the weight of a
    # behaviour-cloning term toward the human's executed actions, where the algorithm has an actor to
    # clone into (EXPO: the base policy's own loss on those rows; SAC: MSE of the actor's mean; PA-RL:
    # any value > 0 makes the human's chunk the distillation target on those rows). 0 = off.
    intervention_bc: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None):
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}")
        for k, f in cls.__dataclass_fields__.items():  # JSON turns tuples into lists
            if k in d and isinstance(d[k], list) and "tuple" in str(f.type):
                d[k] = tuple(d[k])
        return cls(**d)


class Temperature(nn.Module):
    """SAC's entropy coefficient alpha = exp(log_alpha), learned toward a target entropy."""

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init), dtype=torch.float32))

    def forward(self):
        return self.log_alpha.exp()

    def loss(self, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
        return -(self.log_alpha * (logp.detach() + target_entropy)).mean()


def lowdim_dims(policy: Policy, io: ChunkIO, keys: list[str] | None) -> dict[str, int]:
    """Low-dim features of the policy's NORMALIZED observation, found by running `preprocess` on a
    zero observation built from `policy.obs_spec`: this picks up derived features (e.g. gripper-to-
    object vectors) without policy-specific code. Every (B, To, d) float output counts as low-dim."""
    spec = policy.obs_spec
    if not spec:
        raise ValueError("critic: the policy has no obs_spec to build observation features from")
    probe = {k: torch.zeros(1, io.To, *s.shape, dtype=getattr(torch, s.dtype), device=policy.device)
             for k, s in spec.items()}
    out = io.norm_obs(probe)
    found = {k: int(v.shape[-1]) for k, v in out.items() if v.dim() == 3 and v.is_floating_point()}
    if keys is not None:
        missing = [k for k in keys if k not in found]
        if missing:
            raise KeyError(f"critic low-dim key(s) {missing} not among the policy's low-dim features {sorted(found)}")
        found = {k: found[k] for k in keys}
    if not found:
        raise ValueError("critic: no low-dim observation features (set lowdim_keys or share the image encoder)")
    return found


def to_floats(metrics: dict) -> dict[str, float]:
    """Metric tensors (or numbers) -> plain floats: the one host sync of an update."""
    return {k: float(v) for k, v in metrics.items()}


class Agent:
    """Base class. Subclasses build networks in __init__ (on `self.device`), register them in
    self.modules / self.optims, and implement act_normalized(), critic_step() and learn()."""

    name = "agent"

    def __init__(self, policy: Policy, cfg: AgentConfig, io: ChunkIO | None = None,
                 image_encoder: Callable[[dict], torch.Tensor] | None = None):
        self.policy, self.cfg = policy, cfg
        self.device = policy.device
        self.io = io or ChunkIO(policy)
        if cfg.share_image_encoder and image_encoder is None:
            raise ValueError("share_image_encoder=True needs an image_encoder (obs_norm -> (B, image_dim) features)")
        self.features = ObsFeatures(lowdim_dims(policy, self.io, cfg.lowdim_keys), self.io.To,
                                    image_encoder if cfg.share_image_encoder else None, cfg.image_dim,
                                    cfg.train_image_encoder)
        self.critic = Critic(self.features, self.io.Ta, self.io.A, cfg.num_qs, cfg.num_min_qs, cfg.critic_hidden,
                             exec_start=self.io.exec_start).to(self.device)
        self.critic_opt = torch.optim.Adam(self.critic.parameters_to_train(), lr=cfg.critic_lr)
        self.modules: dict[str, nn.Module] = {"critic": self.critic}
        self.optims: dict[str, torch.optim.Optimizer] = {"critic": self.critic_opt}
        self.counters = {"critic_steps": 0, "actor_steps": 0}

    # interface used by the session ------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs_hist: dict[str, np.ndarray]) -> np.ndarray:
        """One decision from an observation history {k: (To, ...)} -> RAW chunk (Tp, A)."""
        obs = self.io.norm_obs({k: v[None] for k, v in self.io.obs_to_torch(obs_hist, self.device).items()})
        chunk = self.act_normalized(obs, self.features(obs))
        return self.io.unnorm_action(chunk)[0].cpu().numpy().astype(np.float32)

    def act_normalized(self, obs_norm: dict, feat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, replay: Replay, rng: np.random.Generator, utd: int = 1) -> dict[str, float]:
        """`utd` critic steps then one actor/policy step (RLPD's schedule); metrics as floats."""
        return to_floats(self.learn(replay, rng, utd))

    def learn(self, replay: Replay, rng: np.random.Generator, utd: int = 1) -> dict[str, torch.Tensor]:
        """The update itself; metrics stay detached tensors on the agent's device."""
        raise NotImplementedError

    def pretrain_critic(self, replay: Replay, rng: np.random.Generator) -> dict[str, float]:
        """One critic step on offline data only (before any online data exists)."""
        return to_floats(self.critic_step(self.prepare(replay.sample(self.cfg.batch_size, rng, sources="offline"))))

    def critic_step(self, b: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # shared helpers ---------------------------------------------------------------------------
    def prepare(self, batch_np: dict) -> dict:
        # Rows a human chose, found on the host (no device sync later): the BC terms index them.
        human = np.flatnonzero(np.asarray(batch_np.get("intervention", ()), np.float32) > 0)
        b = batch_to_torch(batch_np, self.device)
        b["human_idx"] = torch.as_tensor(human, dtype=torch.long, device=self.device)
        b["n_human"] = len(human)
        b["obs_norm"] = self.io.norm_obs(b["obs"])
        b["next_obs_norm"] = self.io.norm_obs(b["next_obs"])
        b["action_norm"] = self.io.norm_action(b["action"].float())
        with torch.no_grad():
            b["next_feat"] = self.features(b["next_obs_norm"])
        b["feat"] = self.features(b["obs_norm"])
        return b

    @torch.no_grad()
    def base_samples(self, obs_norm: dict, n: int, policy: Policy | None = None) -> torch.Tensor:
        """(B, n, Tp, A) normalized chunks from the base policy, clipped to the action box."""
        p = policy or self.policy
        with mode(p, False):
            return p.sample(obs_norm, n).clamp(-1.0, 1.0)

    def td_loss(self, b: dict, q_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Macro-step TD: y = R + gamma^k (1 - terminal) Q'(s', a'); each member regresses on y."""
        y = b["reward"] + b["discount"] * (1.0 - b["terminal"]) * q_next
        q = self.critic.q(b["feat"], b["action_norm"])
        return ((q - y.detach()) ** 2).mean(-1).sum(), q

    def step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params=None) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params or [p for g in opt.param_groups for p in g["params"]], self.cfg.grad_clip)
        opt.step()

    def imitation_step(self, opt: torch.optim.Optimizer, obs_raw: dict, action_raw: torch.Tensor,
                       is_pad: torch.Tensor | None = None, bc: dict | None = None,
                       bc_weight: float = 0.0) -> torch.Tensor:
        """One step of the policy's OWN loss on raw-unit targets (EXPO base training, PA-RL distillation),
        plus `bc_weight` x the same loss on `bc` (a policy.loss batch: the intervention rows) when given."""
        batch = {"obs": obs_raw, "action": action_raw}
        if is_pad is not None:
            batch["action_is_pad"] = is_pad
        with mode(self.policy, True):
            loss = self.policy.loss(batch)
            total = loss + bc_weight * self.policy.loss(bc) if bc is not None and bc_weight > 0 else loss
            self.step(opt, total)
        return loss.detach()

    def human_batch(self, b: dict) -> dict | None:
        """The batch's intervention rows as a policy.loss batch (raw units), or None when there are none
        or the BC term is off."""
        if self.cfg.intervention_bc <= 0 or not b.get("n_human"):
            return None
        i = b["human_idx"]
        out = {"obs": {k: v[i] for k, v in b["obs"].items()}, "action": b["action"][i].float()}
        if "action_is_pad" in b:
            out["action_is_pad"] = b["action_is_pad"][i]
        return out

    # persistence ------------------------------------------------------------------------------
    def generators(self) -> dict[str, torch.Generator]:
        """torch.Generator attributes inside the modules (e.g. a policy's private sampling-noise
        generator): not in any state_dict, yet needed for a bit-exact resume."""
        out = {}
        for name, m in self.modules.items():
            for sub_name, sub in m.named_modules():
                for attr, v in vars(sub).items():
                    if isinstance(v, torch.Generator):
                        out[f"{name}.{sub_name}.{attr}"] = v
        return out

    def state_dict(self) -> dict:
        return {"modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optims": {k: o.state_dict() for k, o in self.optims.items()},
                "generators": {k: g.get_state() for k, g in self.generators().items()},
                "counters": dict(self.counters)}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optims.items():
            o.load_state_dict(state["optims"][k])
        gens = self.generators()
        for k, g in state.get("generators", {}).items():
            if k in gens:
                gens[k].set_state(g)
        self.counters.update(state["counters"])
