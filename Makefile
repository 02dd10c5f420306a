# Xiaoer: the two commands a user needs are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run test lint validate train bench chat clean

setup:
	@scripts/bootstrap.sh

run: setup
	@$(VENV)/bin/xiaoer up

test: setup
	@scripts/test.sh

lint: setup
	@$(VENV)/bin/ruff check xiaoer actions tests bench
	@$(VENV)/bin/ruff format --check xiaoer actions tests bench

validate: setup
	@$(VENV)/bin/rasa data validate --fail-on-warnings

train: setup
	@$(VENV)/bin/xiaoer train

chat: setup
	@$(VENV)/bin/xiaoer chat

bench: setup
	@$(VENV)/bin/python bench/nlu.py
	@$(VENV)/bin/python bench/serve.py

clean:
	rm -rf models var .pytest_cache
