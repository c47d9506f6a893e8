#!/usr/bin/env bash
# `make demo-vm`: the demo with sch_dwcs, in a VM running one of Debian's
# kernels (tests/vm/run.sh: virtme-ng, KVM when it works, else emulation).
#
#   demo/run-vm.sh [qsock-demo ARGS...]
#
# Boots the newest installed kernel that has a built sch_dwcs.ko
# (QSOCK_VM_KERNELS picks others), runs demo/vm-demo.sh in it, and prints
# where the plot the guest wrote is. Run tests/vm/build-modules.sh and
# make build first (make demo-vm does).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
read -r -a kernels <<<"${QSOCK_VM_KERNELS:-}"
if [ ${#kernels[@]} -eq 0 ]; then
  newest=$(ls "$repo"/kmod-dwcs/build/*/sch_dwcs.ko 2>/dev/null | awk -F/ '{print $(NF-1)}' | sort -V | tail -n 1)
  [ -n "$newest" ] || { echo "demo-vm: no kmod-dwcs/build/*/sch_dwcs.ko: run bash tests/vm/build-modules.sh first" >&2; exit 1; }
  kernels=("$newest")
fi
args=()
for kernel in "${kernels[@]}"; do args+=(-k "$kernel"); done
# Only this run's plots are shown.
for kernel in "${kernels[@]}"; do rm -f "$repo/target/vm/$kernel"/qsock-demo-*.{png,csv}; done
# A demo is shown once, not retried.
QSOCK_VM_ATTEMPTS=1 bash "$repo/tests/vm/run.sh" "${args[@]}" -s demo/vm-demo.sh -- "$@"
rc=$?
for kernel in "${kernels[@]}"; do
  for png in "$repo/target/vm/$kernel"/qsock-demo-*.png; do
    [ -f "$png" ] && echo "plot from the VM ($kernel): $png"
  done
done
exit $rc
