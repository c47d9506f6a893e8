#!/usr/bin/env bash
# `make install` and `make uninstall` into scratch DESTDIRs (make test-install):
#
#   1. PREFIX=/usr: every expected file and no other, the binaries and shared
#      objects stripped of debug info, the plugin in GStreamer's own plugin
#      directory and loadable, qsock.pc's flags building and linking
#      tests/c/paper_api.c against the installed libqsock.so (which then
#      runs, unprivileged, on the user scheduler), the unit's ExecStart and
#      `systemd-analyze verify` on the installed unit and binary, the DKMS
#      source building sch_dwcs.ko for an installed kernel;
#   2. an edited /etc/qsock/qsockd.toml survives install and uninstall;
#   3. make uninstall leaves no file behind;
#   4. the default PREFIX (/usr/local): its own plugin directory and ExecStart,
#      and again nothing left after uninstall.
#
# Needs the release build (make build) and root (the unit check mounts an
# overlay in a mount namespace of its own). Exits non-zero if any check fails.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/qsock-install.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# paper_api runs as nobody below and must reach the installed library.
chmod 0755 "$work"

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
# check NAME CMD...: runs CMD, prints its output only when it fails.
check() {
  local name=$1 output
  shift
  if output=$("$@" 2>&1); then
    ok "$name"
  else
    fail "$name"
    [ -z "$output" ] || sed 's/^/     | /' <<<"$output"
  fi
}

multiarch=$(${CC:-cc} -print-multiarch)
system_plugindir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
dkms_name=$(sed -n 's/^PACKAGE_NAME="\(.*\)"/\1/p' kmod-dwcs/dkms.conf)
dkms_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' kmod-dwcs/dkms.conf)
dkms_dir=usr/src/$dkms_name-$dkms_version
[ -n "$multiarch" ] && [ -n "$system_plugindir" ] && [ -n "$version" ] && [ -n "$dkms_name" ] || {
  echo "run.sh: cannot read the multiarch triplet, GStreamer's pluginsdir, the workspace version or dkms.conf's name" >&2
  exit 1
}

# make_in DEST TARGET [VAR=VALUE...]: make TARGET into DEST, its output kept
# in $work/make.log and shown when it fails.
make_in() {
  local dest=$1 target=$2
  shift 2
  make --no-print-directory -C "$repo" "$target" DESTDIR="$dest" "$@" >"$work/make.log" 2>&1 || {
    sed 's/^/     | /' "$work/make.log"
    return 1
  }
}

# installed_files DEST: every file and symlink under DEST, relative, sorted.
installed_files() { (cd "$1" && find . \( -type f -o -type l \) -printf '%P\n' | sort); }

# same_set EXPECTED_FILE ACTUAL_FILE: the two sorted lists match, else says
# what is missing and what is extra.
same_set() {
  local missing extra
  missing=$(comm -23 "$1" "$2")
  extra=$(comm -13 "$1" "$2")
  [ -z "$missing" ] && [ -z "$extra" ] && return 0
  [ -z "$missing" ] || echo "missing: $(tr '\n' ' ' <<<"$missing")"
  [ -z "$extra" ] || echo "not expected: $(tr '\n' ' ' <<<"$extra")"
  return 1
}

# nothing_left DEST: no file nor symlink under DEST (the directories make
# install created may stay, empty; they are listed).
nothing_left() {
  local left
  left=$(installed_files "$1")
  [ -z "$left" ] || { echo "left behind: $(tr '\n' ' ' <<<"$left")"; return 1; }
  echo "empty directories left: $(cd "$1" && find . -mindepth 1 -type d -printf '%P ' | head -c 600)"
}

# --- 1. PREFIX=/usr ------------------------------------------------------------
dest=$work/usr-root
libdir=usr/lib/$multiarch
plugindir=${system_plugindir#/}
elves=(usr/bin/qsockctl usr/bin/qsockd "$libdir/libqsock.so" "$plugindir/libgstqsocksink.so")
printf '%s\n' "${elves[@]}" usr/include/qsock.h "$libdir/pkgconfig/qsock.pc" \
  usr/lib/systemd/system/qsockd.service usr/lib/sysusers.d/qsockd.conf \
  etc/qsock/qsockd.toml etc/qsock/qsockd.example.toml \
  "$dkms_dir"/{Kbuild,Makefile,dkms.conf,sch_dwcs.c,dwcs_core.c,dwcs_core.h,include/uapi/linux/sch_dwcs.h} |
  sort >"$work/expected-usr"

if ! check "make install DESTDIR=... PREFIX=/usr" make_in "$dest" install PREFIX=/usr; then
  echo "qsock-install: $passed passed, $failed failed"
  exit 1
fi
installed_files "$dest" >"$work/installed-usr"
check "installs exactly the expected files" same_set "$work/expected-usr" "$work/installed-usr"
echo "     installed (PREFIX=/usr):"
sed 's|^|       /|' "$work/installed-usr"

no_debug_info() {
  local f=$1
  [ -f "$dest/$f" ] || { echo "$f not installed"; return 1; }
  local sections
  sections=$(readelf -S -W "$dest/$f") || { echo "readelf cannot read $f"; return 1; }
  if grep -q '\.debug_info' <<<"$sections"; then
    echo "$f still has a .debug_info section (make install strips with strip --strip-debug)"
    return 1
  fi
}
for f in "${elves[@]}"; do
  built=target/release/$(basename "$f")
  check "/$f has no debug info ($(du -h "$built" | cut -f1) built, $(du -h "$dest/$f" 2>/dev/null | cut -f1) installed)" \
    no_debug_info "$f"
done

plugin_loads() {
  local inspected
  inspected=$(GST_REGISTRY=$work/registry.bin gst-inspect-1.0 "$dest/$plugindir/libgstqsocksink.so" 2>&1)
  grep -q 'qsocksink: QSocket sink' <<<"$inspected" ||
    { echo "gst-inspect-1.0 does not list qsocksink in the installed plugin:"; echo "$inspected"; return 1; }
}
check "the plugin is in GStreamer's own directory ($system_plugindir) and loads" plugin_loads

pc_env=(env PKG_CONFIG_PATH="$dest/$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
  PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1)
pc_flags() {
  local flags words want="-I$dest/usr/include -L$dest/$libdir -lqsock" modversion
  flags=$("${pc_env[@]}" pkg-config --cflags --libs qsock) || return 1
  read -r -a words <<<"$flags"
  flags=${words[*]}
  [ "$flags" = "$want" ] || { echo "pkg-config --cflags --libs qsock gives '$flags', expected '$want'"; return 1; }
  modversion=$("${pc_env[@]}" pkg-config --modversion qsock)
  [ "$modversion" = "$version" ] || { echo "qsock.pc's version is '$modversion', the workspace's $version"; return 1; }
}
check "qsock.pc: --cflags --libs and --modversion" pc_flags

paper_api=$work/paper_api
build_against_installed() {
  # shellcheck disable=SC2046 # pkg-config's flags are words
  ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 tests/c/paper_api.c -o "$paper_api" \
    $("${pc_env[@]}" pkg-config --cflags --libs qsock) || return 1
  grep -q 'NEEDED.*\[libqsock\.so\]' <<<"$(readelf -d "$paper_api")" ||
    { echo "paper_api does not link libqsock.so"; return 1; }
}
if check "tests/c/paper_api.c builds with pkg-config's flags against the installed qsock.h and libqsock.so" build_against_installed; then
  run_paper_api() {
    local as=()
    [ "$(id -u)" != 0 ] || as=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all)
    "${as[@]}" env LD_LIBRARY_PATH="$dest/$libdir" "$paper_api" lo user 127.0.0.1
  }
  check "paper_api runs unprivileged with the installed libqsock.so (user scheduler, lo)" run_paper_api
fi

exec_start() {
  local unit=$1 want=$2 line
  line=$(sed -n 's/^ExecStart=//p' "$unit")
  [ "$line" = "$want" ] || { echo "ExecStart=$line, expected $want"; return 1; }
}
check "qsockd.service runs /usr/bin/qsockd --config /etc/qsock/qsockd.toml" \
  exec_start "$dest/usr/lib/systemd/system/qsockd.service" "/usr/bin/qsockd --config /etc/qsock/qsockd.toml"

# systemd-analyze verify checks that ExecStart's binary exists at its path:
# in a mount namespace of its own, the installed /usr/bin is laid over the
# host's, so the unit is verified as installed, against the installed binary.
verify_unit() {
  [ "$(id -u)" = 0 ] || { echo "needs root (a mount namespace with an overlay on /usr/bin)"; return 1; }
  command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (apt package systemd)"; return 1; }
  local output
  output=$(unshare --mount --propagation private -- sh -c \
    'mount -t overlay qsock-verify -o "lowerdir=$1:/usr/bin" /usr/bin && exec systemd-analyze verify "$2"' \
    sh "$dest/usr/bin" "$dest/usr/lib/systemd/system/qsockd.service" 2>&1) || { echo "$output"; return 1; }
  [ -z "$output" ] || { echo "systemd-analyze verify is not clean:"; echo "$output"; return 1; }
}
check "systemd-analyze verify qsockd.service: clean" verify_unit

# The installed qsockd, from the installed config, as the unit runs it: a
# user of its own (nobody here) with CAP_NET_ADMIN alone, /run/qsock its own
# (a tmpfs, as RuntimeDirectory= gives it), on the config's device (a veth
# eth0), in a network and mount namespace that end with the check.
daemon_as_unit() {
  [ "$(id -u)" = 0 ] || { echo "needs root (namespaces, setpriv)"; return 1; }
  unshare --net --mount --propagation private -- bash -c '
    dest=$1
    ip link add eth0 type veth peer name eth0-peer && ip link set eth0-peer up && ip link set eth0 up && ip link set lo up || exit 1
    mount -t tmpfs -o mode=0755,uid=65534,gid=65534 qsock-run /run/qsock 2>/dev/null ||
      { mkdir -p /run/qsock && mount -t tmpfs -o mode=0755,uid=65534,gid=65534 qsock-run /run/qsock; } || exit 1
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_admin       --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin       "$dest/usr/bin/qsockd" --config "$dest/etc/qsock/qsockd.toml" 2>/run/qsock/log &
    daemon=$!
    for _ in $(seq 100); do
      [ -S /run/qsock/qsockd.sock ] && break
      kill -0 $daemon 2>/dev/null || break
      sleep 0.1
    done
    status=0
    if [ ! -S /run/qsock/qsockd.sock ]; then
      echo "qsockd made no /run/qsock/qsockd.sock in 10 s"; status=1
    elif ! tc qdisc show dev eth0 | grep -q "^qdisc htb 7173: root"; then
      echo "qsockd did not install htb on eth0: $(tc qdisc show dev eth0)"; status=1
    fi
    kill $daemon 2>/dev/null
    wait $daemon 2>/dev/null
    [ $status = 0 ] || { echo "qsockd said:"; cat /run/qsock/log; }
    exit $status
  ' bash "$dest"
}
check "the installed qsockd serves the installed config as the unit runs it (uid nobody, CAP_NET_ADMIN alone)" daemon_as_unit

same_sources() {
  local f
  for f in Kbuild Makefile dkms.conf sch_dwcs.c dwcs_core.c dwcs_core.h include/uapi/linux/sch_dwcs.h; do
    cmp "kmod-dwcs/$f" "$dest/$dkms_dir/$f" || return 1
  done
}
check "/$dkms_dir holds kmod-dwcs's sources as they are" same_sources

# What dkms build runs (dkms.conf's MAKE), on a copy of the installed source,
# for the newest kernel with headers.
kver=$(ls -d /lib/modules/*/build 2>/dev/null | sed -e 's|^/lib/modules/||' -e 's|/build$||' | sort -V | tail -n 1)
dkms_make() {
  cp -a "$dest/$dkms_dir" "$work/dkms-build"
  make -s -C "$work/dkms-build" KDIR="/lib/modules/$kver/build" modules &&
    grep -q "^$kver " <<<"$(modinfo -F vermagic "$work/dkms-build/sch_dwcs.ko")"
}
if [ -n "$kver" ]; then
  check "the installed DKMS source builds sch_dwcs.ko for $kver (dkms.conf's MAKE)" dkms_make
else
  fail "the installed DKMS source builds sch_dwcs.ko: no kernel headers in /lib/modules/*/build (make deps)"
fi

# --- 2. the admin's config -------------------------------------------------------
edited_config_kept() {
  local config=$dest/etc/qsock/qsockd.toml
  echo '# edited by the admin' >>"$config"
  cp "$config" "$work/edited.toml"
  make_in "$dest" install PREFIX=/usr || return 1
  cmp "$config" "$work/edited.toml" || { echo "make install overwrote the edited qsockd.toml"; return 1; }
  make_in "$dest" uninstall PREFIX=/usr || return 1
  cmp "$config" "$work/edited.toml" || { echo "make uninstall removed or changed the edited qsockd.toml"; return 1; }
  grep -q "kept .*qsockd.toml" "$work/make.log" || { echo "make uninstall does not say it kept qsockd.toml"; return 1; }
  rm "$config"
}
check "an edited qsockd.toml survives make install and make uninstall, which says so" edited_config_kept

# --- 3. nothing left ---------------------------------------------------------------
uninstall_clean() { make_in "$1" uninstall "${@:2}" && nothing_left "$1"; }
make_in "$dest" install PREFIX=/usr >/dev/null
check "make uninstall DESTDIR=... PREFIX=/usr leaves no file" uninstall_clean "$dest" PREFIX=/usr
nothing_left "$dest" 2>/dev/null | sed 's/^/     /'

# --- 4. the default PREFIX ------------------------------------------------------------
local_dest=$work/local-root
local_layout() {
  make_in "$local_dest" install || return 1
  local f
  for f in usr/local/bin/qsockd usr/local/bin/qsockctl "usr/local/lib/$multiarch/libqsock.so" \
    "usr/local/lib/$multiarch/gstreamer-1.0/libgstqsocksink.so" "usr/local/lib/$multiarch/pkgconfig/qsock.pc" \
    usr/local/include/qsock.h usr/local/lib/systemd/system/qsockd.service \
    usr/local/lib/sysusers.d/qsockd.conf etc/qsock/qsockd.toml "usr/local/src/$dkms_name-$dkms_version/dkms.conf"; do
    [ -f "$local_dest/$f" ] || { echo "/$f not installed"; return 1; }
  done
  exec_start "$local_dest/usr/local/lib/systemd/system/qsockd.service" \
    "/usr/local/bin/qsockd --config /etc/qsock/qsockd.toml"
}
check "make install DESTDIR=... (PREFIX=/usr/local): plugin under lib/$multiarch/gstreamer-1.0, ExecStart /usr/local/bin/qsockd" local_layout
check "make uninstall DESTDIR=... (PREFIX=/usr/local) leaves no file" uninstall_clean "$local_dest"

echo "qsock-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
