"""Every checkpoint shipped inside the package: within the 20 MB budget, loadable by name, and acting
with finite, in-bounds actions on a plausible observation (success rates live in docs/results.md and
test/sim; this guards against a broken or oversized file landing in the package)."""
import numpy as np
import pytest

from policy_stack.checkpoint import SHIPPED_DIR, WEIGHTS_FILE, load_checkpoint, shipped_checkpoints
from policy_stack.cli.bench import fixed_observation

SHIPPED = shipped_checkpoints()
MAX_BYTES = 20 * 1024 * 1024


def test_expected_checkpoints_are_shipped():
    assert "diffusion_lowdim_lift" in SHIPPED
    assert "ebt_lowdim_lift" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_size_and_action(name):
    folder = SHIPPED_DIR / name
    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert total <= MAX_BYTES, f"{name}: {total / 2**20:.1f} MiB > 20 MiB"
    assert (folder / WEIGHTS_FILE).stat().st_size > 0
    policy = load_checkpoint(name, "cpu").policy     # by name, as --policy NAME does
    policy.reset()
    obs = fixed_observation(policy.obs_spec)
    for _ in range(3):                               # cold start, then warm-started ticks
        action = np.asarray(policy.act(obs))
    space = policy.action_space
    assert action.ndim == 2 and action.shape[-1] == len(space.names)
    assert np.isfinite(action).all()
    assert (action >= np.asarray(space.low) - 1e-6).all() and (action <= np.asarray(space.high) + 1e-6).all()


def test_unknown_name_lists_shipped(tmp_path):
    with pytest.raises(FileNotFoundError, match="diffusion_lowdim_lift"):
        load_checkpoint("no_such_checkpoint", "cpu")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_states_every_field(name):
    """A later change of a default must not change a shipped policy: its config.json names every field."""
    import dataclasses

    from policy_stack.checkpoint import read_config
    from policy_stack.policies import get_policy_classes
    data = read_config(SHIPPED_DIR / name)
    config_cls, _ = get_policy_classes(data["policy_type"])
    assert data["format_version"] == 2
    assert set(data["config"]) == {f.name for f in dataclasses.fields(config_cls)}
    # what the training ran with (meta.train_config) is what the config says
    assert data["config"]["grad_clip"] == data["meta"]["train_config"]["grad_clip"]
