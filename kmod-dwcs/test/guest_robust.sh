#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Robustness of sch_dwcs, run inside a test VM by tests/vm/guest.sh:
#
#   bash kmod-dwcs/test/guest_robust.sh PATH/TO/sch_dwcs.ko
#
# or alone: bash tests/vm/run.sh -s kmod-dwcs/test/guest_robust.sh
#
# (a) load, carry traffic, unload, ROBUST_CYCLES times (default 30, about
#     2 to 3 s each under emulation, most of it in the RCU grace periods of
#     "tc qdisc del" and rmmod; 50 pass too): each
#     cycle adds the qdisc and a class, floods both the class and best
#     effort for a moment and checks the qdisc sent it; the first and every
#     tenth cycle also ping across (ICMP both ways through the qdisc), and
#     every tenth cycle the veth pair goes away with the qdisc on it instead
#     of a "tc qdisc del"; once the module must refuse to unload while in use;
# (b) 10,000 classes added, listed and deleted through rtnetlink;
# (c) ROBUST_FUZZ (default 20000) seeded random change requests (ROBUST_SEED,
#     default 1) on the qdisc and class change paths while datagrams flow
#     through the classes; each must be answered, and the qdisc must carry
#     traffic afterwards;
# (d) after each phase: no BUG/WARNING/Oops/leak in the kernel log and a
#     ping across the veth pair still answers.
# Needs target/release/dwcs-vmtool (cargo build --release --workspace).
# Exit status: 0 if every phase passed.

set -u
REPO=${QSOCK_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/vm/lib.sh
. "$REPO/tests/vm/lib.sh"
KO=${1:-}
# Run alone by tests/vm/run.sh -s, $1 is the kernel version: take its build.
[ -f "$KO" ] || KO=$REPO/kmod-dwcs/build/$(uname -r)/sch_dwcs.ko
TOOL=${DWCS_VMTOOL:-$REPO/target/release/dwcs-vmtool}
CYCLES=${ROBUST_CYCLES:-30}
FUZZ=${ROBUST_FUZZ:-20000}
SEED=${ROBUST_SEED:-1}
NA=qrob-a NB=qrob-b
PASS=0
FAIL=0

ok()  { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; shift; [ $# -eq 0 ] || printf '     %s\n' "$@"; }
a()   { ip netns exec $NA "$@"; }
now() { date +%s.%N | cut -c1-14; }

[ -x "$TOOL" ] || { echo "no $TOOL: run cargo build --release --workspace first"; exit 1; }

cleanup() { vm_netns_del $NA $NB; }
pair() {
	cleanup
	vm_veth_pair $NA $NB qr0 qr1 10.98.0.1 10.98.0.2 &&
		ip -n $NA neigh replace 10.98.0.2 dev qr0 nud permanent \
			lladdr "$(ip -n $NB -br link show qr1 | awk '{print $3}')"
}
trap cleanup EXIT

unload() { vm_unload_dwcs 20 0.1; }

LOG_MARK=$(dmesg | wc -l)
# log_clean PHASE: the kernel's log since the last phase has no report.
log_clean() {
	local bad_lines total
	total=$(dmesg | wc -l)
	bad_lines=$(vm_kernel_reports "$LOG_MARK")
	LOG_MARK=$total
	if [ -n "$bad_lines" ]; then
		bad "kernel log clean after $1" "$(head -n 20 <<<"$bad_lines")"
		return 1
	fi
	ok "kernel log clean after $1"
}
# responsive PHASE: a ping crosses the pair, through whatever qdisc is on qr0.
responsive() {
	if a timeout 10 ping -c 2 -i 0.05 -W 2 -q 10.98.0.2 >/dev/null 2>&1; then
		ok "ping answers after $1"
	else
		bad "ping answers after $1" "$(a tc -s qdisc show dev qr0 2>&1)"
	fi
}
sent_pkts() { a tc -s qdisc show dev qr0 | sed -n 's/.*Sent [0-9]* bytes \([0-9]*\) pkt.*/\1/p' | head -n 1; }

# --- (a) load, traffic, unload ---------------------------------------------
t0=$(now)
pair || { echo "cannot make the veth pair"; exit 1; }
cycle_err=
steps=
# step NAME: the time since the previous step, noted in the first cycle.
step() {
	[ "$i" -eq 1 ] || return 0
	steps="$steps $1=$(echo "$(now) - $ts" | bc)"
	ts=$(now)
}
for i in $(seq "$CYCLES"); do
	ts=$(now)
	insmod "$KO" || { cycle_err="cycle $i: insmod failed"; break; }
	step insmod
	a tc qdisc add dev qr0 root handle 1: dwcs ||
		{ cycle_err="cycle $i: qdisc add failed"; break; }
	a "$TOOL" classes --dev qr0 --major 1 --count 1 --period-ns 1000000 --keep >/dev/null ||
		{ cycle_err="cycle $i: class add failed"; break; }
	min_sent=2
	if [ "$i" -eq 1 ] || [ $((i % 10)) -eq 0 ]; then
		a timeout 5 ping -c 3 -i 0.01 -W 1 -q 10.98.0.2 >/dev/null 2>&1 ||
			{ cycle_err="cycle $i: no ping through dwcs"; break; }
		min_sent=5
	fi
	for prio in $((0x10001)) 0; do
		a timeout 10 "$TOOL" flood --dst 10.98.0.2:9 --secs 0.05 --prio $prio >/dev/null ||
			{ cycle_err="cycle $i: flood (priority $prio) failed"; break 2; }
	done
	step qdisc+traffic
	n=$(sent_pkts)
	[ "${n:-0}" -ge "$min_sent" ] || { cycle_err="cycle $i: qdisc sent ${n:-none}"; break; }
	if [ "$i" -eq 1 ] && rmmod sch_dwcs 2>/dev/null; then
		cycle_err="cycle $i: rmmod succeeded while a qdisc used the module"
		break
	fi
	if [ $((i % 10)) -eq 0 ]; then
		pair || { cycle_err="cycle $i: cannot remake the pair"; break; }
	else
		a tc qdisc del dev qr0 root || { cycle_err="cycle $i: qdisc del failed"; break; }
	fi
	step del
	unload || { cycle_err="cycle $i: rmmod failed"; break; }
	step rmmod
done
echo "     first cycle, seconds per step:$steps"
if [ -z "$cycle_err" ]; then
	ok "$CYCLES load/traffic/unload cycles ($(echo "$(now) - $t0" | bc) s)"
else
	bad "load/traffic/unload cycles" "$cycle_err"
	grep -q '^sch_dwcs ' /proc/modules && { a tc qdisc del dev qr0 root 2>/dev/null; unload; }
fi
log_clean "load/unload cycles"
responsive "load/unload cycles"

# --- (b) 10,000 classes ------------------------------------------------------
insmod "$KO" || { echo "cannot load $KO"; exit 1; }
a tc qdisc add dev qr0 root handle 1: dwcs || { echo "cannot add the qdisc"; exit 1; }
t0=$(now)
if out=$(a timeout 120 "$TOOL" classes --dev qr0 --major 1 --count 10000 2>&1); then
	ok "$out ($(echo "$(now) - $t0" | bc) s)"
else
	bad "10000 classes added and deleted" "$out"
fi
log_clean "10000 classes"
responsive "10000 classes"

# --- (c) random options ------------------------------------------------------
ip netns exec $NB timeout 120 "$TOOL" sink --port 9 --secs 100 >/dev/null 2>&1 &
sink=$!
t0=$(now)
before=$(sent_pkts)
if out=$(a timeout 120 "$TOOL" fuzz --dev qr0 --major 1 --seed "$SEED" --count "$FUZZ" \
		--dst 10.98.0.2:9 2>&1); then
	ok "$(head -n 1 <<<"$out") ($(echo "$(now) - $t0" | bc) s)"
	sed -n '2,$p' <<<"$out"
else
	bad "random options, seed $SEED" "$out"
fi
kill "$sink" 2>/dev/null
wait "$sink" 2>/dev/null
log_clean "random options"
responsive "random options"
after=$(sent_pkts)
if a tc qdisc show dev qr0 | grep -q '^qdisc dwcs 1: root' && [ "${after:-0}" -gt "${before:-0}" ]; then
	ok "dwcs still installed and carrying traffic (sent ${before:-0} -> ${after:-0} pkt)"
else
	bad "dwcs still installed and carrying traffic" "$(a tc -s qdisc show dev qr0 2>&1)"
fi
a tc qdisc del dev qr0 root || bad "qdisc del after the fuzz"
cleanup
unload || bad "rmmod after the robustness phases"
log_clean "unload"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
