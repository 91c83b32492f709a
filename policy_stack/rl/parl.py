"""PA-RL (Sobol Mark et al. 2024): policy-agnostic RL by action optimization + distillation.

Action optimization at a state: M base chunks -> keep the top k by Q -> G gradient-ascent steps on
each kept chunk (step size eta, normalized units, clipped to the box), remembering each particle's
best iterate (so optimization never lowers Q) -> pick the best (argmax) or sample softmax(Q / T).
The optimized policy acts, gives the critic's TD target, and is distilled into the base policy with
`policy.loss` on (state, optimized chunk): nothing here knows whether the policy is a diffusion model
or an EBT. The critic is trained with Cal-QL (alpha 0.005).

Distillation, as in the reference (`dataset_actions_to_consider` in its train.py), also offers the
replay's own chunk at that state (the demonstration, or the chunk that was executed online) as one
more particle: the policy is only pulled toward its own samples where the critic rates them above
the data. Without it the base regresses on its own samples from the first update, ranked by an
untrained critic, and drifts away from the demonstrations (measured: docs/results.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from policy_stack.rl.agent import Agent, AgentConfig
from policy_stack.rl.calql import calql_regularizer
from policy_stack.rl.critic import Critic
from policy_stack.rl.nets import polyak
from policy_stack.rl.replay import Replay


@dataclass
class ParlConfig(AgentConfig):
    n_global: int = 32                 # M base samples
    n_keep: int = 10                   # k kept by Q
    n_local_steps: int = 10            # G gradient steps per kept chunk
    step_size: float = 3e-4            # eta, normalized action units
    optimize_on: str = "mean"          # Q aggregate the steps climb: ensemble "mean" (reference) | "min_subset"
    select: str = "argmax"             # "argmax" | "softmax" (reference state configs: softmax, T=1)
    softmax_temperature: float = 1.0
    cql_alpha: float = 0.005
    cql_n_actions: int = 10
    calibrate: bool = True             # Cal-QL (False: plain CQL)
    base_lr: float = 5e-5              # reference lr for the base during PA-RL
    distill: bool = True
    distill_with_data: bool = True     # the replay's chunk competes with the optimized ones (reference)


def _aggregate(critic: Critic, q: torch.Tensor, how: str) -> torch.Tensor:
    return q.mean(0) if how == "mean" else critic.min_subset(q)


def optimize_actions(critic: Critic, feat: torch.Tensor, cands: torch.Tensor, n_keep: int, n_steps: int,
                     step_size: float, how: str = "mean",
                     extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cands (B, M, Tp, A) normalized -> (optimized (B, k, Tp, A), their Q (B, k)).

    `extra` (B, Tp, A), when given, joins the k kept samples as particle k (it is not ranked against
    the M samples, and is optimized like them), so the result has k + 1 particles.
    Only the executed part moves: Q reads the first Ta steps, so the tail's gradient is zero and the
    tail keeps the base sample (a valid continuation for the policy's loss)."""
    feat = feat.detach()
    with torch.no_grad():
        q0 = _aggregate(critic, critic.q(feat, cands), how)
        top_q, top = q0.topk(min(n_keep, cands.shape[1]), dim=1)
        x = cands[torch.arange(cands.shape[0], device=cands.device)[:, None], top]
        if extra is not None:
            x = torch.cat([x, extra[:, None].clamp(-1.0, 1.0)], 1)
            top_q = torch.cat([top_q, _aggregate(critic, critic.q(feat, x[:, -1:]), how)], 1)
    best, best_q = x.clone(), top_q.clone()
    for _ in range(n_steps):
        with torch.enable_grad():   # callers (acting) may run under no_grad
            x = x.detach().requires_grad_(True)
            q = _aggregate(critic, critic.q(feat, x), how)
            (grad,) = torch.autograd.grad(q.sum(), x)
        with torch.no_grad():
            x = (x + step_size * grad).clamp(-1.0, 1.0)
            qn = _aggregate(critic, critic.q(feat, x), how)
            better = qn > best_q
            best = torch.where(better[..., None, None], x, best)   # no boolean indexing: no host sync
            best_q = torch.where(better, qn, best_q)
    return best.detach(), best_q


class ParlAgent(Agent):
    name = "pa-rl"
    config_cls = ParlConfig

    def __init__(self, policy, cfg: ParlConfig | None = None, **kw):
        cfg = cfg or ParlConfig()
        if cfg.optimize_on not in ("mean", "min_subset") or cfg.select not in ("argmax", "softmax"):
            raise ValueError(f"ParlConfig: optimize_on={cfg.optimize_on!r} / select={cfg.select!r} not recognised")
        super().__init__(policy, cfg, **kw)
        self.modules["policy"] = policy
        self.optims["policy"] = torch.optim.Adam(policy.parameters(), lr=cfg.base_lr)

    def optimized(self, obs_norm: dict, feat: torch.Tensor,
                  extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        return optimize_actions(self.critic, feat, self.base_samples(obs_norm, c.n_global), c.n_keep,
                                c.n_local_steps, c.step_size, c.optimize_on, extra)

    def choose_index(self, q: torch.Tensor) -> torch.Tensor:
        """Which particle each state distils toward: argmax Q, or a sample of softmax(Q / T)."""
        if self.cfg.select == "argmax":
            return q.argmax(-1)
        return torch.multinomial(torch.softmax(q / self.cfg.softmax_temperature, -1), 1)[:, 0]

    def act_normalized(self, obs_norm, feat):
        parts, q = self.optimized(obs_norm, feat)
        return parts[torch.arange(parts.shape[0], device=parts.device), q.argmax(-1)]   # acting: max-Q particle (reference)

    def critic_step(self, b: dict) -> dict[str, torch.Tensor]:
        c = self.cfg
        nxt, q_nxt = self.optimized(b["next_obs_norm"], b["next_feat"])
        a_next = nxt[torch.arange(nxt.shape[0], device=nxt.device), q_nxt.argmax(-1)]
        with torch.no_grad():
            q_next = self.critic.min_subset(self.critic.q(b["next_feat"], a_next, target=True))
        td, q_data = self.td_loss(b, q_next)
        loss, m = td, {"td_loss": td.detach(), "q_mean": q_data.detach().mean()}
        if c.cql_alpha > 0:
            bsz = q_data.shape[1]
            rand = torch.rand(bsz, c.cql_n_actions, *b["action_norm"].shape[1:], device=self.device) * 2 - 1
            pi_now = self.base_samples(b["obs_norm"], c.cql_n_actions)
            # Q at the CURRENT state for every sampled action, including those proposed at s'
            # (CQL's usual set; PA-RL issue #2 is about evaluating them at the wrong state).
            ood = torch.cat([rand, pi_now, nxt], 1)
            is_pi = torch.tensor([False] * c.cql_n_actions + [True] * (c.cql_n_actions + nxt.shape[1]), device=self.device)
            reg = calql_regularizer(q_data, self.critic.q(b["feat"], ood), is_pi,
                                    b["mc_return"] if c.calibrate else None).sum()
            loss = loss + c.cql_alpha * reg
            m["calql"] = reg.detach()
        self.step(self.critic_opt, loss)
        polyak(self.critic.target, self.critic.online, c.tau)
        self.counters["critic_steps"] += 1
        return m

    def distill_step(self, b: dict) -> dict[str, torch.Tensor]:
        """Supervised step of the base policy toward its optimized chunks (policy.loss only)."""
        data = b["action_norm"] if self.cfg.distill_with_data else None
        parts, q = self.optimized(b["obs_norm"], b["feat"], data)
        idx = self.choose_index(q)
        target = self.io.unnorm_action(parts[torch.arange(parts.shape[0], device=parts.device), idx])
        is_pad, m = None, {}
        if data is not None:
            took_data = idx == parts.shape[1] - 1
            # the data chunk keeps its padding mask; an optimized chunk is a full sample
            is_pad = b["action_is_pad"] & took_data[:, None] if "action_is_pad" in b else None
            m["distill_data_frac"] = took_data.float().mean()
        if self.cfg.intervention_bc > 0 and b.get("n_human"):
            # Interventions: where a human chose the chunk, it is the target, whatever Q says (docs/rl.md).
            human = b["intervention"] > 0
            target = torch.where(human[:, None, None], b["action"].to(target.dtype), target)
            if "action_is_pad" in b:
                own = is_pad if is_pad is not None else torch.zeros_like(b["action_is_pad"])
                is_pad = torch.where(human[:, None], b["action_is_pad"], own)
            m["distill_human_frac"] = human.float().mean()
        loss = self.imitation_step(self.optims["policy"], b["obs"], target, is_pad)
        self.counters["actor_steps"] += 1
        return {"distill_loss": loss, "q_optimized": q.detach().max(-1).values.mean(), **m}

    def learn(self, replay: Replay, rng: np.random.Generator, utd: int = 1) -> dict[str, torch.Tensor]:
        m: dict[str, torch.Tensor] = {}
        for _ in range(utd):
            b = self.prepare(replay.sample(self.cfg.batch_size, rng))
            m.update(self.critic_step(b))
        if self.cfg.distill:
            m.update(self.distill_step(b))
        return m
