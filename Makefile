# clickstream: one Makefile for the Go workspace. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

MODULES := schemas services collector validator lakewriter compactor e2e
# deploy holds the tests of the Dockerfile, compose, Kubernetes and monitoring files; it is kept out
# of go.work (like tools/) so its large dependency graph never moves the services' versions.
OPS_MODULE := deploy
GO      ?= go
# How long make test fuzzes the collector's HTTP handler (go test -fuzztime).
FUZZTIME ?= 10s

.PHONY: help generate docs check-generated build test lint fmt run demo e2e e2e-faults images bench stack-up stack-down stack-status

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

generate: ## regenerate Go code from schemas/proto (buf, from the tools module)
	./schemas/generate.sh

docs: ## regenerate README.md's configuration reference from the config structs
	$(GO) run ./services/cmd/clickstream config-reference README.md

check-generated: generate ## fail if the committed generated code is not what make generate writes
	@git diff --exit-code -- schemas || { echo "generated code is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- schemas)" || { git status --porcelain -- schemas; echo "make generate left untracked files" >&2; exit 1; }

build: ## build every service binary into bin/
	@mkdir -p bin
	$(GO) build -o bin/ ./collector/cmd/... ./validator/cmd/... ./lakewriter/cmd/... ./compactor/cmd/... ./services/cmd/...

test: ## unit and in-process tests of every module, with the race detector
	@for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done
	@echo "== fuzz: the collector's HTTP handler for $(FUZZTIME)"; cd collector && $(GO) test -run '^$$' -fuzz '^FuzzHTTPHandler$$' -fuzztime $(FUZZTIME) .
	@echo "== $(OPS_MODULE)"; cd $(OPS_MODULE) && GOWORK=off $(GO) test -count=1 ./...

lint: ## gofmt, go vet and buf lint
	@out=$$(gofmt -l $(MODULES) $(OPS_MODULE)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	cd $(OPS_MODULE) && GOWORK=off $(GO) vet ./...
	./schemas/lint.sh

fmt: ## format all Go code
	gofmt -w $(MODULES) $(OPS_MODULE)

run: ## the embedded default: every service in one process, in-process Kafka, lake in ./lake
	CLICKSTREAM_EMBEDDED=true $(GO) run ./services/cmd/clickstream run

demo: ## make run in the background, 30 s of sample events over WebSocket, then the Parquet files
	@mkdir -p bin && $(GO) build -o bin/ ./services/cmd/clickstream ./collector/cmd/loadgen
	@CLICKSTREAM_EMBEDDED=true LAKEWRITER_ROTATE_INTERVAL=10s bin/clickstream run > bin/demo.log 2>&1 & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid' EXIT; \
	  for i in $$(seq 1 60); do curl -fsS http://127.0.0.1:8080/ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	  bin/loadgen -url ws://127.0.0.1:8080/api/v1/events -conns 4 -batch 20 -rate 5 -duration 20s; \
	  sleep 15; echo "Parquet files under ./lake (log: bin/demo.log):"; find lake -name '*.parquet' | sort | tail -20

e2e: ## start the real stack (deploy/local) with empty data and run every real-stack test (e2e/real-tests.sh: fails when one skips or does not run); the stack stays up
	deploy/local/stack.sh reset
	deploy/local/stack.sh up
	set -a; eval "$$(deploy/local/stack.sh env)"; set +a; e2e/real-tests.sh

e2e-faults: ## the fault test on the running real stack (kills under load, broker outage); not yet part of make e2e
	set -a; eval "$$(deploy/local/stack.sh env)"; set +a; \
	  cd e2e && CLICKSTREAM_E2E=1 $(GO) test -count=1 -timeout 30m -run '^TestFaults$$' -v ./

images: ## build the container images (needs a Docker engine; this project's CI machines have none)
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { echo "make images: no Docker engine here; the Dockerfile is checked by make test (deploy/dockerfile_test.go)"; exit 1; }
	docker compose build

bench: ## the Go benchmarks of every module
	@for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchmem ./...) || exit 1; done

stack-up: ## fetch and start Kafka, HDFS, Hive Metastore and Trino on 127.0.0.1
	@test -x deploy/local/stack.sh || { echo "make stack-up: not built yet (issue: real stack)"; exit 1; }
	deploy/local/stack.sh up

stack-down: ## stop the local stack by its saved process ids
	@test -x deploy/local/stack.sh || { echo "make stack-down: not built yet (issue: real stack)"; exit 1; }
	deploy/local/stack.sh down

stack-status: ## one line per component of the local stack
	@test -x deploy/local/stack.sh || { echo "make stack-status: not built yet (issue: real stack)"; exit 1; }
	deploy/local/stack.sh status
