#!/usr/bin/env bash
# Installs what qsock needs on Debian 12: the apt packages listed in
# deps/apt-packages.txt (only the missing ones, so a second run is quiet and
# quick), and checks for the Rust toolchain, which Debian 12's own cargo is too
# old to replace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

missing=()
while read -r package; do
  package=${package%%#*}
  package=${package//[[:space:]]/}
  [ -n "$package" ] || continue
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done < "$here/apt-packages.txt"

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "qsock needs these Debian packages: ${missing[*]}" >&2
    echo "install them as root: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust 1.85 or newer with rustup (https://rustup.rs), then run make again" >&2
  exit 1
fi
