# Two entry points: `make demo` and `make test`. Each installs what it needs first.
SHELL := /bin/bash
NODE_BIN := $(shell hack/ensure-node.sh)
export PATH := $(NODE_BIN):$(PATH)

.PHONY: deps node_modules demo test typecheck unit integration bench bench-scale build crds image soak

deps: node_modules
	hack/install-deps.sh

node_modules: package-lock.json
	@if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi

typecheck: node_modules
	npx tsc -p tsconfig.json
	node hack/gen-crd.ts --check

unit: node_modules
	node --test --test-concurrency=2 'test/unit/**/*.test.ts'

# The image is built (or found up to date) before the tests that run it, not while others run.
integration: deps image
	node --test --test-concurrency=1 'test/integration/**/*.test.ts'

test: deps typecheck image
	node --test --test-concurrency=2 --test-timeout=900000 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts'

demo: deps
	node src/main.ts demo

# Benchmarks against real peers, printed as ratios (bench/*.ts say what each compares).
# bench-scale: N objects (default 20; e.g. make bench-scale N=1000 WINDOW=180), see bench/scale.ts.
bench: deps build
	hack/install-bench-deps.sh
	node bench/run.ts
	node bench/startup.ts
	node bench/verify-throughput.ts
	node bench/scale.ts

bench-scale: deps build
	node bench/scale.ts

# Not part of `make test`: 200 signed objects for 30 minutes under random faults from the fault
# matrix. SOAK_OBJECTS, SOAK_DURATION, SOAK_INTERVAL, SOAK_SEED override; SOAK_ARGS adds flags.
soak: deps
	node bench/soak.ts $(SOAK_ARGS)

build: node_modules
	npx tsc -p tsconfig.build.json

crds: node_modules
	node hack/gen-crd.ts

# The container image, saved to dist/image.tar (oci-source-controller:dev); see docs/install.md.
image:
	hack/image-build.sh
