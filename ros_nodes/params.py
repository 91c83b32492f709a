"""Node parameters: definitions and the standard parameter files, both under config/. No rclpy here.

Two files per node, as MoveIt Servo has them:
- config/<node>_parameters.yaml: the DEFINITIONS in generate_parameter_library's format (per parameter
  type, default_value, description, read_only, validation bounds<> / one_of<>). Nodes declare their
  parameters from it (`ros_nodes.common.declare_parameters`), so type, bounds and meaning live in one place.
- config/<node>.yaml: a standard ROS 2 parameter file (`<node>: ros__parameters: {...}`) with the values
  a deployment starts from; `--ros-args --params-file config/<node>.yaml` accepts it, and the launch file
  and `policy-stack up` pass it to every node they start (test/ros/test_params.py checks it against the
  definitions).
"""
from __future__ import annotations

import array
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

TYPES = {"bool": bool, "int": int, "double": float, "string": str, "string_array": list, "double_array": list}


@dataclass(frozen=True)
class ParamDef:
    name: str
    type: str
    default: object
    description: str
    read_only: bool = True
    bounds: tuple | None = None
    choices: tuple | None = None

    def check(self, value):
        """Return value converted to the declared type; ValueError names the parameter otherwise."""
        if self.type == "double" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type == "double_array" and isinstance(value, (list, tuple, array.array)):   # rclpy: array('d')
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ValueError(f"parameter {self.name!r}: expected a list of numbers, got {value!r}")
            value = [float(v) for v in value]
        want = TYPES[self.type]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError(f"parameter {self.name!r}: expected {self.type}, got {value!r}")
        if self.type == "string_array" and not all(isinstance(v, str) for v in value):
            raise ValueError(f"parameter {self.name!r}: expected a list of strings, got {value!r}")
        if self.bounds is not None and not (self.bounds[0] <= value <= self.bounds[1]):
            raise ValueError(f"parameter {self.name!r}: {value!r} outside [{self.bounds[0]}, {self.bounds[1]}]")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter {self.name!r}: {value!r} not one of {list(self.choices)}")
        return value


def config_dir() -> Path:
    """config/ of the source tree (editable install, tests), else share/policy_stack/config."""
    here = Path(__file__).resolve().parents[1] / "config"
    if (here / "inference_node_parameters.yaml").is_file():
        return here
    os.environ.setdefault("AMENT_PREFIX_PATH", __import__("sys").prefix)
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("policy_stack")) / "config"


def definitions_file(node: str) -> Path:
    return config_dir() / f"{node}_parameters.yaml"


def params_file(node: str) -> Path:
    """The node's standard ROS 2 parameter file (config/<node>.yaml)."""
    return config_dir() / f"{node}.yaml"


def load_params_file(node: str, path: str | os.PathLike | None = None) -> dict:
    """ros__parameters of `node` in a standard parameter file, each value checked against its definition."""
    path = Path(path) if path is not None else params_file(node)
    data = yaml.safe_load(path.read_text())
    try:
        values = data[node]["ros__parameters"]
    except (TypeError, KeyError):
        raise ValueError(f"{path}: expected '{node}: ros__parameters: {{...}}'") from None
    defs = load_definitions(node)
    unknown = sorted(set(values) - set(defs) - {"use_sim_time"})
    if unknown:
        raise ValueError(f"{path}: parameters {unknown} are not defined in {definitions_file(node).name}")
    return {k: (defs[k].check(v) if k in defs else v) for k, v in values.items()}


@functools.lru_cache(maxsize=None)
def load_definitions(node: str) -> dict[str, ParamDef]:
    """Parameter definitions of `node` (inference_node | sim_node), in file order."""
    path = definitions_file(node)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or node not in data:
        raise ValueError(f"{path}: expected a top-level key {node!r}")
    defs = {}
    for name, d in data[node].items():
        if d.get("type") not in TYPES:
            raise ValueError(f"{path}: parameter {name!r} has unknown type {d.get('type')!r}")
        v = d.get("validation") or {}
        bounds = tuple(v["bounds<>"]) if "bounds<>" in v else None
        choices = tuple(v["one_of<>"][0]) if "one_of<>" in v else None
        p = ParamDef(name, d["type"], d["default_value"], " ".join(str(d.get("description", "")).split()),
                     bool(d.get("read_only", True)), bounds, choices)
        p.check(p.default)  # a definition whose own default is invalid is a bug in the YAML
        defs[name] = p
    return defs


def defaults(node: str) -> dict:
    return {name: p.default for name, p in load_definitions(node).items()}
