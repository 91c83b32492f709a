"""Packaging and layering: the package installs as a pip package AND looks like an ament_python package."""
import ast
import os
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_package_xml_is_ament_python_format3():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "policy_stack"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    for needed in ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs",
                   "trajectory_msgs", "diagnostic_msgs"):
        assert needed in deps, f"package.xml lacks exec_depend {needed}"


def test_ament_index_finds_share_directory_in_venv():
    # A fresh interpreter of the venv, as a user would start it: nothing pre-set but the venv itself.
    env = {k: v for k, v in os.environ.items() if k != "AMENT_PREFIX_PATH"}
    out = subprocess.run(
        [sys.executable, "-c",
         "from ament_index_python.packages import get_package_share_directory as g; print(g('policy_stack'))"],
        capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    share = pathlib.Path(out.stdout.strip())
    assert (share / "package.xml").is_file()
    assert (share / "config").is_dir()
    assert (share / "launch").is_dir()


def test_console_script_installed_and_lists_verbs():
    exe = shutil.which("policy-stack", path=str(pathlib.Path(sys.executable).parent))
    assert exe, "console script policy-stack not installed in the venv"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for verb in ("collect", "dataset", "train", "eval", "up"):
        assert verb in out.stdout


def test_unknown_verb_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "policy_stack.cli", "fly"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown command 'fly'" in out.stderr


FORBIDDEN_IN_CORE = ("rclpy", "robosuite", "pyrealsense2", "mujoco", "sim", "ros_nodes", "hardware")


def _top_level_imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno


def test_core_never_imports_ros_sim_or_hardware():
    """The core rule (README, docs/CONVENTIONS.md): policy_stack/, except the cli composition root,
    never imports rclpy, robosuite, MuJoCo, pyrealsense2, nor sim/, ros_nodes/ or hardware/."""
    offenders = []
    for path in (ROOT / "policy_stack").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "policy_stack").parts:
            continue
        for mod, line in _top_level_imports(path):
            if mod in FORBIDDEN_IN_CORE:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not offenders, "\n".join(offenders)


def test_cli_imports_sim_and_ros_only_lazily():
    """The cli package may use sim/ros_nodes/hardware, but only inside functions (per command)."""
    offenders = []
    for path in (ROOT / "policy_stack" / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    if n.split(".")[0] in FORBIDDEN_IN_CORE:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {n} at module level")
    assert not offenders, "\n".join(offenders)


HEAVY_OPTIONAL = ("onnxruntime", "onnx", "av", "matplotlib", "tensorboard", "h5py", "cv2")

IMPORT_EVERY_CORE_MODULE = """
import importlib, pkgutil, sys
import policy_stack
for m in pkgutil.walk_packages(policy_stack.__path__, "policy_stack."):
    if not m.name.startswith("policy_stack.cli"):
        importlib.import_module(m.name)
print(" ".join(sorted(sys.modules)))
"""


def test_importing_the_core_loads_no_ros_sim_or_heavy_optional_library():
    """Heavy optional libraries are imported lazily, inside the function that needs them: importing
    every core module loads none of them (nor anything the core must never import)."""
    out = subprocess.run([sys.executable, "-c", IMPORT_EVERY_CORE_MODULE], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & set(FORBIDDEN_IN_CORE + HEAVY_OPTIONAL), sorted(loaded & set(FORBIDDEN_IN_CORE + HEAVY_OPTIONAL))


def test_bench_is_not_installed_but_runs_from_the_checkout():
    """bench/ is not a package of the distribution; `python -m bench.<name>` works from the repo root."""
    elsewhere = subprocess.run([sys.executable, "-c", "import bench"], capture_output=True, text=True,
                               cwd="/", timeout=60)
    assert elsewhere.returncode != 0 and "No module named 'bench'" in elsewhere.stderr
    here = subprocess.run([sys.executable, "-m", "bench.bench_collect", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert here.returncode == 0 and "runs/bench/collect.json" in here.stdout, here.stderr[-2000:]
