#!/usr/bin/env bash
# Builds libqsock.so, compiles tests/c/paper_api.c against the checked-in
# qsock.h, and runs it twice:
#   1. the user scheduler over loopback, without privilege (dropped to
#      nobody with setpriv when run as root);
#   2. the htb scheduler in a network namespace of its own, on that
#      namespace's lo: traffic to a local address always leaves by lo, so that
#      is where the scheduler must sit to see it. The namespace is removed on
#      exit.
#   3. the same, unchanged, as a user created for the test (and removed on
#      exit), without privilege: qsockd --foreground runs as root in the
#      namespace and schedules the program's sockets on htb; then
#      tests/c/admission.c, a stream qsockd cannot admit refused with EBUSY.
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

cargo build --release -p qsock-capi -p qsockd
mkdir -p "$out"
"${CC:-cc}" -std=gnu11 -Wall -Wextra -Werror -O2 \
	-I qsock-capi/include tests/c/paper_api.c \
	-L "$lib" -lqsock -Wl,-rpath,"$lib" -o "$bin"
"${CC:-cc}" -std=gnu11 -Wall -Wextra -Werror -O2 \
	-I qsock-capi/include tests/c/admission.c \
	-L "$lib" -lqsock -Wl,-rpath,"$lib" -o "$out/admission"
if [ $build_only = 1 ]; then
	echo "run.sh: built $bin"
	exit 0
fi

failed=()
cleanup=()
trap 'for step in "${cleanup[@]}"; do $step >/dev/null 2>&1 || true; done' EXIT

echo "== pass 1: user scheduler on lo, unprivileged"
if [ "$(id -u)" = 0 ]; then
	unprivileged=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all)
else
	unprivileged=()
fi
if ! "${unprivileged[@]}" "$bin" lo user 127.0.0.1; then
	failed+=("user")
fi

# A namespace NAME, removed on exit, whose lo is up with an Ethernet MTU: a
# kernel scheduler sizes a periodic stream's rate from its ipg and the
# device's MTU; lo's 64 KiB would make the paper's ipg of 10 us ask for
# 52 Gbit/s. An Ethernet MTU keeps it at 1.2 Gbit/s.
lo_namespace() {
	cleanup=("ip netns del $1" "${cleanup[@]}")
	ip netns add "$1"
	ip -n "$1" link set lo mtu 1500 up
}

# True as root; else says that pass $1 needs root ($2) and counts it failed.
root_for() {
	[ "$(id -u)" = 0 ] && return 0
	echo "run.sh: the $1 pass needs root $2" >&2
	failed+=("$1 (not root)")
	return 1
}

echo "== pass 2: htb scheduler on lo in a network namespace"
if root_for htb "to create a network namespace"; then
	ns="qsock-capi-$$"
	lo_namespace "$ns"
	if ! ip netns exec "$ns" "$bin" lo htb 127.0.0.1; then
		failed+=("htb")
	fi
fi

echo "== pass 3: htb through qsockd on lo in a network namespace, as an unprivileged user"
if root_for qsockd "to create a namespace and a user"; then
	ns3="qsock-capi-qsockd-$$"
	user=qsockt-capi
	scratch=$(mktemp -d)
	# The user must reach the program, the library and the socket.
	chmod 755 "$scratch"
	cp "$bin" "$out/admission" "$lib/libqsock.so" "$scratch/"
	cleanup=("rm -rf $scratch" "${cleanup[@]}")
	userdel "$user" 2>/dev/null || true
	useradd --no-create-home --shell /usr/sbin/nologin "$user"
	cleanup=("userdel $user" "${cleanup[@]}")
	lo_namespace "$ns3"
	socket="$scratch/qsockd.sock"
	ip netns exec "$ns3" "$lib/qsockd" --foreground --socket "$socket" --device lo \
		--scheduler htb --rate 10gbit 2>"$scratch/qsockd.log" &
	daemon=$!
	cleanup=("kill $daemon" "${cleanup[@]}")
	for _ in $(seq 200); do
		if [ -S "$socket" ] || ! kill -0 "$daemon" 2>/dev/null; then
			break
		fi
		sleep 0.05
	done
	if [ ! -S "$socket" ]; then
		echo "run.sh: qsockd did not listen at $socket:" >&2
		cat "$scratch/qsockd.log" >&2
		failed+=("qsockd (no daemon)")
	elif ! ip netns exec "$ns3" runuser -u "$user" -- env QSOCK_DAEMON_SOCKET="$socket" \
		LD_LIBRARY_PATH="$scratch" "$scratch/paper_api" lo htb 127.0.0.1; then
		echo "run.sh: qsockd's log:" >&2
		cat "$scratch/qsockd.log" >&2
		failed+=("htb through qsockd")
	elif ! grep -q "uid $(id -u "$user") in 7173:" "$scratch/qsockd.log"; then
		echo "run.sh: qsockd logged no stream of $user; paper_api went around it:" >&2
		cat "$scratch/qsockd.log" >&2
		failed+=("htb through qsockd (not through it)")
	elif ! ip netns exec "$ns3" runuser -u "$user" -- env QSOCK_DAEMON_SOCKET="$socket" \
		LD_LIBRARY_PATH="$scratch" "$scratch/admission" lo; then
		failed+=("admission through qsockd")
	fi
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "run.sh: failed passes: ${failed[*]}" >&2
	exit 1
fi
echo "run.sh: all passes succeeded"
