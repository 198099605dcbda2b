# crank-mtls-controller. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
# No version is passed in: `controller version` reads the module version and
# the VCS revision that go build stamps into the binary's build info.
LDFLAGS := -s -w
GOFLAGS_BUILD := -trimpath -ldflags '$(LDFLAGS)'
# Bounded fuzzing time per target for `make fuzz` (and `make test`).
FUZZTIME ?= 10s
# e2e tests against the real Docker engine; generous because images are built.
E2E_TIMEOUT ?= 15m

.PHONY: help build test unit e2e fuzz bench lint demo demo-down clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## static binaries in bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/controller ./cmd/controller
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/testservice ./cmd/testservice

test: lint unit python-test rules-test fuzz e2e ## everything CI runs: lint, unit tests (Go and Python), alert rules, bounded fuzzing, e2e on the real engine

unit: ## unit tests (race detector on)
	$(GO) test -race -count=1 ./...

.PHONY: python-test
python-test: ## Python kit tests (servicekit/python) with Debian's python3 and pytest
	PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest servicekit/python/tests -q

.PHONY: rules-test
rules-test: ## check and unit-test the Prometheus alert rules (deploy/prometheus) with promtool
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts_test.yaml

e2e: ## end-to-end tests against the real Docker engine (fails under CI=true if there is none)
	$(GO) test -tags e2e -count=1 -parallel 4 -timeout $(E2E_TIMEOUT) -v ./e2e/ 2>&1 | tee e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+\S+_test.go:)' ; exit $${PIPESTATUS[0]}

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) >/tmp/fuzz-$$f.log 2>&1 || { cat /tmp/fuzz-$$f.log; exit 1; }; \
	  done; \
	done

bench: ## benchmarks, with the openssl CLI side by side as a ratio
	@scripts/bench.sh

.PHONY: bench-storm
bench-storm: build ## start storms on the real engine: N=100,500,1000 containers, BASE=<commit> side by side; table in bench-storm.md
	@N='$(N)' BASE='$(BASE)' scripts/bench-storm.sh

lint: ## go vet (both build tags) + gofmt + staticcheck
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

demo: build ## build images and bring up the demo stack with the controller
	@scripts/demo.sh up

demo-down: ## tear the demo stack down (keeps nothing)
	@scripts/demo.sh down

.PHONY: demo-swarm demo-swarm-down
demo-swarm: build ## the demo as a swarm stack (deploy/stack.yaml): a single-node swarm if none, certificates as swarm secrets
	@scripts/demo-swarm.sh up

demo-swarm-down: ## remove the swarm demo stack, its secrets and configs; leave the swarm if demo-swarm made it
	@scripts/demo-swarm.sh down

.PHONY: example example-down
example: build ## Python services on the kit with the controller (examples/python; builds the Python image once)
	@examples/python/run.sh up

example-down: ## tear the example stack down (keeps nothing)
	@examples/python/run.sh down

clean:
	rm -rf $(BIN) e2e.log
