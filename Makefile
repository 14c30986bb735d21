GO ?= go
BIN := bin/regsweep
DEMO_DIR := $(CURDIR)/build/demo-registry
BUILDS_DIR := $(CURDIR)/build/demo-builds

.PHONY: all build test demo lint e2e bench bench-scale bench-beam clean sample fuzz docs static image image-smoke

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/regsweep

# Unit, differential and bad-input tests, under the race detector. With CI=true a
# missing chromium or graphviz fails the tests that need them instead of skipping.
# The Beam pipeline (cmd/regsweep-beam) is a module of its own: its plans and sweeps
# equal regsweep gc's on prism, in process. Its tests that fail jobs on purpose run
# without the race detector, which reports a race in Beam's own harness there, and
# so do the 50 differential seeds (10 under it).
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...
	cd cmd/regsweep-beam && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 20m ./...
	cd cmd/regsweep-beam && $(GO) test -count=1 -timeout 15m -run 'TestSweepRerunConverges|TestPlanDeeperThanRoundsFails|TestPlanEqualsGC$$' .

# End to end against the real peers: Debian's docker-registry (distribution 2.8.2) and
# skopeo (apt-get install docker-registry skopeo). Pushes built images, deletes through
# the registry API, compares regsweep with 2.8.2's garbage-collect, sweeps and pulls
# every remaining tag. Skips without the tools unless CI=true. See cmd/regsweep/e2e.
# The suite runs twice: with a fresh index per command, and with an index a scan just
# filled (manifests from its manifest cache).
e2e:
	REGSWEEP_E2E_SAVE=$(CURDIR)/build/e2e-storage $(GO) test -tags e2e -count=1 -v -timeout 15m ./cmd/regsweep/e2e/
	cd cmd/regsweep-beam && REGSWEEP_E2E_STORAGE=$(CURDIR)/build/e2e-storage $(GO) test -count=1 -timeout 10m -run TestPlanEqualsGCOnE2EStorage .
	REGSWEEP_E2E_WARM_INDEX=1 $(GO) test -tags e2e -count=1 -v -timeout 15m ./cmd/regsweep/e2e/

# Dry-run report on the bundled sample registry. Git does not keep file times, so the
# demo copies the sample and ages it by two days: the default 1h grace period then
# protects nothing and the report shows what a maintenance-window run would free.
demo: build
	rm -rf $(DEMO_DIR) && mkdir -p $(dir $(DEMO_DIR))
	cp -r testdata/sample/registry $(DEMO_DIR)
	find $(DEMO_DIR) -exec touch -h -d '2 days ago' {} +
	@echo "== default mode (as registry garbage-collect) =="
	REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$(DEMO_DIR) ./$(BIN) gc testdata/sample/config.yml --dry-run -q
	@echo
	@echo "== --delete-untagged (as registry garbage-collect -m) =="
	REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$(DEMO_DIR) ./$(BIN) gc testdata/sample/config.yml --dry-run -m -q
	@echo
	@echo "== capacity report (HTML, -m) from an index: scan once, report without touching storage =="
	rm -rf build/demo-index
	REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$(DEMO_DIR) ./$(BIN) scan testdata/sample/config.yml --index build/demo-index -q
	./$(BIN) report --index build/demo-index -m -o html > build/report.html
	@echo "HTML report written to $(CURDIR)/build/report.html"
	@echo
	@echo "== retention policy testdata/builds/policy.yaml on a CI registry: which tags go, what that frees =="
	rm -rf $(BUILDS_DIR) && cp -r testdata/builds/registry $(BUILDS_DIR)
	find $(BUILDS_DIR) -exec touch -h -d '2 days ago' {} +
	grep -v '^#' testdata/builds/pushed.tsv | while read -r repo tag hours; do \
		touch -h -d "$$hours hours ago" "$(BUILDS_DIR)/docker/registry/v2/repositories/$$repo/_manifests/tags/$$tag/current/link" || exit 1; done
	REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$(BUILDS_DIR) ./$(BIN) gc testdata/builds/config.yml --policy testdata/builds/policy.yaml --dry-run -q
	@echo
	@echo "== the same policy applied for real, in a 10-minute maintenance window =="
	REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$(BUILDS_DIR) ./$(BIN) gc testdata/builds/config.yml --policy testdata/builds/policy.yaml --max-duration 10m -q

# Go benchmarks, then the harness table (BENCH_SCALE=small by default; full for
# benchmarks/RESULTS.md). Times are medians of several runs in one process.
BENCH_SCALE ?= small
bench:
	$(GO) test -run XXX -bench . -benchtime 5x ./benchmarks/
	BENCH_SCALE=$(BENCH_SCALE) $(GO) run ./benchmarks/bench

# Time per blob and peak RSS of a dry run as the blob count grows, with the synthetic
# driver (SCALE_BLOBS, comma-separated; 100M takes about half an hour). SCALE_FLAGS
# passes harness flags, such as -memory-limit 1073741824 for the 100M row.
SCALE_BLOBS ?= 1000000,3000000,10000000
bench-scale:
	$(GO) run ./benchmarks/bench -only scale -synth $(SCALE_BLOBS) $(SCALE_FLAGS)

# The pipeline on prism against the single-machine engine on the synthetic driver
# (BEAM_BENCH_BLOBS, 1M by default), and what one worker does per second on S3 at 20
# ms a request: the per-element costs docs/scale-out.md sizes a cluster from.
# prism holds every collection in memory: 1M blobs take about 15 GB and six minutes
# (BEAM_BENCH_BLOBS=1000000 BEAM_BENCH_COUNT=1).
BEAM_BENCH_BLOBS ?= 100000
BEAM_BENCH_COUNT ?= 3
bench-beam:
	cd cmd/regsweep-beam && BEAM_BENCH_BLOBS=$(BEAM_BENCH_BLOBS) $(GO) test -run '^$$' -bench 'PlanSynthetic|RequestRates' -benchtime 1x -count $(BEAM_BENCH_COUNT) -timeout 60m .

# Fuzz each target for FUZZTIME (the manifest parsers, link and path parsing, the
# streamed digest scan of unreadable manifests). Seeds are in the tests and the
# sample registry; a finding is written to testdata/fuzz/ and becomes a regression
# test that every `make test` runs.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./storage:FuzzParse ./storage:FuzzCheckLink ./storage:FuzzLocate ./graph:FuzzParseManifest ./graph:FuzzStreamMentions
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -timeout 0 || exit 1; \
	done

# Rewrites testdata/sample/registry and testdata/builds/registry from testdata/mksample.
sample:
	$(GO) run ./testdata/mksample testdata/sample/registry
	$(GO) run ./testdata/mksample -builds testdata/builds/registry

STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	test -z "$$(gofmt -l .)" || (gofmt -l . && false)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd cmd/regsweep-beam && $(STATICCHECK) ./...

# Man pages and bash/zsh/fish completions, generated from the command tree.
docs: build
	rm -rf build/docs && ./$(BIN) docs build/docs
	@echo "man pages in build/docs/man (man -l build/docs/man/regsweep-gc.1), completions in build/docs/completion"

# The container image's binary: static, no local paths, stripped.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags "-s -w" -o bin/regsweep-static ./cmd/regsweep

# The image: regsweep:<version> (distroless, non-root) and <version>-kubectl (for
# docs/deploy/cronjob.yaml). Needs docker or podman with a daemon and the base images.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE ?= regsweep
CONTAINER ?= $(shell for c in docker podman; do command -v $$c >/dev/null && $$c info >/dev/null 2>&1 && echo $$c && break; done)
image:
	@test -n "$(CONTAINER)" || { echo "make image: no container builder here (docker or podman with a running daemon); 'make image-smoke' checks what the image runs"; exit 1; }
	$(CONTAINER) build -t $(IMAGE):$(VERSION) -t $(IMAGE):latest .
	$(CONTAINER) build --target with-kubectl -t $(IMAGE):$(VERSION)-kubectl .
	$(CONTAINER) run --rm --user 65532:65532 $(IMAGE):$(VERSION) --version

# What the image runs, without a container runtime: the static binary as the image's
# unprivileged user (65532), a home of its own for the index cache, on a read-only
# copy of the sample: a dry run, verify and inspect.
image-smoke: static
	.ci/image-smoke bin/regsweep-static

clean:
	rm -rf bin build
