#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# qsock-core's tests that need sch_dwcs loaded, run inside a test VM:
#   backends.rs         the contract every backend meets, its dwcs:: cases
#                       (qsockinit, streams' lifetimes, failed attaches,
#                       send_frame over IPv4 and IPv6, loss windows and
#                       non-droppable packets under overload); its user::
#                       and htb:: cases run on the host;
#   dwcs_vm.rs          the backend against the qdisc (install, classes,
#                       EDF, refusal, stats);
#   dwcs_vm_traffic.rs  traffic through it over a veth pair (lossy vs
#                       lossless, best effort, a video stream beside
#                       iperf3);
#   netns_pipelines.rs  (gst-qsocksink) its dwcs case: live H.264 through
#                       qsocksink scheduler=dwcs and through a plain udpsink,
#                       beside a bulk TCP transfer, into real receivers and
#                       ffprobe; its htb and user cases run on the host;
#   late_receiver.rs    (gst-qsocksink) its dwcs case: qsocksink started
#                       before its receiver, which then starts and restarts.
# The host built the test binaries (cargo build --all-targets); this loads
# the module and runs each with QSOCK_EXPECT_DWCS=1, so that a missing module
# is a failure there, not a skip.
#
#   bash kmod-dwcs/test/guest_rust.sh KO           (as tests/vm/guest.sh runs it)
#   bash kmod-dwcs/test/guest_rust.sh VERSION KO   (as tests/vm/run.sh -s runs it)

set -u
REPO=${QSOCK_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/vm/lib.sh
. "$REPO/tests/vm/lib.sh"
if [ $# -ge 2 ]; then
	# Booted by run.sh on its own, without guest.sh's checks and set-up.
	vm_expect_kernel "$1" || exit 1
	shift
	# Receive timestamps must not be switched on while packets flow under
	# emulation: hold them on as guest.sh does (tests/vm/lib.sh says why).
	vm_hold_rx_timestamps
	trap 'kill $vm_timestamp_holder 2>/dev/null' EXIT
fi
KO=${1:?usage: guest_rust.sh [KERNEL_VERSION] PATH/TO/sch_dwcs.ko}
# GStreamer caches its plugin registry under $HOME, which the guest sees
# read-only; /tmp is a throwaway overlay there.
export GST_REGISTRY=/tmp/qsock-gst-registry.bin

# The newest build of a test binary: cargo names it NAME-HASH.
newest() {
	ls -t "$REPO"/target/release/deps/"$1"-* 2>/dev/null | grep -v '\.d$' | head -n 1
}
for name in backends dwcs_vm dwcs_vm_traffic netns_pipelines late_receiver; do
	bin=$(newest $name)
	if [ -z "$bin" ] || [ ! -x "$bin" ]; then
		echo "no $name test binary under target/release/deps: run make build first"
		exit 1
	fi
done

insmod "$KO" || { echo "cannot load $KO"; exit 1; }
rc=0
for name in backends dwcs_vm dwcs_vm_traffic netns_pipelines late_receiver; do
	echo "== $name"
	filter=
	# Only the generic tests' dwcs cases: the others run on the host, and
	# under emulation they would only add minutes.
	[ "$name" = backends ] && filter=dwcs::
	[ "$name" = netns_pipelines ] && filter=on_dwcs
	[ "$name" = late_receiver ] && filter=on_dwcs
	# --nocapture: the traffic tests print what they measured; guest.sh
	# shows it on failure, and it is kept in $QSOCK_VM_OUT when that is set.
	if [ -n "${QSOCK_VM_OUT:-}" ] && [ -d "$QSOCK_VM_OUT" ]; then
		QSOCK_EXPECT_DWCS=1 "$(newest $name)" $filter --test-threads=1 --nocapture \
			>"$QSOCK_VM_OUT/$name.log" 2>&1 || rc=1
		cat "$QSOCK_VM_OUT/$name.log"
	else
		QSOCK_EXPECT_DWCS=1 "$(newest $name)" $filter --test-threads=1 --nocapture || rc=1
	fi
done
rmmod sch_dwcs || { echo "sch_dwcs does not unload after the tests"; exit 1; }
exit $rc
