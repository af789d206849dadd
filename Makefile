# Callscribe. `make demo` and `make test` are the two commands of the README.
SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.cache/onnxruntime/libonnxruntime.so.1
export CALLSCRIBE_ORT_LIB ?= $(ORT_LIB)
GO ?= go
# The version the binaries report (callscribe version, the serving log line).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
BINS := callscribe callscribe-bench

.PHONY: all setup setup-gpu build test test-short bench demo vet clean

all: build

setup:
	scripts/setup

# Setup and the CUDA build of ONNX Runtime (asr.provider: cuda); the tests
# check that build loads and falls back to CPU where there is no GPU.
setup-gpu:
	scripts/setup --gpu

$(ORT_LIB):
	scripts/setup --ort-only

build: $(ORT_LIB)
	@mkdir -p bin
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/ ./cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The full suite: the alert rules (promtool: valid, and their unit tests),
# then under the race detector unit and integration tests on the
# real model and ONNX Runtime (cmd/callscribe, every door end to end, runs
# past go test's default 10 minutes under the race detector), then short fuzz runs (minimizing a new input
# is cut at 1 s, or it alone would outlast the run). The fuzz runs are
# counted in executions, about 10 s each on the 2-core CI machine: a
# -fuzztime in seconds can fail with a bare "context deadline exceeded" at
# its end on a loaded machine (Go's fuzz coordinator, go.dev/issue/75804,
# fixed in Go 1.27), with nothing found.
test: setup-gpu build vet
	promtool check config deployments/prometheus/prometheus.yml
	promtool test rules deployments/prometheus/callscribe-rules.test.yml deployments/prometheus/callscribe-rules-calendar.test.yml
	$(GO) test -count=1 -race -timeout 25m ./...
	scripts/check-cuda-build
	$(GO) test -run '^$$' -fuzz FuzzReadWAV -fuzztime 150000x -fuzzminimizetime 1s ./media
	$(GO) test -run '^$$' -fuzz FuzzLegRTP -fuzztime 120000x -fuzzminimizetime 1s ./media
	$(GO) test -run '^$$' -fuzz FuzzParseOffer -fuzztime 100000x -fuzzminimizetime 1s ./sip
	$(GO) test -run '^$$' -fuzz FuzzWHIPOffer -fuzztime 12000x -fuzzminimizetime 1s ./webrtc
	$(GO) test -run '^$$' -fuzz FuzzRecordingBody -fuzztime 50000x -fuzzminimizetime 1s ./sip
	$(GO) test -run '^$$' -fuzz FuzzMessages -fuzztime 120000x -fuzzminimizetime 1s ./audiofork
	$(GO) test -run '^$$' -fuzz FuzzFormat -fuzztime 400000x -fuzzminimizetime 1s ./itn
	$(GO) test -run '^$$' -fuzz FuzzClientMessage -fuzztime 100000x -fuzzminimizetime 1s ./audiohook
	$(GO) test -run '^$$' -fuzz FuzzMessages -fuzztime 50000x -fuzzminimizetime 1s ./audiosocket
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 80000x -fuzzminimizetime 1s ./twilio

# Benchmarks: Go micro-benchmarks, then Callscribe beside the sherpa-onnx
# peer on the same files and cores.
bench: build
	scripts/setup --peer
	$(GO) test -run '^$$' -bench . -benchmem ./asr ./media
	bin/callscribe-bench
	bin/callscribe-load rtp -legs 1000 -seconds 5 -poll 1
	scripts/bench-sip
	scripts/bench-webrtc

# The main job on the embedded default: its own redis-server, the gateway,
# a real SIP call (sipp) speaking a test WAV, the transcript as it arrives.
demo: setup build
	scripts/demo/run

clean:
	rm -rf bin
