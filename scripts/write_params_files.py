"""Write config/<node>.yaml, the standard ROS 2 parameter files, from the definitions' defaults.

    python scripts/write_params_files.py [--check]

The standard files carry the values a deployment starts from; at first they are the definitions' defaults
(config/<node>_parameters.yaml). Edit a standard file by hand to change a deployment value; --check (used
by the tests) fails when a file names an undefined parameter or a value its definition rejects.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ros_nodes.params import defaults, load_params_file, params_file  # noqa: E402

NODES = ("inference_node", "sim_node", "realsense_node", "arm_adapter")
HEADER = """# Standard ROS 2 parameter file of the policy_stack {node} (values; definitions with type, bounds
# and meaning: config/{node}_parameters.yaml). Start the node with it:
#   python -m ros_nodes.{node} --ros-args --params-file config/{node}.yaml
#   ros2 run policy_stack {node} --ros-args --params-file config/{node}.yaml
# The launch file and `policy-stack up` pass it first, then a file with their overrides.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only validate the existing files")
    args = ap.parse_args()
    for node in NODES:
        if args.check:
            load_params_file(node)
            continue
        doc = {node: {"ros__parameters": {"use_sim_time": False, **defaults(node)}}}
        params_file(node).write_text(HEADER.format(node=node) + yaml.safe_dump(doc, sort_keys=False, width=110))
        print(f"wrote {params_file(node)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
