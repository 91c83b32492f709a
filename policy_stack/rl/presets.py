"""Named size presets for `policy-stack finetune`: what the agent and session options default to.

- "paper": the algorithms' own defaults (the config dataclasses in rl/expo.py, rl/parl.py, rl/sac.py):
  an ensemble of 10 critics of 256^3, batch 256, EXPO N = M = 8. Sized for a GPU; on a 2-core CPU
  one EXPO update takes seconds.
- "cpu": the sizes that met the RL targets on a 2-core CPU (docs/rl.md, bench/bench_rl.py): 4 critics
  of 128^2, batch 64, EXPO N = M = 4 with temperature lr 6e-3 (20x the reference's 3e-4, because this
  preset runs UTD 1 where the reference runs UTD 20), PA-RL 8 global / 3 kept / 2 local steps with its
  Cal-QL critic pre-trained 2000 steps on the offline data first.

`finetune` picks "cpu" when the policy runs on the CPU and "paper" otherwise, unless --preset says;
--agent-set / --set override single fields of either.
"""
from __future__ import annotations

PRESETS = ("cpu", "paper")

_CPU_CRITIC = {"batch_size": 64, "num_qs": 4, "num_min_qs": 2, "critic_hidden": [128, 128]}
_AGENT = {
    "cpu": {
        "expo": dict(_CPU_CRITIC, n_base=4, n_edit=4, edit_hidden=[128, 128], temp_lr=6e-3),
        "pa-rl": dict(_CPU_CRITIC, n_global=8, n_keep=3, n_local_steps=2, cql_n_actions=3),
        "best_of_n": dict(_CPU_CRITIC, n_base=4),
        "sac": dict(_CPU_CRITIC, actor_hidden=[128, 128]),
    },
    "paper": {},
}
_SESSION = {
    "cpu": {"pa-rl": {"critic_pretrain_steps": 2000}},
    "paper": {},
}


def preset_for_device(device: str) -> str:
    """The default preset: "cpu" for a CPU device, "paper" for an accelerator."""
    return "cpu" if str(device).split(":")[0] == "cpu" else "paper"


def _check(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r}: choose from {', '.join(PRESETS)}")


def agent_preset(name: str, algo: str) -> dict:
    """Agent config fields the preset sets for `algo` (a fresh dict; empty = the dataclass defaults)."""
    _check(name)
    return {k: list(v) if isinstance(v, list) else v for k, v in _AGENT[name].get(algo, {}).items()}


def session_preset(name: str, algo: str) -> dict:
    """SessionConfig fields the preset sets for `algo`."""
    _check(name)
    return dict(_SESSION[name].get(algo, {}))
