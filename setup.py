"""policy_stack: pip-installable Python package and ament_python ROS 2 package in one.

`pip install .` installs the console script `policy-stack` plus the ament index marker and
share/policy_stack (package.xml, launch/, config/) under the prefix, so
`ament_index_python.get_package_share_directory('policy_stack')` works in the venv once
AMENT_PREFIX_PATH includes the prefix (scripts/setup_env.sh takes care of that).
`colcon build` on a ROS 2 machine uses the same data_files.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "policy_stack"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Robot-learning stack: diffusion/EBT policies, RTI denoising, online RL, ROS 2 nodes",
    license="Apache-2.0",
    python_requires=">=3.10",
    # bench/ is not installed: benchmarks run from a checkout (`python -m bench.<name>` at its root).
    packages=find_packages(include=["policy_stack*", "ros_nodes*", "sim*", "hardware*"]),
    package_data={"policy_stack": ["checkpoints/**/*", "checkpoints/*"], "hardware.arms": ["urdf/*.urdf"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        # `ros2 run policy_stack <node>` looks in lib/<package>/: small wrappers around the modules.
        (f"lib/{PACKAGE}", ["ros_nodes/bin/inference_node", "ros_nodes/bin/sim_node",
                           "ros_nodes/bin/realsense_node", "ros_nodes/bin/arm_adapter"]),
    ],
    entry_points={
        "console_scripts": [
            "policy-stack = policy_stack.cli:main",
            "inference_node = ros_nodes.inference_node:main",
            "sim_node = ros_nodes.sim_node:main",
            "realsense_node = ros_nodes.realsense_node:main",
            "arm_adapter = ros_nodes.arm_adapter:main",
        ],
    },
)
