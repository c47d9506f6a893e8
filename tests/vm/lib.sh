# shellcheck shell=bash
# The pieces every VM guest script needs (tests/vm/guest.sh,
# kmod-dwcs/test/guest_*.sh and bench.sh, demo/vm-demo.sh, eval/vm-eval.sh).
# The guest sees the repository at its host path, so a script sources this
# file relative to itself:
#
#   . "$(dirname "$0")/../../tests/vm/lib.sh"
#
# It defines functions only; sourcing it changes nothing in the guest.

# vm_hold_rx_timestamps: turns receive timestamps on and holds them on until
# the caller kills $vm_timestamp_holder.
#
# Receive timestamps (SO_TIMESTAMP, which the traffic tests use) turn on a
# static key in the receive path; the kernel patches its code to flip it.
# Under emulation (TCG) with two vCPUs, flipping it while packets flow has
# crashed the guest with an int3 Oops in netif_rx_internal, in code that is
# not ours. Holding the key on from before anything flows means no test
# flips it under traffic.
vm_hold_rx_timestamps() {
	# Python's socket module lacks SO_TIMESTAMP on some builds: 29 is its
	# value on every architecture the guests run.
	local ready
	exec {vm_timestamp_fd}< <(python3 -c 'import socket, signal, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMP", 29), 1)
print("held", flush=True)
signal.pause()' </dev/null)
	# shellcheck disable=SC2034 # the sourcing script kills it when done
	vm_timestamp_holder=$!
	if ! read -r -u "$vm_timestamp_fd" ready || [ "$ready" != held ]; then
		echo "cannot hold receive timestamps on: the guest may crash under TCG" >&2
	fi
}

# vm_netns_del NS...: deletes the namespaces that exist; always succeeds.
vm_netns_del() {
	local ns
	for ns in "$@"; do
		ip netns del "$ns" 2>/dev/null
	done
	true
}

# vm_veth_pair NS_A NS_B DEV_A DEV_B ADDR_A ADDR_B: two new namespaces joined
# by a veth pair, DEV_A with ADDR_A/24 in NS_A and DEV_B with ADDR_B/24 in
# NS_B, both ends and both loopbacks up.
vm_veth_pair() {
	local ns_a=$1 ns_b=$2 dev_a=$3 dev_b=$4 addr_a=$5 addr_b=$6
	ip netns add "$ns_a" && ip netns add "$ns_b" &&
		ip link add "$dev_a" netns "$ns_a" type veth peer name "$dev_b" netns "$ns_b" &&
		ip -n "$ns_a" addr add "$addr_a/24" dev "$dev_a" &&
		ip -n "$ns_b" addr add "$addr_b/24" dev "$dev_b" &&
		ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up &&
		ip -n "$ns_a" link set "$dev_a" up && ip -n "$ns_b" link set "$dev_b" up
}

# vm_unload_dwcs TRIES PAUSE: rmmod sch_dwcs, trying TRIES times PAUSE
# seconds apart before a last try whose error is shown. Devices going away
# release their qdiscs, and so the module, only after an RCU grace period.
vm_unload_dwcs() {
	local tries=$1 pause=$2 _
	for _ in $(seq "$tries"); do
		rmmod sch_dwcs 2>/dev/null && return 0
		sleep "$pause"
	done
	rmmod sch_dwcs
}

# What in the kernel's log is a report of a kernel bug or leak.
vm_kernel_report_pattern='BUG|WARNING|Oops|general protection|kernel NULL pointer|Call Trace|UBSAN|KASAN|kmemleak|leak|refcount_t|list_(add|del) corruption|soft lockup|hung task|RCU stall'

# vm_kernel_reports FROM [PATTERN]: the kernel log's lines after line FROM
# that match PATTERN (default $vm_kernel_report_pattern).
vm_kernel_reports() {
	dmesg | tail -n +"$(($1 + 1))" | grep -E "${2:-$vm_kernel_report_pattern}"
}

# vm_expect_kernel EXPECTED: fails, saying so, unless the running kernel is
# EXPECTED (or EXPECTED is empty).
vm_expect_kernel() {
	[ -z "$1" ] || [ "$(uname -r)" = "$1" ] || {
		echo "running $(uname -r), expected $1"
		return 1
	}
}
