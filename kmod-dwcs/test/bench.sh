#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmarks of sch_dwcs in one VM boot (not part of make test):
#
#   bash tests/vm/run.sh -s kmod-dwcs/test/bench.sh      (make bench-vm)
#
# 1. Packets per second of a one-socket UDP flood (18-byte payloads) from one
#    namespace to the other over a veth pair, with pfifo, HTB (one 10gbit
#    class), dwcs (best effort), dwcs (one work-conserving class of period
#    1 ms: its deadlines run ahead of a flood, so every packet is in time)
#    and dwcs (one aperiodic class: a packet without a deadline of its own is
#    due when it arrives, so every packet that queues takes the miss path)
#    as qb0's root qdisc; BENCH_SECS (2) each, BENCH_ROUNDS (5) interleaved
#    rounds; the median over rounds of each round's ratio to pfifo.
# 2. Per-packet enqueue+dequeue cost with N backlogged streams (N classes,
#    each fed by its own socket with SO_PRIORITY = its handle): dwcs-vmtool
#    streams holds BENCH_PACKETS (30000) packets in the qdisc (link rate
#    1 byte/s), queued round-robin over the N sockets, then opens the link
#    and times the drain; cost = (fill + drain) / packets, ratio to N = 1.
# Needs target/release/dwcs-vmtool and kmod-dwcs/build/$(uname -r)/sch_dwcs.ko.
set -u
REPO=${QSOCK_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=tests/vm/lib.sh
. "$REPO/tests/vm/lib.sh"
TOOL=${DWCS_VMTOOL:-$REPO/target/release/dwcs-vmtool}
KO=$REPO/kmod-dwcs/build/$(uname -r)/sch_dwcs.ko
SECS=${BENCH_SECS:-2}
ROUNDS=${BENCH_ROUNDS:-5}
PACKETS=${BENCH_PACKETS:-30000}
STREAMS=${BENCH_STREAMS:-1,10,100,1000,10000}
NA=qbench-a NB=qbench-b
a() { ip netns exec $NA "$@"; }

[ -x "$TOOL" ] || { echo "no $TOOL: cargo build --release --workspace"; exit 1; }
[ -f "$KO" ] || { echo "no $KO: bash tests/vm/build-modules.sh"; exit 1; }

cleanup() {
	[ -z "${SINK:-}" ] || kill "$SINK" 2>/dev/null
	vm_netns_del $NA $NB
	grep -q '^sch_dwcs ' /proc/modules && { sleep 1; rmmod sch_dwcs; }
	true
}
trap cleanup EXIT
vm_veth_pair $NA $NB qb0 qb1 10.97.0.1 10.97.0.2 || exit 1
insmod "$KO" || exit 1
ip netns exec $NB timeout 900 "$TOOL" sink --port 9 --secs 800 >/dev/null &
SINK=$!
a ping -c 1 -W 2 -q 10.97.0.2 >/dev/null || { echo "no ping across the pair"; exit 1; }

echo "bench: kernel $(uname -r), $(nproc) CPU; flood ${SECS} s x $ROUNDS rounds"
setup() {
	a tc qdisc del dev qb0 root 2>/dev/null
	case $1 in
	pfifo) a tc qdisc add dev qb0 root handle 1: pfifo limit 1000 ;;
	htb) a tc qdisc add dev qb0 root handle 1: htb default 1 &&
		a tc class add dev qb0 parent 1: classid 1:1 htb rate 10gbit ;;
	dwcs-be) a tc qdisc add dev qb0 root handle 1: dwcs ;;
	dwcs-class) a tc qdisc add dev qb0 root handle 1: dwcs &&
		a "$TOOL" classes --dev qb0 --major 1 --count 1 --period-ns 1000000 --keep ;;
	dwcs-late) a tc qdisc add dev qb0 root handle 1: dwcs &&
		a "$TOOL" classes --dev qb0 --major 1 --count 1 --keep ;;
	esac
}
# Under emulation a round's speed swings with the host's load, so each
# round's figures are taken as ratios to pfifo in that same round, and the
# median ratio over the rounds is the result.
declare -A ratios
QDISCS="pfifo htb dwcs-be dwcs-class dwcs-late"
for r in $(seq "$ROUNDS"); do
	declare -A pps_of=()
	for q in $QDISCS; do
		setup $q || { echo "cannot set up $q"; exit 1; }
		prio=0
		case $q in dwcs-class | dwcs-late) prio=$((0x10001)) ;; esac
		out=$(a timeout $((SECS + 30)) "$TOOL" flood --dst 10.97.0.2:9 --secs "$SECS" --prio $prio) ||
			{ echo "flood through $q failed: $out"; exit 1; }
		sent=$(a tc -s qdisc show dev qb0 | sed -n 's/.*Sent [0-9]* bytes \([0-9]*\) pkt.*/\1/p' | head -n 1)
		pps=$(sed -n 's/.*: \([0-9]*\) pps/\1/p' <<<"$out")
		echo "round $r: $q: $out; qdisc sent $sent pkt"
		[ "${pps:-0}" -gt 0 ] || { echo "no packets through $q"; exit 1; }
		pps_of[$q]=$pps
	done
	for q in $QDISCS; do
		ratios[$q]="${ratios[$q]:-} $(echo "scale=4; ${pps_of[$q]} / ${pps_of[pfifo]}" | bc)"
	done
done
a tc qdisc del dev qb0 root 2>/dev/null
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "bench: packets per second as a ratio to pfifo in the same round; median (min-max) of $ROUNDS rounds"
for q in $QDISCS; do
	sorted=$(tr ' ' '\n' <<<"${ratios[$q]}" | sed '/^$/d' | sort -n)
	printf '  %-11s %.3f  (%.3f-%.3f)\n' $q "$(median <<<"${ratios[$q]}")" \
		"$(head -n 1 <<<"$sorted")" "$(tail -n 1 <<<"$sorted")"
done

ulimit -n 30000
a tc qdisc add dev qb0 root handle 1: dwcs || exit 1
a timeout 1200 "$TOOL" streams --dev qb0 --major 1 --dst 10.97.0.2:9 \
	--streams "$STREAMS" --packets "$PACKETS" --repeat 3 || exit 1
a tc qdisc del dev qb0 root
