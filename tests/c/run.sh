#!/usr/bin/env bash
# Builds libqsock.so, compiles tests/c/paper_api.c against the checked-in
# qsock.h, and runs it twice:
#   1. the user scheduler over loopback, without privilege (dropped to
#      nobody with setpriv when run as root);
#   2. the htb scheduler in a network namespace of its own, on that
#      namespace's lo: traffic to a local address always leaves by lo, so that
#      is where the scheduler must sit to see it. The namespace is removed on
#      exit.
# Every pass must succeed; a scheduler that is not available is a failure.
# The dwcs pass needs sch_dwcs loaded, so it runs in the test VMs
# (kmod-dwcs/test/guest_capi.sh, on the binary this builds).
#
#   tests/c/run.sh [--build-only]   (--build-only: build paper_api, run nothing)
set -euo pipefail
build_only=0
[ "${1:-}" != --build-only ] || build_only=1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out="$root/target/c"
bin="$out/paper_api"
lib="$root/target/release"

cargo build --release -p qsock-capi
mkdir -p "$out"
"${CC:-cc}" -std=gnu11 -Wall -Wextra -Werror -O2 \
	-I qsock-capi/include tests/c/paper_api.c \
	-L "$lib" -lqsock -Wl,-rpath,"$lib" -o "$bin"
if [ $build_only = 1 ]; then
	echo "run.sh: built $bin"
	exit 0
fi

failed=()

echo "== pass 1: user scheduler on lo, unprivileged"
if [ "$(id -u)" = 0 ]; then
	unprivileged=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all)
else
	unprivileged=()
fi
if ! "${unprivileged[@]}" "$bin" lo user 127.0.0.1; then
	failed+=("user")
fi

echo "== pass 2: htb scheduler on lo in a network namespace"
if [ "$(id -u)" != 0 ]; then
	echo "run.sh: the htb pass needs root to create a network namespace" >&2
	failed+=("htb (not root)")
else
	ns="qsock-capi-$$"
	trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
	ip netns add "$ns"
	# A kernel scheduler sizes a periodic stream's rate from its ipg and
	# the device's MTU; lo's 64 KiB would make the paper's ipg of 10 us
	# ask for 52 Gbit/s. An Ethernet MTU keeps it at 1.2 Gbit/s.
	ip -n "$ns" link set lo mtu 1500 up
	if ! ip netns exec "$ns" "$bin" lo htb 127.0.0.1; then
		failed+=("htb")
	fi
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "run.sh: failed passes: ${failed[*]}" >&2
	exit 1
fi
echo "run.sh: all passes succeeded"
