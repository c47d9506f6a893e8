#!/usr/bin/env bash
# Kernel tests in VMs: boots each of Debian's installed kernels under QEMU with
# virtme-ng, one VM per kernel, and runs a guest script in it as root.
#
#   tests/vm/run.sh [-k VERSION]... [-s SCRIPT] [-t SECONDS] [-- GUEST ARGS...]
#
#   -k VERSION  boot only this kernel (repeatable; default: every kernel that
#               a linux-image package installed as /boot/vmlinuz-VERSION with
#               its /lib/modules/VERSION)
#   -s SCRIPT   the guest script, run as `bash SCRIPT VERSION GUEST ARGS...`
#               from the repo's root (default: tests/vm/guest.sh)
#   -t SECONDS  bound on each boot, guest script included (default: 600)
#
# Environment: QSOCK_VM_KVM=auto|1|0 (default auto: probe whether KVM works,
# use it if so), QSOCK_VM_CPUS (2), QSOCK_VM_MEMORY (1G), QSOCK_VM_KERNELS
# (space-separated versions, like -k), QSOCK_VM_TIMEOUT (like -t),
# QSOCK_KMOD_DIR (passed to the guest: another module tree than kmod-dwcs/),
# QSOCK_EVAL_ARGS (passed to the guest: eval/vm-eval.sh's extra options),
# BENCH_* (passed to the guest: kmod-dwcs/test/bench.sh's settings),
# QSOCK_VM_OUTROOT (an absolute path for the per-kernel output directories,
# default target/vm: a second run keeps the first's logs when it has another).
#
# The guest sees this machine's whole filesystem read-only (with throwaway
# overlays on /etc, /tmp, /var...), except target/vm/VERSION/ (see QSOCK_VM_OUTROOT), which it
# may write: QSOCK_VM_OUT names it inside the guest. Each guest's output is shown
# as it runs, prefixed with its kernel version, and kept in
# target/vm/VERSION/guest.log; the kernel's console and the guest's stderr in
# target/vm/VERSION/console.log, whose end is shown when a kernel fails. Exits non-zero if any kernel fails to boot,
# times out, or its script exits non-zero, or if there is nothing to boot.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
script=tests/vm/guest.sh
timeout_s=${QSOCK_VM_TIMEOUT:-600}
cpus=${QSOCK_VM_CPUS:-2}
memory=${QSOCK_VM_MEMORY:-1G}
kvm_mode=${QSOCK_VM_KVM:-auto}
read -r -a kernels <<<"${QSOCK_VM_KERNELS:-}"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "k:s:t:h" opt; do
  case $opt in
    k) kernels+=("$OPTARG") ;;
    s) script=$OPTARG ;;
    t) timeout_s=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
guest_args=("$@")

say() { echo "vm: $*" >&2; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
die() { say "FAIL: $*"; exit 1; }

[[ $timeout_s =~ ^[0-9]+$ ]] || die "timeout must be whole seconds, not '$timeout_s'"
[ -f "$repo/$script" ] || [ -f "$script" ] || die "guest script $script not found"
case $script in /*) ;; *) [ -f "$repo/$script" ] || script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script") ;; esac

# --- tools -------------------------------------------------------------------
command -v qemu-system-x86_64 >/dev/null ||
  die "qemu-system-x86_64 missing: run 'make deps' (apt package qemu-system-x86)"
vng=$(bash "$repo/deps/install-vm.sh" | tail -n 1) && [ -x "$vng" ] ||
  die "vng (virtme-ng) missing and deps/install-vm.sh could not install it"
# vng runs virtme-run from PATH: both live in the venv's bin/.
PATH="$(dirname "$vng"):$PATH"
export PATH

# --- kernels -----------------------------------------------------------------
# A kernel is bootable if a linux-image package that dpkg says is installed
# owns /boot/vmlinuz-VERSION and its modules are in /lib/modules/VERSION (the
# guest's virtio, 9p and veth drivers are modules there).
installed_kernel() {
  local ver=$1 image=/boot/vmlinuz-$1 pkg
  [ -r "$image" ] || { say "no $image"; return 1; }
  [ -d "/lib/modules/$ver/kernel" ] || { say "skipping $ver: no /lib/modules/$ver"; return 1; }
  if command -v dpkg-query >/dev/null; then
    pkg=$(dpkg-query -S "$image" 2>/dev/null | cut -d: -f1)
    case $pkg in
      linux-image-*) ;;
      *) say "skipping $ver: $image belongs to no linux-image package"; return 1 ;;
    esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      { say "skipping $ver: $pkg is not fully installed"; return 1; }
  fi
}

if [ ${#kernels[@]} -eq 0 ]; then
  for image in /boot/vmlinuz-*; do
    [ -e "$image" ] || continue
    ver=${image#/boot/vmlinuz-}
    installed_kernel "$ver" && kernels+=("$ver")
  done
  [ ${#kernels[@]} -gt 0 ] ||
    die "no kernel found: no installed linux-image package has a /boot/vmlinuz-* (run 'make deps': linux-image-amd64, linux-image-6.12-amd64)"
  mapfile -t kernels < <(printf '%s\n' "${kernels[@]}" | sort -V)
else
  for ver in "${kernels[@]}"; do
    installed_kernel "$ver" || die "kernel $ver was asked for but is not installed"
  done
fi

# --- KVM -----------------------------------------------------------------------
# /dev/kvm being there is not enough: in some nested setups QEMU aborts with
# "failed to set MSR", in others the vCPU never gets past the real-mode setup.
# The probe boots the first kernel with KVM, without a root filesystem, and
# wants to see it panic for lack of one: a working KVM gets there in about a
# second. Anything else in the time allowed means: no KVM.
kvm_probe() {
  local log=$1 err=$2 image=/boot/vmlinuz-$3 rc
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "/dev/kvm missing or not writable"; return 1; }
  timeout -k 2 "${QSOCK_VM_KVM_PROBE_TIMEOUT:-10}" qemu-system-x86_64 \
    -machine accel=kvm -cpu host -smp 1 -m 256 -nodefaults -display none \
    -no-reboot -serial "file:$log" -kernel "$image" \
    -append "console=ttyS0 panic=-1 loglevel=1" </dev/null >"$err" 2>&1
  rc=$?
  if grep -q "Kernel panic" "$log" 2>/dev/null; then return 0; fi
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "a KVM guest made no progress in ${QSOCK_VM_KVM_PROBE_TIMEOUT:-10} s"
  else
    echo "qemu exited $rc: $(grep -m1 -v '^$' "$err" | cut -c1-160)"
  fi
  return 1
}

outroot=${QSOCK_VM_OUTROOT:-$repo/target/vm}
mkdir -p "$outroot"
case $kvm_mode in
  1 | yes | on) use_kvm=1; kvm_why="QSOCK_VM_KVM=$kvm_mode" ;;
  0 | no | off) use_kvm=0; kvm_why="QSOCK_VM_KVM=$kvm_mode" ;;
  auto)
    probe_start=$(now_ms)
    if why=$(kvm_probe "$outroot/kvm-probe.log" "$outroot/kvm-probe.err" "${kernels[0]}"); then
      use_kvm=1; kvm_why="probe booted a kernel with KVM"
    else
      use_kvm=0; kvm_why="KVM unusable: $why"
    fi
    kvm_why="$kvm_why ($(since "$probe_start") s)"
    ;;
  *) die "QSOCK_VM_KVM must be auto, 1 or 0, not '$kvm_mode'" ;;
esac
if [ "$use_kvm" = 1 ]; then say "accel: KVM ($kvm_why)"; else say "accel: TCG emulation, slow ($kvm_why)"; fi

# --- boots -------------------------------------------------------------------
# One boot. The guest's stdout goes to the terminal, prefixed, and to
# guest.log; virtme-ng's --verbose stderr (the kernel's console from the first
# line, the guest's stderr, QEMU's errors) to console.log, shown when the boot
# fails. Sets rc (the guest script's status; 255 when it never returned one,
# e.g. a kernel panic; timeout's 124/137) and secs.
boot() {
  local ver=$1 log=$2 console=$3 accel=() cmd start
  [ "$use_kvm" = 1 ] || accel=(--disable-kvm)
  local env=("QSOCK_VM_OUT=$outroot/$ver")
  [ -z "${QSOCK_KMOD_DIR:-}" ] || env+=("QSOCK_KMOD_DIR=$QSOCK_KMOD_DIR")
  [ -z "${QSOCK_EVAL_ARGS:-}" ] || env+=("QSOCK_EVAL_ARGS=$QSOCK_EVAL_ARGS")
  # the benchmark's knobs (kmod-dwcs/test/bench.sh) reach the guest too
  local knob
  for knob in $(compgen -v BENCH_); do env+=("$knob=${!knob}"); done
  printf -v cmd '%q ' env "${env[@]}" bash "$script" "$ver" "${guest_args[@]}"
  start=$(now_ms)
  (cd "$repo" && exec timeout -k 20 "$timeout_s" "$vng" --verbose --run "/boot/vmlinuz-$ver" \
    --user root --cpus "$cpus" --memory "$memory" "${accel[@]}" --rwdir "$outroot/$ver" \
    --exec "$cmd" </dev/null 2>"$console") | tee "$log" | sed -u "s/^/[$ver] /"
  rc=${PIPESTATUS[0]}
  secs=$(since "$start")
}

# Did the guest die of TCG's text-patching race: an int3 Oops whose RIP is in
# the kernel proper, not in sch_dwcs?
emulator_patching_trap() {
  [ "$use_kvm" = 0 ] && grep -q "Oops: int3" "$1" &&
    ! grep -A8 "Oops: int3" "$1" | grep -m1 "RIP: " | grep -q "\[sch_dwcs\]"
}

declare -A result seconds counts retried
failures=0
# A kernel whose guest checks fail is booted once more (QSOCK_VM_ATTEMPTS,
# default 2): the traffic checks measure timing, and an emulated guest can
# stall for tens of milliseconds. Under emulation (TCG) a guest can also
# die of an int3 Oops in a kernel function that is not ours, when the kernel
# live-patches a static key while another vCPU runs that code (guest.sh holds
# the receive-timestamp key on for this, yet it has been seen in
# netif_rx_internal): such a panic is retried too, saying so. Every attempt
# is reported; other panics, timeouts and boot failures are never retried.
attempts=${QSOCK_VM_ATTEMPTS:-2}
for ver in "${kernels[@]}"; do
 attempt=1
 while :; do
  out=$outroot/$ver
  if [ "$attempt" -gt 1 ]; then
    rm -rf "$out.attempt$((attempt - 1))" && mv "$out" "$out.attempt$((attempt - 1))"
  fi
  rm -rf "$out" && mkdir -p "$out"
  log=$out/guest.log
  console=$out/console.log
  say "booting $ver ($([ "$use_kvm" = 1 ] && echo KVM || echo TCG), $cpus vCPU, $memory, timeout ${timeout_s} s): bash $script $ver ${guest_args[*]}"
  boot "$ver" "$log" "$console"
  # A KVM that the probe liked may still fail on the real machine model.
  if [ "$use_kvm" = 1 ] && [ "$kvm_mode" = auto ] && [ "$rc" -ne 0 ] &&
    grep -qE "failed to set MSR|kvm_.*[Aa]ssertion|KVM: entry failed" "$console"; then
    say "KVM failed on $ver ($(grep -m1 -E 'failed to set MSR|ssertion|entry failed' "$console" | cut -c1-120)); using TCG from now on"
    use_kvm=0
    boot "$ver" "$log" "$console"
  fi
  seconds[$ver]=$secs
  counts[$ver]=$(grep -oE '^qsock-vm: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?' "$log" | tail -n1 | sed 's/^qsock-vm: //')
  guest_kver=$(sed -n 's/^qsock-vm: kernel //p' "$log" | head -n1)
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    result[$ver]="FAIL: timed out after ${timeout_s} s"
  elif grep -q "Kernel panic" "$console"; then
    result[$ver]="FAIL: kernel panic: $(grep -m1 "Kernel panic" "$console" | sed 's/^\[[^]]*\] //' | cut -c1-100)"
  elif [ "$rc" -ne 0 ]; then
    if [ -n "${counts[$ver]}" ]; then
      result[$ver]="FAIL: guest checks failed (exit $rc)"
    elif grep -q "^qsock-vm: kernel " "$log"; then
      result[$ver]="FAIL: guest script exited $rc"
    else
      result[$ver]="FAIL: boot or guest script failed (exit $rc) before the guest said anything; see $log"
    fi
  elif [ -n "$guest_kver" ] && [ "$guest_kver" != "$ver" ]; then
    result[$ver]="FAIL: booted $guest_kver, not $ver"
  else
    result[$ver]="ok"
  fi
  if [ "${result[$ver]}" != ok ] && [ "$attempt" -lt "$attempts" ] &&
    { [[ ${result[$ver]} == "FAIL: guest checks failed"* ]] || emulator_patching_trap "$console"; }; then
    retried[$ver]="attempt $attempt: ${counts[$ver]}"
    say "$ver: ${result[$ver]} (${counts[$ver]}); booting it once more, attempt $((attempt + 1)) of $attempts (logs of this one: $out.attempt$attempt)"
    attempt=$((attempt + 1))
    continue
  fi
  break
 done
  if [ "${result[$ver]}" != ok ]; then
    failures=$((failures + 1))
    say "$ver: ${result[$ver]}; the end of $console:"
    tail -n 25 "$console" | sed "s/^/[$ver console] /" >&2
  fi
done

echo
echo "== kernel tests in VMs ($([ "$use_kvm" = 1 ] && echo KVM || echo TCG); $kvm_why)"
for ver in "${kernels[@]}"; do
  printf '%-28s %-6s %7s s  %s\n' "$ver" "$([ "${result[$ver]}" = ok ] && echo PASS || echo FAIL)" \
    "${seconds[$ver]}" "${counts[$ver]:-no summary}$([ "${result[$ver]}" = ok ] || echo "  -- ${result[$ver]#FAIL: }")${retried[$ver]:+  (after a failed ${retried[$ver]})}"
done
echo "logs: $outroot/<version>/{guest,console}.log"
if [ $failures -gt 0 ]; then
  say "FAIL: $failures of ${#kernels[@]} kernel(s) failed"
  exit 1
fi
say "all ${#kernels[@]} kernel(s) passed"
