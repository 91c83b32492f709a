"""Node parameter definitions, read from config/<node>.yaml (the one documented source). No rclpy here.

The YAML follows generate_parameter_library's definition format (as MoveIt Servo's does): per parameter
type, default_value, description, read_only and validation (bounds<> / one_of<>). Nodes declare their
parameters from it (`ros_nodes.common.declare_parameters`), the graph module and tests read it, so a
default lives in exactly one place.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

TYPES = {"bool": bool, "int": int, "double": float, "string": str, "string_array": list}


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
    if (here / "inference_node.yaml").is_file():
        return here
    os.environ.setdefault("AMENT_PREFIX_PATH", __import__("sys").prefix)
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("policy_stack")) / "config"


@functools.lru_cache(maxsize=None)
def load_definitions(node: str) -> dict[str, ParamDef]:
    """Parameter definitions of `node` (inference_node | sim_node), in file order."""
    path = config_dir() / f"{node}.yaml"
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
