# The two commands a user needs. Both build .venv on first use (scripts/setup_env.sh, idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup setup-gpu run test test-fast bench clean

setup:
	@VENV=$(VENV) bash scripts/setup_env.sh

# Optional: ONNX Runtime with the CUDA/TensorRT providers (needs an NVIDIA driver; see requirements/gpu.txt).
setup-gpu: setup
	$(PY) -m pip uninstall -y onnxruntime
	$(PY) -m pip install -r requirements/gpu.txt

run: setup
	$(VENV)/bin/policy-stack run-default

test: setup
	$(PY) -m pytest -q test

# The inner loop: no ROS 2 processes, no simulator, nothing slow (markers: pytest.ini, test/conftest.py).
test-fast: setup
	$(PY) -m pytest -q -m "not ros and not sim and not slow" test

# Writes under runs/bench/ (git-ignored); bench/results/ holds only what the docs cite.
bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info
