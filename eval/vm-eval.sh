#!/usr/bin/env bash
# The evaluation's dwcs runs, inside a virtme-ng guest as root (make eval-vm):
#
#   bash tests/vm/run.sh -k VERSION -s eval/vm-eval.sh [-- QSOCK-EVAL SUBCOMMANDS...]
#
# (run.sh calls it as `bash eval/vm-eval.sh VERSION SUBCOMMANDS...`)
# Loads kmod-dwcs/build/$(uname -r)/sch_dwcs.ko (tests/vm/build-modules.sh
# builds it), runs target/release/qsock-eval on the dwcs backend with tag
# `vm`, writing into $QSOCK_VM_OUT/eval (the one folder the guest may write,
# kept on the host under target/vm/VERSION/), and unloads the module.
# Subcommands: the arguments, else `table1 fig4 fig6 fig7` (table1 with
# fewer, smaller rounds, fig4 with qsocksink alone, on dwcs and on htb, and
# fig6 with qsocksink alone: the guest is slow). `path` runs qsocksink on
# dwcs and on htb, each with the receiver's TWCC feedback, on a bed scaled
# to 0.4 of the issue's; make eval-vm runs it in a kernel whose veth takes
# software transmit timestamps (the sink's departure times), which Debian
# 12's default kernel's does not.
# QSOCK_EVAL_ARGS adds options to every subcommand.
# The guest is emulated when KVM does not work (tests/vm/run.sh says which):
# then its timing figures are the emulator's, and EVALUATION.md says so.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
# shellcheck source=tests/vm/lib.sh
. "$repo/tests/vm/lib.sh"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
kver=$(uname -r)
expected=${1:-}
shift
vm_expect_kernel "$expected" || exit 1
ko=${QSOCK_KMOD_DIR:-$repo/kmod-dwcs}/build/$kver/sch_dwcs.ko
eval_bin=$repo/target/release/qsock-eval
out=${QSOCK_VM_OUT:?QSOCK_VM_OUT is not set: run this through tests/vm/run.sh -s eval/vm-eval.sh}/eval

echo "qsock-vm: kernel $kver"
[ -x "$eval_bin" ] || { echo "no $eval_bin: run cargo build --release -p qsock-eval first"; exit 1; }
[ -f "$ko" ] || { echo "no $ko: run bash tests/vm/build-modules.sh $kver first"; exit 1; }
insmod "$ko" || { echo "insmod $ko failed"; exit 1; }
trap 'rmmod sch_dwcs 2>/dev/null' EXIT
mkdir -p "$out"

subcommands=("$@")
[ ${#subcommands[@]} -gt 0 ] || subcommands=(table1 fig4 fig6 fig7)
status=0
for sub in "${subcommands[@]}"; do
  extra=(--schedulers dwcs)
  case $sub in
    table1) extra+=(--rounds 3 --scale 0.25) ;;
    # htb beside dwcs, as a control: both run in the same emulated guest,
    # so the jitter they share is the guest's, not the scheduler's.
    fig4 | fig5) extra=(--qsock-only --schedulers dwcs,htb) ;;
    fig6) extra+=(--qsock-only) ;;
    # The path bed has no --schedulers: its contenders name theirs. htb
    # runs beside dwcs in the same guest, as a control.
    # Scaled to 0.4 (router 600 kbit/s, video from 1000 kbit/s at 404x228):
    # at the issue's rates the emulated guest, not the schedulers, is late.
    path) extra=(--contenders qsocksink-dwcs-twcc,qsocksink-htb-twcc --scale 0.4) ;;
  esac
  # shellcheck disable=SC2086 # QSOCK_EVAL_ARGS is a list of options
  "$eval_bin" --out "$out" --tag vm "$sub" "${extra[@]}" ${QSOCK_EVAL_ARGS:-} || status=1
done
echo "qsock-vm: evaluation results in $out"
exit $status
