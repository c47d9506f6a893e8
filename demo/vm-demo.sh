#!/usr/bin/env bash
# `make demo` inside a test VM, with sch_dwcs: run by tests/vm/run.sh as
#
#   bash demo/vm-demo.sh KERNEL_VERSION [qsock-demo ARGS...]
#
# from the repo's root, as root, in a guest booted with that kernel. Loads
# kmod-dwcs/build/VERSION/sch_dwcs.ko and runs the host-built qsock-demo with
# scheduler dwcs, writing its CSV and PNG to $QSOCK_VM_OUT, which the host
# reads back (target/vm/VERSION/).
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/../tests/vm/lib.sh"
expected=${1:?usage: vm-demo.sh KERNEL_VERSION [qsock-demo ARGS...]}
shift
kver=$(uname -r)
vm_expect_kernel "$expected" || exit 1
[ -n "${QSOCK_VM_OUT:-}" ] || { echo "QSOCK_VM_OUT is not set: run this through tests/vm/run.sh"; exit 1; }

# Hold receive timestamps on from before anything flows (tests/vm/lib.sh
# says why).
vm_hold_rx_timestamps
trap 'kill $vm_timestamp_holder 2>/dev/null' EXIT

# GStreamer caches its plugin registry under $HOME, which the guest sees
# read-only; /tmp is a throwaway overlay there.
export GST_REGISTRY=/tmp/qsock-gst-registry.bin

ko=kmod-dwcs/build/$kver/sch_dwcs.ko
demo=target/release/qsock-demo
[ -f "$ko" ] || { echo "no $ko: run bash tests/vm/build-modules.sh on the host first"; exit 1; }
[ -x "$demo" ] || { echo "no $demo: run make build on the host first"; exit 1; }
insmod "$ko" || { echo "cannot load $ko"; exit 1; }
echo "sch_dwcs loaded into $kver"
"$demo" --scheduler dwcs --out-dir "$QSOCK_VM_OUT" "$@"
