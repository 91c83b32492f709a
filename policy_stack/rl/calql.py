"""Cal-QL regularizer (Nakamoto et al. 2023) for offline critic pre-training and PA-RL's critic.

CQL pushes Q down on out-of-distribution actions (logsumexp over sampled actions) and up on dataset
actions. Cal-QL clips the pushed-down values of POLICY actions from below at the Monte-Carlo return
of the dataset trajectory, so the learned Q stays calibrated (never below a real return) and online
fine-tuning does not start with an "unlearning" dip. Following PA-RL's state config, no importance
weights are used on the sampled actions.
"""
from __future__ import annotations

import torch


def calql_regularizer(q_data: torch.Tensor, q_ood: torch.Tensor, is_policy: torch.Tensor,
                      mc_return: torch.Tensor | None, temperature: float = 1.0) -> torch.Tensor:
    """Per-member regularizer, shape (E,), to be scaled by alpha and added to the TD loss.

    q_data (E, B): Q of dataset actions. q_ood (E, B, K): Q of K sampled actions per state.
    is_policy (K,) bool: which of the K come from the policy (these are calibrated; uniform-random
    actions are not). mc_return (B,): lower bound for policy actions; None gives plain CQL.
    Positive when sampled actions are valued above the data; minimizing lowers them and raises
    Q(s, a_data).
    """
    if q_ood.dim() != 3 or q_ood.shape[:2] != q_data.shape:
        raise ValueError(f"calql_regularizer: q_ood {tuple(q_ood.shape)} must be (E, B, K) with (E, B) = {tuple(q_data.shape)}")
    if mc_return is not None:
        bound = mc_return.to(q_ood.dtype).view(1, -1, 1)
        q_ood = torch.where(is_policy.view(1, 1, -1).to(q_ood.device), torch.maximum(q_ood, bound), q_ood)
    lse = temperature * torch.logsumexp(q_ood / temperature, dim=-1)   # (E, B)
    return (lse - q_data).mean(-1)
