#!/usr/bin/env bash
# Builds kmod-dwcs's sch_dwcs.ko for every installed kernel that has headers,
# into kmod-dwcs/build/VERSION/sch_dwcs.ko, where tests/vm/guest.sh looks.
#
#   tests/vm/build-modules.sh [VERSION...]
#
# Kbuild writes its objects next to the sources, so building in place for one
# kernel after another would mix them: each kernel gets its own copy of the
# sources under target/kmod/VERSION/, built with the module's own interface,
# `make -C <copy> KVER=VERSION`, and only the .ko is copied back.
#
# Kernels: the arguments, else every /boot/vmlinuz-VERSION whose
# /lib/modules/VERSION/build exists (linux-headers-amd64,
# linux-headers-6.12-amd64). Exits 0 with a message when there is no
# kmod-dwcs/ in this tree yet; non-zero when a build fails or no kernel has
# headers. QSOCK_KMOD_DIR names another module tree (same layout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
kmod=${QSOCK_KMOD_DIR:-$repo/kmod-dwcs}

if [ ! -f "$kmod/Makefile" ]; then
  echo "build-modules: no ${kmod#"$repo"/}/Makefile in this tree: nothing to build, the VM tests will skip sch_dwcs.ko"
  exit 0
fi

kernels=("$@")
if [ ${#kernels[@]} -eq 0 ]; then
  for image in /boot/vmlinuz-*; do
    [ -e "$image" ] || continue
    ver=${image#/boot/vmlinuz-}
    if [ -e "/lib/modules/$ver/build/Makefile" ]; then
      kernels+=("$ver")
    else
      echo "build-modules: skipping $ver: no headers in /lib/modules/$ver/build (install linux-headers-$ver)" >&2
    fi
  done
fi
if [ ${#kernels[@]} -eq 0 ]; then
  echo "build-modules: no installed kernel with headers (make deps: linux-image-amd64 linux-headers-amd64 ...)" >&2
  exit 1
fi

# Makes $2 hold the sources of $1 (not build/ nor Kbuild's outputs): files
# whose contents changed are copied (so make sees them as new, even if the
# tree's own copy is older, after a checkout or with another QSOCK_KMOD_DIR),
# files gone from $1 are deleted, the rest keep their timestamps, so that a
# rebuild is incremental.
is_output() {
  case ${1##*/} in
    *.o | *.ko | *.mod | *.mod.c | .*.cmd | *.cmd | Module.symvers | modules.order | *.dwo | .*.d) return 0 ;;
  esac
  return 1
}
sync_sources() {
  local from=$1 to=$2 f
  while IFS= read -r -d '' f; do
    is_output "$f" && continue
    if ! cmp -s "$from/$f" "$to/$f"; then
      mkdir -p "$(dirname "$to/$f")"
      cp "$from/$f" "$to/$f"
    fi
  done < <(cd "$from" && find . -path ./build -prune -o -type f -print0)
  while IFS= read -r -d '' f; do
    [ "$f" = ./.qsock-kmod-source ] || is_output "$f" || [ -e "$from/$f" ] || rm -f "$to/$f"
  done < <(cd "$to" && find . -type f -print0)
}

jobs=$(nproc 2>/dev/null || echo 1)
status=0
for ver in "${kernels[@]}"; do
  src=$repo/target/kmod/$ver
  dest=$kmod/build/$ver
  # Kbuild's outputs in the copy belong to the tree they were built from.
  if [ "$(cat "$src/.qsock-kmod-source" 2>/dev/null)" != "$kmod" ]; then
    rm -rf "$src"
  fi
  mkdir -p "$src" "$dest"
  echo "$kmod" >"$src/.qsock-kmod-source"
  sync_sources "$kmod" "$src"
  echo "build-modules: $ver"
  # W=1: the module must build without a single compiler warning.
  if output=$(make -s -C "$src" KVER="$ver" W=1 -j"$jobs" 2>&1) && [ -f "$src/sch_dwcs.ko" ]; then
    [ -z "$output" ] || printf '%s\n' "$output"
    if grep -q 'warning:' <<<"$output"; then
      echo "build-modules: $ver: the build has compiler warnings (W=1)" >&2
      rm -f "$dest/sch_dwcs.ko"
      status=1
      continue
    fi
    cp "$src/sch_dwcs.ko" "$dest/sch_dwcs.ko"
    echo "build-modules: $ver: ${dest#"$repo"/}/sch_dwcs.ko (W=1, no warnings)"
  else
    printf '%s\n' "$output" >&2
    echo "build-modules: $ver: build FAILED" >&2
    rm -f "$dest/sch_dwcs.ko"
    status=1
  fi
done
exit $status
