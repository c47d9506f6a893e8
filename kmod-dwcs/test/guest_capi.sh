#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The C ABI test program (tests/c/paper_api.c, against libqsock.so) with the
# dwcs scheduler, run inside a test VM: tests/c/run.sh runs it for user and
# htb on the host, where sch_dwcs is not loaded; this is its dwcs pass. The
# host built the program (`bash tests/c/run.sh --build-only`, which make
# test-vm runs); the guest sees it read-only.
#
# As in run.sh's htb pass, it runs on lo in a network namespace of its own
# (traffic to a local address leaves by lo, so that is where the scheduler
# must sit), with an Ethernet MTU: a stream's rate is sized from its ipg and
# the MTU, and lo's 64 KiB would ask for tens of Gbit/s.
#
#   bash kmod-dwcs/test/guest_capi.sh KO

set -u
KO=${1:?usage: guest_capi.sh PATH/TO/sch_dwcs.ko}
REPO=${QSOCK_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=$REPO/target/c/paper_api

if [ ! -x "$BIN" ]; then
	echo "no $BIN: run bash tests/c/run.sh --build-only first (make test-vm does)"
	exit 1
fi
for src in "$REPO/tests/c/paper_api.c" "$REPO/qsock-capi/include/qsock.h"; do
	if [ "$BIN" -ot "$src" ]; then
		echo "$BIN is older than $src: run bash tests/c/run.sh --build-only"
		exit 1
	fi
done

ns=qsock-capi-dwcs-$$
insmod "$KO" || { echo "cannot load $KO"; exit 1; }
ip netns add "$ns" && ip -n "$ns" link set lo mtu 1500 up &&
	ip netns exec "$ns" "$BIN" lo dwcs 127.0.0.1
rc=$?
ip netns del "$ns" 2>/dev/null
rmmod sch_dwcs || { echo "sch_dwcs does not unload after paper_api"; exit 1; }
exit $rc
