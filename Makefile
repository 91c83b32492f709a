# The two commands a user needs. Both build .venv on first use (scripts/setup_env.sh, idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup run test bench clean

setup:
	@VENV=$(VENV) bash scripts/setup_env.sh

run: setup
	$(VENV)/bin/policy-stack run-default

test: setup
	$(PY) -m pytest -q test

bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info
