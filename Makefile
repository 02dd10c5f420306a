# Xiaoer: the two commands a user needs are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup assets run test lint validate train bench chat clean lock check-lock

setup:
	@scripts/bootstrap.sh

# the console's front-end packages (ECharts) from npm into its static files (setup runs it too)
assets:
	@scripts/assets.sh

run: setup
	@$(VENV)/bin/xiaoer up

test: setup
	@scripts/test.sh

lint: setup
	@$(VENV)/bin/ruff check xiaoer actions tests bench scripts
	@$(VENV)/bin/ruff format --check xiaoer actions tests bench scripts

validate: setup
	@$(VENV)/bin/rasa data validate --fail-on-warnings

train: setup
	@$(VENV)/bin/xiaoer train

chat: setup
	@$(VENV)/bin/xiaoer chat

bench: setup
	@$(VENV)/bin/python bench/nlu.py
	@$(VENV)/bin/python bench/serve.py

# Recompile requirements/lock.txt from pyproject.toml's dependencies (needs PyPI), keeping
# every pin that still fits; then stamp it for the offline check that `make test` runs.
# pkuseg's setup.py imports numpy, hence --no-build-isolation (the venv has the build tools).
# Upgrading one pin on purpose: make lock LOCK_ARGS="--upgrade-package NAME".
lock: setup
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet \
	  --extra test --extra dev --strip-extras --allow-unsafe --no-build-isolation \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	  -c requirements/constraints.txt -o requirements/lock.txt $(LOCK_ARGS) pyproject.toml
	@$(VENV)/bin/python scripts/check_lock.py --stamp
	@$(VENV)/bin/python scripts/check_lock.py

check-lock:
	@$(VENV)/bin/python scripts/check_lock.py

clean:
	rm -rf models var .pytest_cache
