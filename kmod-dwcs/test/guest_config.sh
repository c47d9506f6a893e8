#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Configuration tests of sch_dwcs in the style of the kernel's tc-testing:
# each case runs a command, checks its exit status and matches the output of
# a show command against a pattern. Run as root inside a test VM (virtme-ng)
# whose kernel matches the module build:
#
#   vng --run /boot/vmlinuz-VERSION --user root --exec \
#       'kmod-dwcs/test/guest_config.sh kmod-dwcs/sch_dwcs.ko'
#
# iproute2's tc does not know kind "dwcs": for an unknown kind it sends no
# TCA_OPTIONS and prints "[Unknown qdisc, optlen=N]". That is enough to add,
# show and delete the qdisc with its defaults; tc refuses to add a class of an
# unknown kind itself ("is classless"), so classes are tested through
# qsock-core (qsock-core/tests/dwcs_vm.rs, run by guest_rust.sh). qsockctl
# (QSOCKCTL, default target/release/qsockctl) covers the qdisc with options.
#
# Exit status: 0 if every case that ran passed.

set -u
KO=${1:-$(dirname "$0")/../sch_dwcs.ko}
DEV=dwcs0
PASS=0
FAIL=0
SKIP=0

ok()   { PASS=$((PASS + 1)); echo "ok   $1"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL $1"; shift; printf '     %s\n' "$@"; }
skip() { SKIP=$((SKIP + 1)); echo "skip $1 ($2)"; }

# case NAME EXPECTED_RC CMD [MATCH_CMD REGEX]
case_run() {
	name=$1 want=$2 cmd=$3
	out=$(sh -c "$cmd" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		bad "$name" "\"$cmd\" exited $rc, expected $want" "$out"
		return
	fi
	if [ $# -ge 5 ]; then
		shown=$(sh -c "$4" 2>&1)
		if ! printf '%s\n' "$shown" | grep -Eq -- "$5"; then
			bad "$name" "\"$4\" does not match /$5/" "$shown"
			return
		fi
	fi
	ok "$name"
}

[ "$(id -u)" -eq 0 ] || { echo "run as root (in the test VM)"; exit 2; }
insmod "$KO" || { echo "cannot load $KO"; exit 2; }
ip link add "$DEV" type dummy && ip link set "$DEV" up || exit 2

case_run "add root qdisc with defaults" 0 \
	"tc qdisc add dev $DEV root handle 1: dwcs" \
	"tc qdisc show dev $DEV" "qdisc dwcs 1: root"
case_run "show statistics" 0 \
	"tc -s qdisc show dev $DEV" \
	"tc -s qdisc show dev $DEV" "Sent [0-9]+ bytes [0-9]+ pkt \\(dropped [0-9]+, overlimits 0 requeues 0\\)"
case_run "unclassified traffic goes to best effort" 0 \
	"ip addr add 192.0.2.1/24 dev $DEV && ping -c 3 -i 0.2 -W 1 -I $DEV 192.0.2.2 >/dev/null 2>&1; true" \
	"tc -s qdisc show dev $DEV" "Sent [1-9][0-9]* bytes [1-9][0-9]* pkt"

QSOCKCTL=${QSOCKCTL:-${QSOCK_REPO:-.}/target/release/qsockctl}
if [ -x "$QSOCKCTL" ]; then
	case_run "qsockctl leaves a dwcs someone installed alone" 1 \
		"$QSOCKCTL init --dev $DEV --scheduler dwcs --rate 10mbit" \
		"$QSOCKCTL init --dev $DEV --scheduler dwcs --rate 10mbit; true" \
		"dwcs 1:.*(qsockctl reset|tc qdisc del)"
	case_run "delete the hand-made qdisc" 0 "tc qdisc del dev $DEV root"
	case_run "qsockctl installs dwcs with options" 0 \
		"$QSOCKCTL init --dev $DEV --scheduler dwcs --rate 10mbit --limit 500 --resolution 2ms" \
		"$QSOCKCTL show --dev $DEV" "scheduler dwcs, root qdisc dwcs 7173:"
	case_run "the second init is idempotent" 0 \
		"$QSOCKCTL init --dev $DEV --scheduler dwcs --rate 10mbit" \
		"$QSOCKCTL init --dev $DEV --scheduler dwcs --rate 10mbit" "already installed"
	case_run "a new rate is a change" 0 \
		"$QSOCKCTL init --dev $DEV --scheduler dwcs --rate 20mbit" \
		"$QSOCKCTL show --dev $DEV --json" "\"bits_per_second\": 20000000"
	case_run "show as JSON" 0 "$QSOCKCTL show --dev $DEV --json" \
		"$QSOCKCTL show --dev $DEV --json" "\"scheduler\": \"dwcs\""
	case_run "qsockctl reset leaves the kernel default" 0 \
		"$QSOCKCTL reset --dev $DEV" \
		"tc qdisc show dev $DEV" "^qdisc noqueue|^qdisc (pfifo_fast|fq_codel|noop)"
	case_run "add it back for the rest" 0 \
		"tc qdisc add dev $DEV root handle 1: dwcs" \
		"tc qdisc show dev $DEV" "qdisc dwcs 1: root"
else
	skip "qdisc options through qsockctl" "no $QSOCKCTL: build qsockctl first"
fi

VMTOOL=${VMTOOL:-${QSOCK_REPO:-.}/target/release/dwcs-vmtool}
if [ -x "$VMTOOL" ]; then
	# Each kind of bad qdisc or class option, refused with its errno and
	# extack text, and nothing created (dwcs-vmtool badopts lists them).
	case_run "bad options are refused with their extack text" 0 \
		"$VMTOOL badopts --dev $DEV --major 1"
else
	bad "bad options are refused with their extack text" "no $VMTOOL: build the workspace first"
fi

case_run "delete root qdisc" 0 \
	"tc qdisc del dev $DEV root" \
	"tc qdisc show dev $DEV" "^qdisc noqueue|^qdisc (pfifo_fast|fq_codel|noop)"
case_run "module unloads" 0 "rmmod sch_dwcs"

ip link del "$DEV"
echo "$PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" -eq 0 ]
