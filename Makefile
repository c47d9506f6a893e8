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

test: build lint test-rust test-c test-install test-kmod test-vm

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
# Then the README's Deploy section, DKMS included, in one more boot of Debian
# 12's default kernel (tests/vm/deploy.sh; about 8 minutes under emulation),
# its logs in target/vm-deploy/VERSION/.
test-vm: build
	@bash tests/vm/build-modules.sh
	@bash tests/c/run.sh --build-only
	@bash tests/vm/run.sh
	@test -n "$(EVAL_KVER)" || { echo "no linux-image-amd64 installed: run make deps"; exit 1; }
	@QSOCK_VM_OUTROOT=$(CURDIR)/target/vm-deploy bash tests/vm/run.sh -k $(EVAL_KVER) -t 1500 -s tests/vm/deploy.sh

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
# (linux-image-amd64's), copied into eval/results/ next to the host's; the
# path experiment's in another, of the newest kernel installed: qsocksink
# reads its packets' departures from veth's software transmit timestamps,
# which the default kernel's veth does not take.
EVAL_KVER ?= $(shell dpkg-query -W -f='$${Depends}' linux-image-amd64 2>/dev/null | sed -e 's/^linux-image-//' -e 's/ .*//')
EVAL_PATH_KVER ?= $(shell ls /boot/vmlinuz-* 2>/dev/null | sed 's,^/boot/vmlinuz-,,' | sort -V | tail -n 1)
eval-vm: deps
	@test -n "$(EVAL_KVER)" || { echo "no linux-image-amd64 installed: run make deps, or give EVAL_KVER=VERSION"; exit 1; }
	$(CARGO) build --release -p qsock-eval
	@bash tests/vm/build-modules.sh $(EVAL_KVER)
	@bash tests/vm/run.sh -k $(EVAL_KVER) -t 1200 -s eval/vm-eval.sh
	cp target/vm/$(EVAL_KVER)/eval/*-vm* eval/results/
	@bash tests/vm/build-modules.sh $(EVAL_PATH_KVER)
	@bash tests/vm/run.sh -k $(EVAL_PATH_KVER) -t 1200 -s eval/vm-eval.sh -- path
	cp target/vm/$(EVAL_PATH_KVER)/eval/path-vm* eval/results/
	$(RELEASE_DIR)/qsock-eval summary

clean:
	$(CARGO) clean

# --- install -----------------------------------------------------------------
# `make build`, then as root `make install` (PREFIX=/usr puts the plugin in
# GStreamer's own plugin directory; see the README's Deploy section).
# `make uninstall` with the same PREFIX and DESTDIR removes every file it put.
.PHONY: install uninstall install-check test-install

PREFIX ?= /usr/local
DESTDIR ?=
STRIP ?= strip
PKG_CONFIG ?= pkg-config
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# GStreamer's pluginsdir with its prefix moved to PREFIX: for PREFIX=/usr
# the directory GStreamer searches by itself.
GST_PLUGINDIR ?= $(or $(shell $(PKG_CONFIG) --define-variable=prefix=$(PREFIX) --variable=pluginsdir gstreamer-1.0 2>/dev/null),$(LIBDIR)/gstreamer-1.0)
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
# qsockd reads /etc/qsock/qsockd.toml unless told otherwise, whatever PREFIX.
SYSCONFDIR ?= /etc
QSOCK_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
DKMS_NAME := $(shell sed -n 's/^PACKAGE_NAME="\(.*\)"/\1/p' kmod-dwcs/dkms.conf)
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' kmod-dwcs/dkms.conf)
DKMS_SRCDIR ?= $(PREFIX)/src/$(DKMS_NAME)-$(DKMS_VERSION)
# What DKMS needs to build sch_dwcs.ko, nothing of the user-space tests.
DKMS_SOURCES := Kbuild Makefile dkms.conf sch_dwcs.c dwcs_core.c dwcs_core.h include/uapi/linux/sch_dwcs.h
INSTALL_BUILT := $(RELEASE_DIR)/qsockctl $(RELEASE_DIR)/qsockd $(RELEASE_DIR)/libqsock.so $(RELEASE_DIR)/libgstqsocksink.so
# The pkg-config file's paths, relative to ${prefix} where they lie under it.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

install-check:
	@missing=; for f in $(INSTALL_BUILT); do test -f "$$f" || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make install: not built:$$missing; run 'make build' (or cargo build --release --workspace) first, then make install again" >&2; \
	  exit 1; \
	fi

install: install-check
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(GST_PLUGINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/qsock \
	  $(DESTDIR)$(DKMS_SRCDIR)/include/uapi/linux
	install -m 0755 $(RELEASE_DIR)/qsockctl $(RELEASE_DIR)/qsockd $(DESTDIR)$(BINDIR)/
	install -m 0644 $(RELEASE_DIR)/libqsock.so $(DESTDIR)$(LIBDIR)/libqsock.so
	install -m 0644 $(RELEASE_DIR)/libgstqsocksink.so $(DESTDIR)$(GST_PLUGINDIR)/libgstqsocksink.so
	$(STRIP) --strip-debug $(DESTDIR)$(BINDIR)/qsockctl $(DESTDIR)$(BINDIR)/qsockd \
	  $(DESTDIR)$(LIBDIR)/libqsock.so $(DESTDIR)$(GST_PLUGINDIR)/libgstqsocksink.so
	install -m 0644 qsock-capi/include/qsock.h $(DESTDIR)$(INCLUDEDIR)/qsock.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|' \
	  -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|' -e 's|@VERSION@|$(QSOCK_VERSION)|' \
	  qsock-capi/qsock.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/qsock.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/qsock.pc
	sed -e 's|/usr/local/bin/qsockd|$(BINDIR)/qsockd|' -e 's|/etc/qsock/|$(SYSCONFDIR)/qsock/|g' \
	  qsockd/qsockd.service >$(DESTDIR)$(UNITDIR)/qsockd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/qsockd.service
	install -m 0644 qsockd/qsockd.sysusers $(DESTDIR)$(SYSUSERSDIR)/qsockd.conf
	install -m 0644 qsockd/qsockd.example.toml $(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.example.toml
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.toml ]; then \
	  echo "kept $(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.toml (compare it with qsockd.example.toml beside it)"; \
	else \
	  echo "install -m 0644 qsockd/qsockd.example.toml $(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.toml"; \
	  install -m 0644 qsockd/qsockd.example.toml $(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.toml; \
	fi
	for f in $(DKMS_SOURCES); do install -m 0644 kmod-dwcs/$$f $(DESTDIR)$(DKMS_SRCDIR)/$$f || exit 1; done
	@if [ -z "$(DESTDIR)" ]; then \
	  ldconfig || exit 1; \
	  if command -v systemd-sysusers >/dev/null; then systemd-sysusers $(SYSUSERSDIR)/qsockd.conf || exit 1; \
	  else echo "no systemd-sysusers: create the system user qsock (useradd --system qsock) before starting qsockd" >&2; fi; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload || exit 1; fi; \
	fi

uninstall:
	@if [ -z "$(DESTDIR)" ] && command -v dkms >/dev/null && \
	  [ -n "$$(dkms status -m $(DKMS_NAME) -v $(DKMS_VERSION) 2>/dev/null)" ]; then \
	  echo "dkms remove -m $(DKMS_NAME) -v $(DKMS_VERSION) --all"; \
	  dkms remove -m $(DKMS_NAME) -v $(DKMS_VERSION) --all; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/qsockctl $(DESTDIR)$(BINDIR)/qsockd $(DESTDIR)$(LIBDIR)/libqsock.so \
	  $(DESTDIR)$(INCLUDEDIR)/qsock.h $(DESTDIR)$(PKGCONFIGDIR)/qsock.pc \
	  $(DESTDIR)$(GST_PLUGINDIR)/libgstqsocksink.so $(DESTDIR)$(UNITDIR)/qsockd.service \
	  $(DESTDIR)$(SYSUSERSDIR)/qsockd.conf
	rm -rf $(DESTDIR)$(DKMS_SRCDIR)
	@dkms_copy=/usr/src/$(DKMS_NAME)-$(DKMS_VERSION); \
	if [ -z "$(DESTDIR)" ] && [ "$(DKMS_SRCDIR)" != "$$dkms_copy" ] && cmp -s $$dkms_copy/dkms.conf kmod-dwcs/dkms.conf; then \
	  echo "rm -rf $$dkms_copy (dkms add's copy of $(DKMS_SRCDIR))"; rm -rf $$dkms_copy; \
	fi
	@config=$(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.toml; \
	if [ -e "$$config" ] && ! cmp -s "$$config" qsockd/qsockd.example.toml; then \
	  echo "kept $$config: it differs from the example (the admin's settings); remove it by hand if they are no longer wanted"; \
	else \
	  echo "rm -f $$config"; rm -f "$$config"; \
	fi
	rm -f $(DESTDIR)$(SYSCONFDIR)/qsock/qsockd.example.toml
	-rmdir $(DESTDIR)$(SYSCONFDIR)/qsock 2>/dev/null
	@if [ -z "$(DESTDIR)" ]; then \
	  ldconfig; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	  if getent passwd qsock >/dev/null; then echo "kept the system user qsock (userdel qsock removes it)"; fi; \
	fi

# make install and make uninstall into a scratch DESTDIR: every file where it
# belongs, stripped, usable through pkg-config, the unit verified, and nothing
# left behind.
test-install: build
	@bash tests/install/run.sh
