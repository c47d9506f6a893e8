#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# qsock-core's tests that need sch_dwcs loaded (qsock-core/tests/dwcs_vm.rs),
# run inside a test VM: the host built the test binary (cargo build
# --all-targets); this loads the module and runs it with QSOCK_EXPECT_DWCS=1,
# so that a missing module is a failure there, not a skip.
#
#   bash kmod-dwcs/test/guest_rust.sh KO

set -u
KO=${1:?usage: guest_rust.sh PATH/TO/sch_dwcs.ko}
REPO=${QSOCK_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}

# The newest build of the test binary: cargo names it dwcs_vm-HASH.
BIN=$(ls -t "$REPO"/target/release/deps/dwcs_vm-* 2>/dev/null | grep -v '\.d$' | head -n 1)
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
	echo "no dwcs_vm test binary under target/release/deps: run make build first"
	exit 1
fi
insmod "$KO" || { echo "cannot load $KO"; exit 1; }
QSOCK_EXPECT_DWCS=1 "$BIN" --test-threads=1
rc=$?
rmmod sch_dwcs || { echo "sch_dwcs does not unload after the tests"; exit 1; }
exit $rc
