# Session archiver: build, test and run on the local stand-ins.
# `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help
CARGO ?= cargo
PORT ?= 4566
EMULATOR_CONFIG ?=
PYTHON ?= python3
VENV := .venv
MOTO_VERSION := 5.2.5
MOTO_SERVER := $(VENV)/bin/moto_server
export MOTO_SERVER := $(abspath $(MOTO_SERVER))

.PHONY: help test lint unit e2e demo emulator moto clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: lint moto ## All checks and tests: lint, unit tests, end-to-end tests on the stand-ins
	@mkdir -p target; status=0; \
	$(CARGO) test --workspace --locked 2>&1 | tee target/test-output.log || status=$$?; \
	awk '/^test result:/ {p += $$4; f += $$6} END {printf "summary: %d passed, %d failed\n", p, f}' target/test-output.log; \
	exit $$status

lint: ## rustfmt, clippy (warnings are errors), and one TLS stack only
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@if $(CARGO) tree --locked --target all -e normal -i ring 2>/dev/null | grep -q '^ring'; then \
	  echo "lint: ring is in the build: the SDK compiles a second TLS stack (check default features)"; exit 1; \
	else echo "lint: one TLS stack (rustls + aws-lc-rs, no ring)"; fi

unit: ## Unit tests of the library and the emulator only
	$(CARGO) test --locked -p session-archiver -p session-emulator

e2e: moto ## End-to-end tests: the real SDK clients against the emulator and moto
	$(CARGO) test --locked -p archiver-e2e

moto: $(MOTO_SERVER) ## Install the pinned moto server (local DynamoDB and S3) into .venv

$(MOTO_SERVER):
	@$(PYTHON) -m venv $(VENV) || { echo "'$(PYTHON) -m venv' failed: on Debian, apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "moto[server]==$(MOTO_VERSION)"

demo: ## Run the whole archiver on the local stand-ins (coming: needs the Lambda functions)
	@echo "make demo arrives with the Lambda functions (issue #4)."
	@echo "Today: 'make emulator' serves the four session APIs locally; 'make test' reads them all."

emulator: ## Serve the emulated session APIs on 127.0.0.1:$(PORT) (EMULATOR_CONFIG=file.json to seed)
	$(CARGO) run --locked -p session-emulator -- --port $(PORT) $(if $(EMULATOR_CONFIG),--config $(EMULATOR_CONFIG))

clean: ## Remove build output and the venv
	$(CARGO) clean
	rm -rf $(VENV)
