"""The arm adapter's parameter files: every parameter documented and bounded, the standard file valid."""
from pathlib import Path

import pytest
import yaml

from ros_nodes.params import ParamDef, load_definitions, load_params_file

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_every_arm_adapter_parameter_is_documented_and_bounded():
    raw = yaml.safe_load((CONFIG / "arm_adapter_parameters.yaml").read_text())["arm_adapter"]
    defs = load_definitions("arm_adapter")
    assert {"backend", "workspace_min", "workspace_max", "max_linear_speed", "teleop_topic", "urdf_path"} <= set(defs)
    for name, d in defs.items():
        assert {"type", "default_value", "description"} <= set(raw[name]), name
        assert len(d.description) > 15, f"arm_adapter.{name}: describe meaning and units"
        if d.type in ("int", "double"):
            assert d.bounds is not None, f"arm_adapter.{name}: numeric parameter without bounds"
    assert defs["backend"].choices == ("servo", "jtc", "pose")


def test_standard_file_matches_the_definitions():
    values = load_params_file("arm_adapter")
    assert values["backend"] == "servo" and values["workspace_min"] == [0.25, -0.4, 0.02]


def test_double_array_parameters_check_their_elements():
    p = ParamDef("workspace_min", "double_array", [0.0, 0.0, 0.0], "box corner, m")
    assert p.check([1, 2.5, 3]) == [1.0, 2.5, 3.0]
    with pytest.raises(ValueError, match="list of numbers"):
        p.check([1.0, "x", 2.0])
    with pytest.raises(ValueError, match="expected double_array"):
        p.check(1.0)
