# qsock: `make demo` runs the main job, `make test` runs every test.
# Both install what they need first (deps/install.sh), then build.

CARGO ?= cargo
CC ?= cc
RELEASE_DIR := target/release

.PHONY: all deps build demo demo-vm test test-rust test-c test-kmod test-vm header lint bench bench-vm eval eval-vm clean

all: build

deps:
	@bash deps/install.sh

build: deps
	$(CARGO) build --release --workspace --all-targets

# Live 20 fps H.264 through qsocksink and through a plain udpsink, side by
# side across a 10 Mbit/s bottleneck, while bulk TCP starts and stops: fps and
# jitter every second, then a CSV and a PNG under target/demo/; then the path
# bed: qsocksink (the receiver sending RTCP) and a udpsink, each across a
# router whose rate steps 3 -> 1 -> 3 Mbit/s, decodable fps and the sink's
# estimate every second, a CSV and a PNG (needs root; about 40 s more).
demo: build
	$(RELEASE_DIR)/qsock-demo

# The same with sch_dwcs, in a VM running Debian's kernel (tests/vm/run.sh);
# the plot lands in target/vm/VERSION/.
demo-vm: build
	@bash tests/vm/build-modules.sh
	@bash demo/run-vm.sh

test: build lint test-rust test-c test-kmod test-vm

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --release --workspace

test-c:
	@bash tests/c/run.sh

# The DWCS core of sch_dwcs.ko, in user space, on the same vectors as the
# Rust model (plain and under ASan + UBSan).
test-kmod:
	$(MAKE) -C kmod-dwcs check check-asan

# Kernel tests: builds kmod-dwcs for each installed Debian kernel (when the
# module is in the tree), boots each kernel under QEMU with virtme-ng (KVM if it
# works, else emulation: about 70 s a kernel) and runs tests/vm/guest.sh in it.
test-vm: build
	@bash tests/vm/build-modules.sh
	@bash tests/c/run.sh --build-only
	@bash tests/vm/run.sh

# qsock.h is written by hand; this compiles it against the Rust side's struct
# layouts, constants and function types (also part of test-rust).
header:
	$(CARGO) test --release -p qsock-capi --lib tests::header_matches_rust

bench: build
	$(CARGO) bench -p qsock-core
	$(CARGO) bench -p gst-qsocksink --bench sink

# sch_dwcs against pfifo and HTB, and its cost per packet at 1 to 10,000
# backlogged streams, in one VM boot per kernel (kmod-dwcs/test/bench.sh).
bench-vm: build
	@bash tests/vm/build-modules.sh
	@bash tests/vm/run.sh -s kmod-dwcs/test/bench.sh

# The paper's evaluation (EVALUATION.md): Table 1 and Figures 4 to 7 with
# every contender the host can run (user, and as root htb), into eval/results/.
eval: deps
	$(CARGO) build --release -p qsock-eval
	$(RELEASE_DIR)/qsock-eval all

# The evaluation's dwcs runs, in one VM boot of Debian 12's default kernel
# (linux-image-amd64's), copied into eval/results/ next to the host's.
EVAL_KVER ?= $(shell dpkg-query -W -f='$${Depends}' linux-image-amd64 2>/dev/null | sed -e 's/^linux-image-//' -e 's/ .*//')
eval-vm: deps
	@test -n "$(EVAL_KVER)" || { echo "no linux-image-amd64 installed: run make deps, or give EVAL_KVER=VERSION"; exit 1; }
	$(CARGO) build --release -p qsock-eval
	@bash tests/vm/build-modules.sh $(EVAL_KVER)
	@bash tests/vm/run.sh -k $(EVAL_KVER) -t 1200 -s eval/vm-eval.sh
	cp target/vm/$(EVAL_KVER)/eval/*-vm* eval/results/
	$(RELEASE_DIR)/qsock-eval summary

clean:
	$(CARGO) clean
