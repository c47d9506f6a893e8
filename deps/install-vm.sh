#!/usr/bin/env bash
# Installs virtme-ng (PyPI) for the kernel tests in VMs (tests/vm/run.sh).
#
# The apt side (QEMU, Debian's kernels and headers, busybox) is in
# deps/apt-packages.txt and installed by deps/install.sh. virtme-ng is not
# packaged for Debian 12, so it goes into a venv of its own under the repo's
# target/ directory: Debian 12's Python is "externally managed" (PEP 668) and
# refuses a plain `pip install`, and a venv touches nothing outside the repo.
# The venv is built from Debian's /usr/bin/python3 (python3-venv), not from
# whatever python3 comes first on PATH (pyenv, conda...), so that it does not
# break when that interpreter changes.
#
# Quiet and quick when virtme-ng is already there. Prints the path of `vng` on
# stdout as its last line, so callers can do: vng=$(deps/install-vm.sh | tail -n1)
#
# Environment:
#   QSOCK_VNG_VENV    where the venv lives (default: <repo>/target/vm-venv)
#   QSOCK_VNG_VERSION pip requirement for virtme-ng (default: virtme-ng>=1.33)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
venv=${QSOCK_VNG_VENV:-$repo/target/vm-venv}
requirement=${QSOCK_VNG_VERSION:-virtme-ng>=1.33}
vng=$venv/bin/vng

if [ -x "$vng" ] && "$vng" --version >/dev/null 2>&1; then
  echo "$vng"
  exit 0
fi

python=
for candidate in /usr/bin/python3 "$(command -v python3 || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] &&
    "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "install-vm: need Python >= 3.10 with the venv module (Debian: apt-get install python3-venv)" >&2
  exit 1
fi

echo "install-vm: installing $requirement into $venv (with $python)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
# Keep pip's chatter off stdout, which carries the vng path.
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet "$requirement" >&2

if ! "$vng" --version >/dev/null 2>&1; then
  echo "install-vm: $vng does not run after installing $requirement" >&2
  exit 1
fi
echo "install-vm: $("$vng" --version)" >&2
echo "$vng"
