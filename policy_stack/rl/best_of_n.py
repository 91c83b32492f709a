"""Baseline: best-of-N Q re-ranking of a frozen base policy.

The critic learns with the best-of-N target (TD backup through argmax over N base samples, as in
EXPO's OTF without edits); acting picks the highest-Q of N base samples. No edit policy, no base
training, no distillation: it isolates how much of EXPO/PA-RL's gain comes from re-ranking alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from policy_stack.rl.expo import ExpoAgent, ExpoConfig


@dataclass
class BestOfNConfig(ExpoConfig):
    n_edit: int = 0
    train_base: bool = False


class BestOfNAgent(ExpoAgent):
    name = "best_of_n"
    config_cls = BestOfNConfig

    def __init__(self, policy, cfg: BestOfNConfig | None = None, **kw):
        cfg = cfg or BestOfNConfig()
        if cfg.n_edit or cfg.train_base:
            raise ValueError("BestOfNConfig: n_edit must be 0 and train_base False (use ExpoAgent otherwise)")
        super().__init__(policy, cfg, **kw)
