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
MOTO_INSTALLED := $(VENV)/bin/moto_server
# DuckDB reads the compacted Parquet in the tests, as a consumer (Athena's stand-in) would.
DUCKDB_VERSION := 1.4.4
# fsspec: the compaction bench counts the bytes DuckDB reads through it. pytz: DuckDB needs it to
# hand back timestamps with a time zone.
FSSPEC_VERSION := 2026.9.0
PYTZ_VERSION := 2026.6
DUCKDB_INSTALLED := $(VENV)/.duckdb-$(DUCKDB_VERSION)-fsspec-$(FSSPEC_VERSION)-pytz-$(PYTZ_VERSION)
# The tests' and the demo's moto: the installed one, with AssumeRole checking the role and its trust
# as STS does (tests/e2e/local_moto.py).
export MOTO_SERVER := $(abspath tests/e2e/local-moto-server)
export SAM_CLI_TELEMETRY := 0
# Lambda: arm64 (Graviton), linked against AL2023's glibc 2.34 by cargo-zigbuild + zig, no Docker.
LAMBDA_TARGET := aarch64-unknown-linux-gnu
LAMBDA_GLIBC := 2.34
ZIGBUILD_VERSION := 0.24.0
ZIGLANG_VERSION := 0.15.2
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
# The browser the tests open the audit report in: Debian's chromium, headless.
CHROMIUM ?= $(or $(shell command -v chromium 2>/dev/null),/usr/bin/chromium)
export CHROMIUM
# The library that moves the demo's functions' clock through its simulated day.
LIBFAKETIME := /usr/lib/$(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/faketime/libfaketime.so.1
# checkov in a venv of its own: its pins differ from the SAM CLI's.
CHECKOV := $(VENV)/checkov/bin/checkov
SESSION_FUNCTIONS := workspaces-pool-sessions workspaces-connection-status ivs-stream-sessions chime-proxy-sessions gamelift-stream-sessions
FUNCTIONS := $(SESSION_FUNCTIONS) scope-planner history-compactor
# The largest shipping bootstrap `make lambda` accepts (docs/performance.md has their sizes);
# Lambda's own limit is 250 MB unzipped.
BOOTSTRAP_MAX_MIB := 16
# CI's Lambda build (`make lambda-check`): the bootstraps, and `sam build`'s copies of them.
LAMBDA_CHECK_OUT := target/lambda-check
# `make lint` and `make test` compile the workspace's crates through clippy-driver, clippy's own
# compiler driver, as `cargo clippy` does but building rather than only checking: the lints and the
# build share one compile of the dependencies. CLIPPY_ARGS is how cargo-clippy hands the driver
# its arguments (here `-D warnings`), each ended by __CLIPPY_HACKERY__; `make lint` checks that the
# driver still refuses a warning given this way.
CLIPPY_DRIVER := $(or $(shell rustup which clippy-driver 2>/dev/null),clippy-driver)
CLIPPY := RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# The tests' build: every binary and test of the workspace, so that the features the tests'
# dev-dependencies add (tokio's test-util among them) are in one compile of the dependencies that
# `cargo test` then reuses whole. `make unit` and `make e2e` select their tests from the same build.
TEST_BUILD := $(CLIPPY) $(CARGO) build --workspace --bins --tests --locked
# What the demo runs: its own binary, and the functions, planner and compactor it starts (debug).
DEMO_BINS := archiver-demo $(SESSION_FUNCTIONS) scope-planner history-compactor
# The bench tools build with every dependency optimised (profile bench-tools, Cargo.toml).
BENCH_TOOLS := archiver-bench archiver-org-bench archiver-compaction-bench archiver-audit-bench
TOOLS_BUILD := $(CARGO) build --locked --profile bench-tools

.PHONY: help test lint lint-template unit e2e build chromium faketime lambda lambda-check sam-build demo invoke emulator moto duckdb tools bench bench-large bench-build bench-org bench-compaction bench-audit measure clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: lint moto duckdb chromium lambda-check ## All checks and tests: lint (which builds every target), template lint, CI's Lambda build, unit and end-to-end tests
	@mkdir -p target; status=0; \
	$(CLIPPY) $(CARGO) test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.log || status=$$?; \
	awk '/^test result:/ {p += $$4; f += $$6} END {printf "summary: %d passed, %d failed\n", p, f}' target/test-output.log; \
	exit $$status

lint: lint-template ## rustfmt; clippy on every target as it builds them (warnings are errors); one TLS stack only; sam validate --lint, cfn-lint and checkov
	$(CARGO) fmt --all --check
	@mkdir -p target; printf 'fn one() -> i32 {\n    return 1;\n}\nfn main() {\n    std::process::exit(one());\n}\n' \
	  >target/clippy-canary.rs; \
	if $(CLIPPY) $(CLIPPY_DRIVER) rustc --edition 2021 --emit=metadata -o target/clippy-canary.rmeta \
	  target/clippy-canary.rs >/dev/null 2>&1; then \
	  echo "lint: clippy-driver let a warning through: it no longer reads CLIPPY_ARGS (see the Makefile)"; exit 1; fi
	$(TEST_BUILD)
	@if $(CARGO) tree --locked --target all -e normal -i ring 2>/dev/null | grep -q '^ring'; then \
	  echo "lint: ring is in the build: the SDK compiles a second TLS stack (check default features)"; exit 1; \
	else echo "lint: one TLS stack (rustls + aws-lc-rs, no ring)"; fi

lint-template: tools $(CHECKOV) ## sam validate --lint, cfn-lint and checkov (0 failed; skips carry their reason) on template.yaml and member-role.yaml
	$(VENV)/bin/sam validate --lint --template template.yaml --region us-east-1
	$(VENV)/bin/sam validate --lint --template member-role.yaml --region us-east-1
	$(VENV)/bin/cfn-lint template.yaml member-role.yaml
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml -f member-role.yaml

$(CHECKOV): | $(VENV)/bin/python
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"

unit: ## Unit tests of the library, the compaction, the audit, the emulator and the bootstrap check
	$(TEST_BUILD)
	$(CLIPPY) $(CARGO) test --workspace --locked --lib

e2e: moto duckdb chromium lambda-check ## End-to-end tests: the real SDK clients and function binaries against the emulator and moto, and CI's Lambda build
	$(TEST_BUILD)
	$(CLIPPY) $(CARGO) test --workspace --locked --test '*'

build: ## Build every binary: the seven functions and the local tools (debug, for the local stand-ins)
	$(CARGO) build --workspace --bins --locked

moto: $(MOTO_INSTALLED) ## Install the pinned moto server (local DynamoDB, S3, SQS, STS, Organizations, Secrets Manager) into .venv

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) || { echo "'$(PYTHON) -m venv' failed: on Debian, apt-get install python3-venv"; exit 1; }

$(MOTO_INSTALLED): | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "moto[server]==$(MOTO_VERSION)"

duckdb: $(DUCKDB_INSTALLED) ## Install the pinned DuckDB (Python) into .venv: the tests read the compacted Parquet with it

$(DUCKDB_INSTALLED): | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "duckdb==$(DUCKDB_VERSION)" "fsspec==$(FSSPEC_VERSION)" "pytz==$(PYTZ_VERSION)"
	@touch $@

chromium: $(CHROMIUM) ## Install Debian's chromium (apt-get, as root or through sudo): the tests open the audit report in it, headless

$(CHROMIUM):
	@$(call apt-install,chromium)

# Installs a Debian package, as root or through sudo.
define apt-install
if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else \
  echo "$(1): not installed, and installing it needs root: apt-get install $(1)"; exit 1; fi; \
$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(1) >/dev/null
endef

faketime: $(LIBFAKETIME) ## Install Debian's faketime (apt-get, as root or through sudo): the demo moves the functions' clock through a simulated day with it

$(LIBFAKETIME):
	@$(call apt-install,faketime)

tools: $(VENV)/bin/sam $(VENV)/bin/cargo-zigbuild ## Install the pinned build tools into .venv: SAM CLI, cfn-lint, cargo-zigbuild, zig

$(VENV)/bin/sam: | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "aws-sam-cli==$(SAM_CLI_VERSION)"

$(VENV)/bin/cargo-zigbuild: | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "cargo-zigbuild==$(ZIGBUILD_VERSION)" "ziglang==$(ZIGLANG_VERSION)"
	rustup target add $(LAMBDA_TARGET)

lambda: tools ## Build the seven functions for Lambda (arm64, glibc <= 2.34, optimised): target/lambda/<function>/bootstrap, checked
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) zigbuild --release --locked --target $(LAMBDA_TARGET).$(LAMBDA_GLIBC) $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do mkdir -p target/lambda/$$f && cp target/$(LAMBDA_TARGET)/release/$$f target/lambda/$$f/bootstrap; done
	$(CARGO) run --quiet --locked -p bootstrap-check -- --max-mib $(BOOTSTRAP_MAX_MIB) target/lambda/*/bootstrap

sam-build: lambda ## sam build (makefile build method, in source): .aws-sam/build/<Function>/bootstrap, checked
	PATH="$(abspath $(VENV))/bin:$$PATH" sam build --build-in-source
	$(CARGO) run --quiet --locked -p bootstrap-check -- --max-mib $(BOOTSTRAP_MAX_MIB) .aws-sam/build/*/bootstrap

lambda-check: tools ## CI's Lambda build: the same arm64 cross-compile and glibc 2.34 link, unoptimised, and sam build of it, into target/lambda-check
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) zigbuild --profile lambda-check --locked --target $(LAMBDA_TARGET).$(LAMBDA_GLIBC) $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do mkdir -p $(LAMBDA_CHECK_OUT)/$$f && cp target/$(LAMBDA_TARGET)/lambda-check/$$f $(LAMBDA_CHECK_OUT)/$$f/bootstrap; done
	PATH="$(abspath $(VENV))/bin:$$PATH" LAMBDA_OUT=$(LAMBDA_CHECK_OUT) LAMBDA_BUILD=lambda-check \
	  sam build --build-in-source --build-dir $(LAMBDA_CHECK_OUT)/sam

# Called by `sam build` with ARTIFACTS_DIR set, once per function (BuildMethod: makefile).
build-WorkspacesPoolSessionsFunction: ; $(call lambda-artifact,workspaces-pool-sessions)
build-WorkspacesConnectionStatusFunction: ; $(call lambda-artifact,workspaces-connection-status)
build-IvsStreamSessionsFunction: ; $(call lambda-artifact,ivs-stream-sessions)
build-ChimeProxySessionsFunction: ; $(call lambda-artifact,chime-proxy-sessions)
build-GameliftStreamSessionsFunction: ; $(call lambda-artifact,gamelift-stream-sessions)
build-ScopePlannerFunction: ; $(call lambda-artifact,scope-planner)
build-HistoryCompactorFunction: ; $(call lambda-artifact,history-compactor)

# The bootstraps `sam build` copies, and the target that builds them: the shipping ones, or CI's.
LAMBDA_OUT ?= target/lambda
LAMBDA_BUILD ?= lambda
define lambda-artifact
@test -f $(LAMBDA_OUT)/$(1)/bootstrap || $(MAKE) $(LAMBDA_BUILD)
cp $(LAMBDA_OUT)/$(1)/bootstrap $(ARTIFACTS_DIR)/bootstrap
endef

BENCH_SIZES ?= 10000,100000
# The bench's and the demo's moto: the pinned moto with fast DynamoDB Query and response paths
# (tests/e2e/bench_moto.py; a test checks it answers as the pinned moto does): the demo's day of
# 1,104 runs takes two thirds of the time. BENCH_MOTO=$(MOTO_INSTALLED) runs the plain one.
BENCH_MOTO ?= $(abspath tests/e2e/bench-moto-server)

bench: moto duckdb bench-build ## Benchmark the release functions at n = 10,000 and 100,000 sessions, an organization's fan-out, a day's compaction and an organization's month audited: Markdown tables + target/bench/*.json
	$(TOOLS_BUILD) $(addprefix --bin ,$(BENCH_TOOLS))
	$(CARGO) build --release --locked --bin session-audit
	MOTO_SERVER=$(BENCH_MOTO) BENCH_SIZES=$(BENCH_SIZES) target/bench-tools/archiver-bench
	MOTO_SERVER=$(BENCH_MOTO) target/bench-tools/archiver-org-bench
	target/bench-tools/archiver-compaction-bench
	target/bench-tools/archiver-audit-bench

bench-audit: ## Benchmark session-audit (release) over a synthetic month of a 1,000-scope organization (AUDIT_BENCH_*): sessions, connected and summary against 60 s and 256 MiB each
	$(TOOLS_BUILD) --bin archiver-audit-bench
	$(CARGO) build --release --locked --bin session-audit
	target/bench-tools/archiver-audit-bench

bench-large: moto bench-build ## The benchmark at n = 1,000,000 sessions (here 30-45 min and 4-8 GiB of RAM for moto, per service)
	$(TOOLS_BUILD) --bin archiver-bench
	MOTO_SERVER=$(BENCH_MOTO) BENCH_SIZES=1000000 target/bench-tools/archiver-bench

bench-compaction: moto duckdb ## Benchmark a day's compaction: 288 runs at COMPACTION_BENCH_SESSIONS (10,000) with 10 % churn, NDJSON.gz against Parquet bytes, the compactor's CPU and RSS, an audit query's bytes read (DuckDB), the day split into COMPACTION_BENCH_PARTS slices, tasks on SQS
	$(TOOLS_BUILD) --bin archiver-compaction-bench
	$(CARGO) build --release --locked -p history-compactor
	target/bench-tools/archiver-compaction-bench

bench-build: ## Build the functions in release for this machine (what the benchmarks run)
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))

bench-org: moto bench-build ## Benchmark an organization's fan-out: 200 accounts × 5 regions of WorkSpaces connection status, 10 % with sessions, two schedules through planner, queue and functions; checks the targets (ORG_BENCH_*)
	$(TOOLS_BUILD) --bin archiver-org-bench
	$(if $(filter debug,$(ORG_BENCH_PROFILE)),$(CARGO) build --locked $(addprefix --bin ,$(FUNCTIONS)))
	MOTO_SERVER=$(BENCH_MOTO) target/bench-tools/archiver-org-bench

demo: moto faketime ## Run the functions on the local stand-ins: a simulated day of one account, compacted, audited and reported; then a seeded organization (KEEP=1: stay up)
	$(CARGO) build --locked $(addprefix --bin ,$(DEMO_BINS))
	MOTO_SERVER=$(BENCH_MOTO) target/debug/archiver-demo $(if $(KEEP),--keep)

invoke: moto ## Send EVENT=<file> to FUNCTION=<id> (a session function or history-compactor) through the real binary (local; AWS=1: your account)
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=ivs-stream-sessions EVENT=events/ivs-stream-sessions/replay-one-channel.json [AWS=1]"; exit 2; }
	$(CARGO) build --locked --bin archiver-invoke $(if $(filter $(FUNCTION),$(FUNCTIONS)),--bin $(FUNCTION))
	target/debug/archiver-invoke $(if $(AWS),--aws) $(FUNCTION) $(EVENT)

emulator: ## Serve the emulated session APIs on 127.0.0.1:$(PORT) (EMULATOR_CONFIG=file.json to seed)
	$(CARGO) run --locked -p session-emulator -- --port $(PORT) $(if $(EMULATOR_CONFIG),--config $(EMULATOR_CONFIG))

measure: ## Time a fresh `make demo`, a clean `CI=true .ci/run` and a warm `make test` on clean clones of HEAD (.ci/measure; an hour, alone on the machine)
	.ci/measure

clean: ## Remove build output and the venv
	$(CARGO) clean
	rm -rf $(VENV) .aws-sam
