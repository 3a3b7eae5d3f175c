# Session archiver: build, test and run on the local stand-ins.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
PORT ?= 4566
EMULATOR_CONFIG ?=

.PHONY: help test lint unit e2e demo emulator clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: lint ## All checks and tests: lint, unit tests, end-to-end tests on the emulator
	$(CARGO) test --workspace --locked

lint: ## rustfmt and clippy (warnings are errors)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit: ## Unit tests of the library and the emulator only
	$(CARGO) test --locked -p session-archiver -p session-emulator

e2e: ## End-to-end tests: the real SDK clients against the emulator
	$(CARGO) test --locked -p archiver-e2e

demo: ## Run the whole archiver on the local stand-ins (coming: needs the Lambda functions)
	@echo "make demo arrives with the Lambda functions (issue #4)."
	@echo "Today: 'make emulator' serves the four session APIs locally; 'make test' reads them all."

emulator: ## Serve the emulated session APIs on 127.0.0.1:$(PORT) (EMULATOR_CONFIG=file.json to seed)
	$(CARGO) run --locked -p session-emulator -- --port $(PORT) $(if $(EMULATOR_CONFIG),--config $(EMULATOR_CONFIG))

clean: ## Remove build output
	$(CARGO) clean
