#!/usr/bin/env bash
# The README's Deploy section in a test VM (make test-vm boots Debian 12's
# default kernel for it: bash tests/vm/run.sh -k VERSION -s tests/vm/deploy.sh),
# on the guest's throwaway overlays of /usr, /etc and /var, so the host's
# files are never written:
#
#   1. `make install PREFIX=/usr` from the host's release build;
#   2. DKMS: `dkms add`, `dkms build` and `dkms install` of the installed
#      source (/usr/src/sch_dwcs-VERSION) for the running kernel, then
#      `modprobe sch_dwcs` loads the module DKMS built (updates/dkms/), not
#      kmod-dwcs/build/'s;
#   3. qsockd started on dwcs on a veth device as the unit runs it (user
#      qsock, CAP_NET_ADMIN alone, /run/qsock its own), and a gst-launch-1.0
#      pipeline into qsocksink run by an unprivileged user made here, which
#      finds the plugin with no environment variable and gets a dwcs class
#      that carries its packets; then the paper's program (tests/c/paper_api.c,
#      built with `pkg-config --cflags --libs qsock`) run unchanged by that
#      user through qsockd on dwcs;
#   4. `make uninstall PREFIX=/usr`, which removes the DKMS module too.
#
#   bash tests/vm/deploy.sh EXPECTED_KERNEL_VERSION
#
# Its own boot, apart from tests/vm/guest.sh's: it installs into the guest's
# /usr and /lib/modules, and DKMS's build and depmod take minutes under
# emulation. Ends with "qsock-vm: N passed, N failed, N skipped"; exits 1 if
# anything failed.

# One compound command: bash reads it whole before running any of it, so an
# edit of this file during a run does not change the run.
{
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/vm/lib.sh
. "$REPO/tests/vm/lib.sh"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
kver=$(uname -r)
echo "qsock-vm: kernel $kver"
vm_expect_kernel "${1:-}" || exit 1
# Receive timestamps held on before anything flows (tests/vm/lib.sh says why).
vm_hold_rx_timestamps
trap 'kill $vm_timestamp_holder 2>/dev/null' EXIT
dkms_name=$(sed -n 's/^PACKAGE_NAME="\(.*\)"/\1/p' "$REPO/kmod-dwcs/dkms.conf")
dkms_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$REPO/kmod-dwcs/dkms.conf")
export GST_REGISTRY=/tmp/qsock-deploy-registry.bin

passed=0 failed=0 skipped=0
step() { echo "== $*"; }
pass() {
	echo "ok   $*"
	passed=$((passed + 1))
}
fail() {
	echo "FAIL $*"
	failed=$((failed + 1))
}
summary() {
	echo "qsock-vm: $passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
}

for tool in make dkms modprobe gst-launch-1.0; do
	command -v "$tool" >/dev/null || { echo "no $tool in the guest (make deps installs it)"; exit 1; }
done
if grep -q '^sch_dwcs ' /proc/modules; then
	echo "sch_dwcs is loaded already: this script wants to load the one DKMS builds"
	exit 1
fi

# DKMS installs into /lib/modules/VERSION and runs depmod there: give it a
# tmpfs overlay when the guest's view of the host's tree is read-only.
modules=/lib/modules/$kver
writable_modules() {
	local scratch=/run/qsock-deploy-modules
	mkdir -p "$scratch" && mount -t tmpfs qsock-deploy-modules "$scratch" &&
		mkdir -p "$scratch/upper" "$scratch/work" &&
		mount -t overlay qsock-deploy-modules \
			-o "lowerdir=$modules,upperdir=$scratch/upper,workdir=$scratch/work" "$modules"
}
if ! touch "$modules/.qsock-write-probe" 2>/dev/null && ! writable_modules; then
	echo "cannot make $modules writable"
	exit 1
fi
rm -f "$modules/.qsock-write-probe"

# virtme-ng binds a generated file over /etc/shadow, which the tools that
# add users (systemd-sysusers here and in make install) cannot replace; the
# overlay's own /etc/shadow beneath it they can.
if mountpoint -q /etc/shadow; then
	umount /etc/shadow || { echo "cannot unmount virtme-ng's /etc/shadow"; exit 1; }
fi

# --- 1. make install ----------------------------------------------------------------
step "make install PREFIX=/usr"
if ! make --no-print-directory -C "$REPO" install PREFIX=/usr >/tmp/qsock-deploy-install.log 2>&1; then
	sed 's/^/   | /' /tmp/qsock-deploy-install.log
	fail "make install PREFIX=/usr"
	summary
	exit 1
fi
src=/usr/src/$dkms_name-$dkms_version
if [ -f "$src/dkms.conf" ]; then pass "make install PREFIX=/usr: $src/dkms.conf"; else fail "make install put no $src/dkms.conf"; fi

# --- 2. DKMS ------------------------------------------------------------------------
step "dkms add/build/install $dkms_name/$dkms_version for $kver"
dkms_ok=1
for action in add build install; do
	args=(-m "$dkms_name" -v "$dkms_version")
	[ "$action" = add ] || args+=(-k "$kver")
	if ! dkms "$action" "${args[@]}" >/tmp/qsock-dkms-$action.log 2>&1; then
		sed 's/^/   | /' /tmp/qsock-dkms-$action.log
		[ ! -f "/var/lib/dkms/$dkms_name/$dkms_version/build/make.log" ] ||
			tail -n 30 "/var/lib/dkms/$dkms_name/$dkms_version/build/make.log" | sed 's/^/   make.log | /'
		fail "dkms $action ${args[*]}"
		dkms_ok=0
		break
	fi
done
if [ $dkms_ok = 1 ]; then
	status=$(dkms status -m "$dkms_name" -v "$dkms_version" -k "$kver")
	echo "   dkms status: $status"
	if grep -q ': installed' <<<"$status"; then pass "dkms add/build/install: $status"; else fail "dkms status does not say installed: $status"; fi
	path=$(modinfo -n sch_dwcs 2>&1)
	case $path in
	"$modules"/updates/dkms/sch_dwcs.ko*) pass "modinfo -n sch_dwcs: $path" ;;
	*) fail "modprobe would load '$path', not DKMS's $modules/updates/dkms/sch_dwcs.ko" ;;
	esac
	step "modprobe sch_dwcs"
	if modprobe sch_dwcs && grep -q '^sch_dwcs ' /proc/modules; then
		pass "modprobe sch_dwcs: $(grep '^sch_dwcs ' /proc/modules | cut -d' ' -f1-3)"
	else
		fail "modprobe sch_dwcs"
		dkms_ok=0
	fi
fi

# --- 3. qsockd on dwcs, a pipeline of an unprivileged user ----------------------------
ns_a=qdeploy-a ns_b=qdeploy-b dev=qdep0 user=qsockt1
daemon_pid=
cleanup_daemon() {
	[ -z "$daemon_pid" ] || { kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; }
	daemon_pid=
	vm_netns_del "$ns_a" "$ns_b"
	userdel "$user" 2>/dev/null
	rm -rf "/tmp/$user"
}

# start_qsockd DEV RATE LOG: qsockd serving DEV (in $ns_a) on dwcs at RATE,
# started as the unit runs it (its RuntimeDirectory=, User=,
# AmbientCapabilities= and CapabilityBoundingSet=), logging to LOG; returns
# once it listens.
start_qsockd() {
	local device=$1 rate=$2 log=$3 config=/tmp/qsock-deploy-$1.toml
	cat >"$config" <<-EOF
		socket = "/run/qsock/qsockd.sock"
		[[device]]
		name = "$device"
		scheduler = "dwcs"
		rate = "$rate"
		reservable = 0.8
	EOF
	install -d -o qsock -g qsock -m 0755 /run/qsock
	rm -f /run/qsock/qsockd.sock
	ip netns exec "$ns_a" setpriv --reuid=qsock --regid=qsock --init-groups \
		--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin \
		/usr/bin/qsockd --config "$config" 2>"$log" &
	daemon_pid=$!
	local waited=0
	until [ -S /run/qsock/qsockd.sock ] && grep -q 'listening on' "$log"; do
		kill -0 "$daemon_pid" 2>/dev/null || { echo "qsockd exited:"; cat "$log"; return 1; }
		[ $waited -lt 300 ] || { echo "qsockd did not listen after 30 s:"; cat "$log"; return 1; }
		sleep 0.1
		waited=$((waited + 1))
	done
}

# qsockd_scenario: prints what it saw, returns non-zero on a failure.
qsockd_scenario() {
	id qsock >/dev/null 2>&1 || { echo "make install created no user qsock (sysusers.d)"; return 1; }
	vm_veth_pair "$ns_a" "$ns_b" "$dev" qdep1 10.98.0.1 10.98.0.2 || { echo "no veth pair"; return 1; }
	systemd-sysusers --inline "u $user - \"qsock deploy test\" /tmp/$user" ||
		{ echo "cannot create the user $user"; return 1; }
	install -d -o "$user" -m 0700 "/tmp/$user"
	start_qsockd "$dev" 10mbit /tmp/qsockd.log || return 1
	ip netns exec "$ns_a" tc qdisc show dev "$dev" | grep -q '^qdisc dwcs' || {
		echo "qsockd did not install dwcs on $dev: $(ip netns exec "$ns_a" tc qdisc show dev "$dev")"
		cat /tmp/qsockd.log
		return 1
	}

	# 200 frames at 20 fps: 10 s of live video the receiver side discards.
	ip netns exec "$ns_b" timeout 120 gst-launch-1.0 -q udpsrc port=5600 ! fakesink &
	local receiver=$!
	# -m prints the sink's qsocksink-stats messages, which name its scheduler.
	ip netns exec "$ns_a" runuser -u "$user" -- env HOME="/tmp/$user" GST_REGISTRY="/tmp/$user/registry.bin" \
		timeout 120 gst-launch-1.0 -m videotestsrc is-live=true pattern=snow num-buffers=200 \
		! video/x-raw,width=320,height=180,framerate=20/1 \
		! x264enc tune=zerolatency speed-preset=ultrafast bitrate=800 key-int-max=20 \
		! rtph264pay config-interval=0 mtu=1200 \
		! qsocksink host=10.98.0.2 port=5600 device="$dev" scheduler=dwcs latency-budget=100 qos-interval=200 \
		>/tmp/qsock-deploy-pipeline.log 2>&1 &
	local pipeline=$! carried=""
	# The stream's class carries its packets while it runs. dwcs's classes
	# are streams' only (best effort is no class), qsockd's prepared ones
	# carry nothing until a stream gets one: a class whose byte counter is
	# above zero is the pipeline's.
	while kill -0 "$pipeline" 2>/dev/null; do
		carried=$(ip netns exec "$ns_a" tc -s class show dev "$dev" |
			awk '/^class dwcs/ { c = $3 } /Sent/ && c != "" && $2 > 0 { print c ": " $2 " bytes"; exit }')
		[ -z "$carried" ] || break
		sleep 0.5
	done
	wait "$pipeline"
	local rc=$?
	kill "$receiver" 2>/dev/null
	wait "$receiver" 2>/dev/null
	if [ $rc -ne 0 ]; then
		echo "the pipeline of $user failed (exit $rc):"
		tail -n 20 /tmp/qsock-deploy-pipeline.log
		echo "qsockd's log:"
		tail -n 20 /tmp/qsockd.log
		return 1
	fi
	[ -n "$carried" ] || {
		echo "no dwcs class carried the pipeline's packets:"
		ip netns exec "$ns_a" tc -s class show dev "$dev"
		tail -n 20 /tmp/qsockd.log
		return 1
	}
	if ! grep -q 'qsocksink-stats.*scheduler=(string)dwcs' /tmp/qsock-deploy-pipeline.log ||
		grep -q 'scheduler=(string)user' /tmp/qsock-deploy-pipeline.log; then
		echo "the sink's stats do not say dwcs:"
		grep -m 3 'qsocksink-stats' /tmp/qsock-deploy-pipeline.log
		return 1
	fi
	echo "   $user's pipeline: its dwcs class carried packets ($carried), the sink's stats say dwcs; qsockd's log:"
	sed 's/^/   qsockd | /' /tmp/qsockd.log | tail -n 10
}

# paper_scenario: the paper's program (tests/c/paper_api.c), built against
# the installed libqsock with pkg-config, run unchanged by the unprivileged
# user through qsockd on dwcs. It sends to a receiver it binds itself, so,
# as kmod-dwcs/test/guest_capi.sh runs it as root, it runs on lo (MTU 1500)
# with 127.0.0.1; its streams ask for a packet every 10 to 20 us, so this
# qsockd serves lo at 10 Gbit/s, as tests/c/run.sh's pass through qsockd
# does on htb.
paper_scenario() {
	local bin="/tmp/$user/paper_api" before
	# shellcheck disable=SC2046 # pkg-config's flags are words
	cc -std=gnu11 -Wall -Wextra -Werror -O2 "$REPO/tests/c/paper_api.c" -o "$bin" \
		$(pkg-config --cflags --libs qsock) || { echo "paper_api does not build against the installed libqsock"; return 1; }
	chown "$user" "$bin"
	ip -n "$ns_a" link set lo mtu 1500 up || { echo "cannot bring lo up in $ns_a"; return 1; }
	start_qsockd lo 10gbit /tmp/qsockd-paper.log || return 1
	if ! ip netns exec "$ns_a" runuser -u "$user" -- "$bin" lo dwcs 127.0.0.1 >/tmp/qsock-deploy-paper.out 2>&1; then
		echo "paper_api as $user through qsockd on dwcs failed:"
		tail -n 20 /tmp/qsock-deploy-paper.out
		tail -n 20 /tmp/qsockd-paper.log
		return 1
	fi
	grep -q "uid $(id -u "$user") in " /tmp/qsockd-paper.log || {
		echo "qsockd logged no stream of $user: paper_api went around it:"
		tail -n 20 /tmp/qsockd-paper.log
		return 1
	}
	echo "   paper_api as $user through qsockd on dwcs: $(tail -n 1 /tmp/qsock-deploy-paper.out)"
}

step "qsockd on dwcs, an unprivileged pipeline through it"
if [ $dkms_ok != 1 ]; then
	fail "qsockd on dwcs: sch_dwcs is not loaded (DKMS above)"
elif ! /usr/bin/qsockd --help 2>&1 | grep -q -- '--config'; then
	fail "qsockd on dwcs: make install left no working /usr/bin/qsockd"
elif qsockd_scenario; then
	pass "qsockd on dwcs, an unprivileged pipeline scheduled by it"
else
	fail "qsockd on dwcs with an unprivileged pipeline"
fi
if [ $dkms_ok = 1 ] && [ -n "$daemon_pid" ]; then
	step "the paper's program, unchanged, as that user through qsockd on dwcs"
	kill "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
	daemon_pid=
	if paper_scenario; then
		pass "paper_api through qsockd on dwcs, unprivileged"
	else
		fail "paper_api through qsockd on dwcs, unprivileged"
	fi
fi
cleanup_daemon
rm -rf /run/qsock

# --- 4. make uninstall ----------------------------------------------------------------
grep -q '^sch_dwcs ' /proc/modules && { vm_unload_dwcs 10 0.5 || fail "rmmod sch_dwcs"; }
step "make uninstall PREFIX=/usr"
if make --no-print-directory -C "$REPO" uninstall PREFIX=/usr >/tmp/qsock-deploy-uninstall.log 2>&1; then
	left=()
	for f in "$modules/updates/dkms/sch_dwcs.ko" "$modules/updates/dkms/sch_dwcs.ko.xz" /usr/bin/qsockd \
		/usr/bin/qsockctl "$src" /usr/lib/systemd/system/qsockd.service /etc/qsock; do
		[ ! -e "$f" ] || left+=("$f")
	done
	[ -z "$(dkms status -m "$dkms_name" 2>/dev/null)" ] || left+=("dkms status: $(dkms status -m "$dkms_name")")
	if [ ${#left[@]} -eq 0 ]; then pass "make uninstall PREFIX=/usr, DKMS's module included"; else fail "make uninstall left ${left[*]}"; fi
else
	sed 's/^/   | /' /tmp/qsock-deploy-uninstall.log
	fail "make uninstall PREFIX=/usr"
fi
summary
exit
}
