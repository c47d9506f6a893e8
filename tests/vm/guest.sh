#!/usr/bin/env bash
# Runs inside a virtme-ng guest as root (tests/vm/run.sh boots it):
#
#   bash tests/vm/guest.sh EXPECTED_KERNEL_VERSION
#
# Checks that the kernel is the one asked for, that network namespaces, veth
# and the qdiscs qsock relies on work, then, if kmod-dwcs/build/$(uname -r)/
# sch_dwcs.ko exists (tests/vm/build-modules.sh builds it), loads it, sees it
# in lsmod, unloads it, runs every kmod-dwcs/test/guest_*.sh, and reads the
# kernel log for BUG/WARNING/Oops/leak reports. Ends with "qsock-vm: N passed, N failed, N
# skipped" and exits 1 if anything failed.
#
# Each guest_*.sh is run as `bash FILE KO` from the repo's root, with the
# module NOT loaded: it loads it itself (insmod "$1") and may unload it; if it
# does not, this script does, and checks that it can. Environment:
#   QSOCK_KO     the module's path (also $1)
#   QSOCK_KVER   the running kernel version
#   QSOCK_REPO   the repo's root (read-only in the guest)
#   QSOCK_VM_OUT a directory it may write, kept on the host (may be empty)
# Exit 0 means passed, 77 skipped, anything else failed.
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
expected=${1:-}
kver=$(uname -r)
out=${QSOCK_VM_OUT:-}
kmod_dir=${QSOCK_KMOD_DIR:-$repo/kmod-dwcs}
ko=$kmod_dir/build/$kver/sch_dwcs.ko
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
# shellcheck source=tests/vm/lib.sh
. "$repo/tests/vm/lib.sh"

passed=0 failed=0 skipped=0
# check NAME CMD...: runs CMD, counts it, prints its output only on failure.
check() {
  local name=$1 output rc
  shift
  output=$("$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $name"
  elif [ $rc -eq 77 ]; then
    skipped=$((skipped + 1))
    echo "skip $name${output:+: $(tail -n1 <<<"$output")}"
  else
    failed=$((failed + 1))
    echo "FAIL $name (exit $rc)"
    [ -z "$output" ] || sed 's/^/     | /' <<<"$output"
  fi
  return $rc
}
skip() {
  skipped=$((skipped + 1))
  echo "skip $1: $2"
}

echo "qsock-vm: kernel $kver"
echo "qsock-vm: $(nproc) CPU, $(awk '/MemTotal/ {print int($2 / 1024) " MiB"}' /proc/meminfo)"
# Everything the kernel logs from here on is this script's business.
echo "qsock-vm: guest checks start" >/dev/kmsg
dmesg_start=$(dmesg | wc -l)

# Hold receive timestamps on for the whole boot, while nothing flows yet
# (tests/vm/lib.sh says why).
vm_hold_rx_timestamps

# --- the machine ---------------------------------------------------------------
check "kernel is ${expected:-$kver}" vm_expect_kernel "$expected"
check "running as root" test "$(id -u)" -eq 0
check "modules for $kver are reachable" test -f "/lib/modules/$kver/modules.dep"

# --- network namespaces and veth (the test bed's building blocks) ---------------
ns_a=qvm-a ns_b=qvm-b
cleanup_netns() { vm_netns_del $ns_a $ns_b; }
netns_pair() {
  cleanup_netns
  vm_veth_pair $ns_a $ns_b qvm0 qvm1 10.99.0.1 10.99.0.2
}
ping_peer() { ip netns exec $ns_a ping -c 3 -i 0.2 -W 2 10.99.0.2; }
udp_peer() {
  # A datagram across the pair with bash's /dev/udp, as SO_PRIORITY-less
  # traffic that every qdisc below must pass.
  ip netns exec $ns_a bash -c 'for i in 1 2 3; do echo x >/dev/udp/10.99.0.2/9; done'
}
qdisc_htb() {
  ip netns exec $ns_a tc qdisc replace dev qvm0 root handle 1: htb default 1 &&
    ip netns exec $ns_a tc class add dev qvm0 parent 1: classid 1:1 htb rate 100mbit &&
    ping_peer >/dev/null && ip netns exec $ns_a tc -s qdisc show dev qvm0 | grep -q htb &&
    ip netns exec $ns_a tc qdisc del dev qvm0 root
}
qdisc_etf() {
  # SCM_TXTIME's in-kernel consumer, under mq-less veth: etf needs a parent.
  ip netns exec $ns_a tc qdisc replace dev qvm0 root handle 1: prio &&
    ip netns exec $ns_a tc qdisc add dev qvm0 parent 1:1 etf clockid CLOCK_TAI delta 500000 &&
    ip netns exec $ns_a tc qdisc del dev qvm0 root
}
if check "netns + veth pair" netns_pair; then
  check "ping across the veth pair" ping_peer
  check "udp across the veth pair" udp_peer
  check "htb qdisc on the veth" qdisc_htb
  check "etf qdisc on the veth" qdisc_etf
else
  skip "traffic across the veth pair" "no namespaces"
fi

# --- kmod-dwcs ---------------------------------------------------------------------
loaded() { grep -q '^sch_dwcs ' /proc/modules; }
unload() {
  loaded || return 0
  vm_unload_dwcs 10 0.5
}
if [ ! -d "$kmod_dir" ]; then
  skip "sch_dwcs.ko" "no $kmod_dir in this tree"
elif [ ! -f "$ko" ]; then
  skip "sch_dwcs.ko" "$ko not built (tests/vm/build-modules.sh)"
else
  vermagic() { local v; v=$(modinfo -F vermagic "$ko") && [ "${v%% *}" = "$kver" ] || { echo "vermagic '$v'"; return 1; }; }
  check "sch_dwcs.ko built for $kver" vermagic
  if check "insmod sch_dwcs.ko" insmod "$ko"; then
    check "lsmod lists sch_dwcs" bash -c 'lsmod | grep -q "^sch_dwcs "'
    check "rmmod sch_dwcs" unload
    found=0
    for t in "$kmod_dir"/test/guest_*.sh; do
      [ -f "$t" ] || continue
      found=1
      unload >/dev/null 2>&1
      check "$(basename "$t")" env QSOCK_KVER="$kver" QSOCK_REPO="$repo" QSOCK_VM_OUT="$out" \
        QSOCK_KO="$ko" bash "$t" "$ko"
      cleanup_netns
      loaded && check "rmmod sch_dwcs after $(basename "$t")" unload
    done
    [ $found = 1 ] || skip "kmod-dwcs/test/guest_*.sh" "none yet"
  fi
fi
cleanup_netns

# --- the kernel's log ------------------------------------------------------------
kernel_log_clean() {
  local bad
  bad=$(vm_kernel_reports "$dmesg_start" "$vm_kernel_report_pattern|Tainted: .*[DW]")
  [ -z "$bad" ] || { echo "$bad"; return 1; }
}
if [ -w /sys/kernel/debug/kmemleak ] || { mount -t debugfs none /sys/kernel/debug 2>/dev/null && [ -w /sys/kernel/debug/kmemleak ]; }; then
  echo scan >/sys/kernel/debug/kmemleak
  check "kmemleak finds nothing" bash -c '! grep -q . /sys/kernel/debug/kmemleak'
fi
kill "$vm_timestamp_holder" 2>/dev/null
check "no BUG/WARNING/Oops/leak in dmesg" kernel_log_clean
if [ -n "$out" ] && [ -d "$out" ]; then
  dmesg >"$out/dmesg.txt" 2>/dev/null || true
fi

echo "qsock-vm: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
