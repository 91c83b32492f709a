"""EBT-Policy family: energy-based transformer, actions found by gradient descent on a learned energy.

Importing this package registers the "ebt" policy type (the registry also imports it on demand when a
checkpoint says type "ebt")."""
from policy_stack.policies.ebt.config import EBTConfig
from policy_stack.policies.ebt.descent import DescentTrace, EnergyDescent, langevin_sigma
from policy_stack.policies.ebt.energy import ActionEnergyDecoder, ConditionTokens
from policy_stack.policies.ebt.policy import EBTPolicy, shift_warm_start

__all__ = ["ActionEnergyDecoder", "ConditionTokens", "DescentTrace", "EBTConfig", "EBTPolicy", "EnergyDescent",
           "langevin_sigma", "shift_warm_start"]
