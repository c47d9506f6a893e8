#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# qsock-core's tests that need sch_dwcs loaded, run inside a test VM:
#   dwcs_vm.rs          the backend against the qdisc (install, classes,
#                       EDF, refusal, stats);
#   dwcs_vm_traffic.rs  traffic through it over a veth pair (loss windows
#                       under overload, lossy vs lossless, best effort,
#                       a video stream beside iperf3);
#   netns_pipelines.rs  (gst-qsocksink) live H.264 through qsocksink with
#                       scheduler=dwcs and through a plain udpsink, beside a
#                       bulk TCP transfer, into real receivers and ffprobe.
# The host built the test binaries (cargo build --all-targets); this loads
# the module and runs each with QSOCK_EXPECT_DWCS=1, so that a missing module
# is a failure there, not a skip.
#
#   bash kmod-dwcs/test/guest_rust.sh KO

set -u
KO=${1:?usage: guest_rust.sh PATH/TO/sch_dwcs.ko}
REPO=${QSOCK_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
TESTS="dwcs_vm dwcs_vm_traffic netns_pipelines"
# GStreamer caches its plugin registry under $HOME, which the guest sees
# read-only; /tmp is a throwaway overlay there.
export GST_REGISTRY=/tmp/qsock-gst-registry.bin

# Which of a binary's tests need the module: the host runs the others.
only() {
	case $1 in netns_pipelines) echo on_dwcs ;; esac
}

# The newest build of a test binary: cargo names it NAME-HASH.
newest() {
	ls -t "$REPO"/target/release/deps/"$1"-* 2>/dev/null | grep -v '\.d$' | head -n 1
}
for name in $TESTS; do
	bin=$(newest $name)
	if [ -z "$bin" ] || [ ! -x "$bin" ]; then
		echo "no $name test binary under target/release/deps: run make build first"
		exit 1
	fi
done

insmod "$KO" || { echo "cannot load $KO"; exit 1; }
rc=0
for name in $TESTS; do
	echo "== $name"
	# --nocapture: the traffic tests print what they measured; guest.sh
	# shows it on failure, and it is kept in $QSOCK_VM_OUT when that is set.
	if [ -n "${QSOCK_VM_OUT:-}" ] && [ -d "$QSOCK_VM_OUT" ]; then
		QSOCK_EXPECT_DWCS=1 "$(newest $name)" $(only $name) --test-threads=1 --nocapture \
			>"$QSOCK_VM_OUT/$name.log" 2>&1 || rc=1
		cat "$QSOCK_VM_OUT/$name.log"
	else
		QSOCK_EXPECT_DWCS=1 "$(newest $name)" $(only $name) --test-threads=1 --nocapture || rc=1
	fi
done
rmmod sch_dwcs || { echo "sch_dwcs does not unload after the tests"; exit 1; }
exit $rc
