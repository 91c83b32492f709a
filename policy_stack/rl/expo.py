"""EXPO (Dong, Li, Sadigh, Finn 2025): expressive base policy + small Gaussian edit policy + on-the-fly
argmax over Q.

- Base: the diffusion (or any) policy, trained only with its own imitation loss on replay (offline +
  online); its Polyak-averaged copy (the "target actor", as in the reference) proposes candidates.
- Edit: pi_edit(da | s, a) = beta * tanh(Gaussian), trained SAC-style to maximise Q(s, a + da) with
  an entropy bonus (learned temperature, target entropy -d/2).
- On-the-fly policy (OTF): N base chunks, the first M of them edited, argmax over all N + M of the
  min over a random critic subset; used for acting AND for the TD target.

Deviations from the reference code, on purpose (docs/rl.md): edited chunks are clipped to the action
box (the reference leaves them unclipped); the edit policy trains on base-policy samples, the
distribution it edits at inference (the reference uses dataset actions; `edit_on="data"` restores it).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from policy_stack.rl.agent import Agent, AgentConfig, Temperature
from policy_stack.rl.nets import TanhGaussian, polyak
from policy_stack.rl.replay import Replay


@dataclass
class ExpoConfig(AgentConfig):
    n_base: int = 8                         # N base samples per decision (reference scripts: 8)
    n_edit: int = 8                         # M of them edited (0 turns EXPO into best-of-N)
    beta: float = 0.05                      # edit bound, normalized action units
    edit_hidden: tuple[int, ...] = (256, 256, 256)
    edit_lr: float = 3e-4
    temp_init: float = 1.0
    temp_lr: float = 3e-4
    target_entropy: float | None = None     # None: -d/2 with d = Ta * A (reference)
    edit_on: str = "base"                   # "base" (inference distribution) | "data" (reference)
    train_base: bool = True
    base_lr: float = 1e-4
    actor_tau: float = 0.005                # target-actor Polyak rate (see docs/rl.md for why not 0.001)
    use_target_actor: bool = True


class ExpoAgent(Agent):
    name = "expo"
    config_cls = ExpoConfig

    def __init__(self, policy, cfg: ExpoConfig | None = None, **kw):
        cfg = cfg or ExpoConfig()
        if cfg.edit_on not in ("base", "data"):
            raise ValueError(f"ExpoConfig.edit_on must be 'base' or 'data', got {cfg.edit_on!r}")
        if not 0 <= cfg.n_edit <= cfg.n_base:
            raise ValueError(f"ExpoConfig: n_edit={cfg.n_edit} must be in [0, n_base={cfg.n_base}]")
        super().__init__(policy, cfg, **kw)
        d = self.io.Ta * self.io.A
        self.modules["policy"] = policy
        if cfg.n_edit > 0:
            self.edit = TanhGaussian(self.features.dim + d, d, cfg.edit_hidden, scale=cfg.beta).to(self.device)
            self.temp = Temperature(cfg.temp_init).to(self.device)
            self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -d / 2.0
            self.modules.update(edit=self.edit, temperature=self.temp)
            self.optims.update(edit=torch.optim.Adam(self.edit.parameters(), lr=cfg.edit_lr),
                               temperature=torch.optim.Adam(self.temp.parameters(), lr=cfg.temp_lr))
        if cfg.train_base:
            self.optims["policy"] = torch.optim.AdamW(policy.parameters(), lr=cfg.base_lr)
        self.actor = policy
        if cfg.use_target_actor and cfg.train_base:
            self.actor = copy.deepcopy(policy).requires_grad_(False)
            self.modules["target_actor"] = self.actor

    # edits and the on-the-fly policy ----------------------------------------------------------
    def apply_edit(self, feat: torch.Tensor, chunks: torch.Tensor, deterministic: bool = False):
        """Edit the executed steps of chunks (B, n, Tp, A): returns (edited chunks clipped to [-1, 1],
        delta (B, n, Ta*A) with |delta| <= beta, log-prob (B, n)). Unexecuted steps are left alone."""
        b, n, Ta, s = chunks.shape[0], chunks.shape[1], self.io.Ta, self.io.exec_start
        head = chunks[:, :, s:s + Ta].reshape(b, n, -1)
        x = torch.cat([feat.unsqueeze(1).expand(b, n, feat.shape[-1]), head], -1)
        delta, logp = self.edit(x, deterministic=deterministic)
        edited = chunks.clone()
        edited[:, :, s:s + Ta] = (head + delta).clamp(-1.0, 1.0).reshape(b, n, Ta, -1)
        return edited, delta, logp

    def candidates(self, obs_norm: dict, feat: torch.Tensor) -> torch.Tensor:
        """N base chunks followed by the edits of the first M: (B, N + M, Tp, A)."""
        a = self.base_samples(obs_norm, self.cfg.n_base, self.actor)
        if self.cfg.n_edit == 0:
            return a
        edited, _, _ = self.apply_edit(feat, a[:, : self.cfg.n_edit])
        return torch.cat([a, edited], 1)

    @torch.no_grad()
    def select(self, feat: torch.Tensor, cands: torch.Tensor, target: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """argmax over candidates of the min over a random critic subset -> (chunk (B,Tp,A), Q (B,))."""
        q = self.critic.min_subset(self.critic.q(feat, cands, target=target))
        best = q.argmax(-1)
        return cands[torch.arange(cands.shape[0], device=cands.device), best], q.gather(-1, best[:, None])[:, 0]

    @torch.no_grad()
    def act_normalized(self, obs_norm, feat):
        return self.select(feat, self.candidates(obs_norm, feat), target=False)[0]

    # learning -------------------------------------------------------------------------------
    def critic_step(self, b: dict) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            _, q_next = self.select(b["next_feat"], self.candidates(b["next_obs_norm"], b["next_feat"]), target=True)
        loss, q = self.td_loss(b, q_next)
        self.step(self.critic_opt, loss)
        polyak(self.critic.target, self.critic.online, self.cfg.tau)
        self.counters["critic_steps"] += 1
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def edit_step(self, b: dict) -> dict[str, torch.Tensor]:
        feat = b["feat"].detach()
        if self.cfg.edit_on == "base":
            a = self.base_samples(b["obs_norm"], 1, self.actor)
        else:
            a = b["action_norm"][:, None]
        edited, _, logp = self.apply_edit(feat, a)
        q = self.critic.q(feat, edited[:, 0]).mean(0)     # all-member mean, as the reference
        alpha = self.temp().detach()
        loss = (alpha * logp[:, 0] - q).mean()
        self.step(self.optims["edit"], loss)
        self.step(self.optims["temperature"], self.temp.loss(logp, self.target_entropy))
        return {"edit_loss": loss.detach(), "alpha": alpha, "edit_entropy": -logp.detach().mean()}

    def learn(self, replay: Replay, rng: np.random.Generator, utd: int = 1) -> dict[str, torch.Tensor]:
        m: dict[str, torch.Tensor] = {}
        for _ in range(utd):
            b = self.prepare(replay.sample(self.cfg.batch_size, rng))
            m.update(self.critic_step(b))
        if self.cfg.n_edit > 0:
            m.update(self.edit_step(b))
        if self.cfg.train_base:
            # Interventions: the human's rows get an extra weight in the base's own loss (docs/rl.md).
            m["base_loss"] = self.imitation_step(self.optims["policy"], b["obs"], b["action"], b.get("action_is_pad"),
                                                 self.human_batch(b), self.cfg.intervention_bc)
            if self.actor is not self.policy:
                polyak(self.actor, self.policy, self.cfg.actor_tau)
        self.counters["actor_steps"] += 1
        return m
