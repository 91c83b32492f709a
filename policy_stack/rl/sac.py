"""Baseline: RLPD-style SAC (Ball et al. 2023) with a tanh-Gaussian actor over the executed chunk.

Same critic, replay (offline data at 50/50), UTD and macro-action TD as EXPO/PA-RL, but the actor is a
unimodal Gaussian trained from scratch: it shows what the expressive base policy buys. Observation
normalization still comes from the base policy (ChunkIO), so all agents see the same inputs.
The first `random_decisions` decisions act uniformly at random (RLPD's start_training).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policy_stack.rl.agent import Agent, AgentConfig, Temperature
from policy_stack.rl.nets import TanhGaussian, polyak
from policy_stack.rl.replay import Replay


@dataclass
class SacConfig(AgentConfig):
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    actor_lr: float = 3e-4
    temp_init: float = 1.0
    temp_lr: float = 3e-4
    target_entropy: float | None = None   # None: -d/2 (RLPD)
    backup_entropy: bool = True
    random_decisions: int = 0


class SacAgent(Agent):
    name = "sac"
    config_cls = SacConfig

    def __init__(self, policy, cfg: SacConfig | None = None, **kw):
        cfg = cfg or SacConfig()
        super().__init__(policy, cfg, **kw)
        d = self.io.Ta * self.io.A
        self.actor = TanhGaussian(self.features.dim, d, cfg.actor_hidden, scale=1.0).to(self.device)
        self.temp = Temperature(cfg.temp_init).to(self.device)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -d / 2.0
        self.modules.update(actor=self.actor, temperature=self.temp)
        self.optims.update(actor=torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
                           temperature=torch.optim.Adam(self.temp.parameters(), lr=cfg.temp_lr))
        self.counters["decisions"] = 0

    def _chunk(self, feat: torch.Tensor, deterministic: bool = False):
        a, logp = self.actor(feat, deterministic)
        head = a.reshape(a.shape[0], self.io.Ta, self.io.A)
        # Embed the Ta actions at the executed slot of a Tp chunk (edge steps repeated), so replay rows
        # and the critic's slicing are the same for every agent.
        s = self.io.exec_start
        idx = torch.clamp(torch.arange(self.io.Tp, device=head.device) - s, 0, self.io.Ta - 1)
        return head[:, idx], logp

    @torch.no_grad()
    def act_normalized(self, obs_norm, feat):
        self.counters["decisions"] += 1
        if self.counters["decisions"] <= self.cfg.random_decisions:
            return torch.rand(feat.shape[0], self.io.Tp, self.io.A, device=feat.device) * 2 - 1   # RLPD start_training
        return self._chunk(feat)[0]

    def critic_step(self, b):
        with torch.no_grad():
            a2, logp2 = self._chunk(b["next_feat"])
            q_next = self.critic.min_subset(self.critic.q(b["next_feat"], a2, target=True))
            if self.cfg.backup_entropy:
                # discount already holds gamma^k, the entropy bonus belongs to the next decision
                q_next = q_next - self.temp() * logp2
        loss, q = self.td_loss(b, q_next)
        self.step(self.critic_opt, loss)
        polyak(self.critic.target, self.critic.online, self.cfg.tau)
        self.counters["critic_steps"] += 1
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def actor_step(self, b):
        feat = b["feat"].detach()
        a, logp = self._chunk(feat)
        alpha = self.temp().detach()
        loss = (alpha * logp - self.critic.q(feat, a).mean(0)).mean()
        m = {}
        if self.cfg.intervention_bc > 0 and b.get("n_human"):
            # Interventions: MSE of the actor's mean toward the human's executed actions (normalized units).
            i = b["human_idx"]
            mean = self.actor(feat[i], deterministic=True)[0].reshape(len(i), self.io.Ta, self.io.A)
            target = self.io.executed(b["action_norm"][i])
            valid = (~self.io.executed(b["action_is_pad"][i][..., None]).bool()).float()
            bc = (((mean - target) ** 2) * valid).sum() / (valid.sum() * self.io.A).clamp(min=1.0)
            loss = loss + self.cfg.intervention_bc * bc
            m["bc_loss"] = bc.detach()
        self.step(self.optims["actor"], loss)
        self.step(self.optims["temperature"], self.temp.loss(logp, self.target_entropy))
        self.counters["actor_steps"] += 1
        return {"actor_loss": loss.detach(), "alpha": alpha, "entropy": -logp.detach().mean(), **m}

    def learn(self, replay: Replay, rng: np.random.Generator, utd: int = 1) -> dict[str, torch.Tensor]:
        m: dict[str, torch.Tensor] = {}
        for _ in range(utd):
            b = self.prepare(replay.sample(self.cfg.batch_size, rng))
            m.update(self.critic_step(b))
        m.update(self.actor_step(b))
        return m
