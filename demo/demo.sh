#!/bin/sh
# Stage a system under a temporary --root with old-format (v1) trees of
# realistic services, make them live and bring some services up; then run
# the update as an administrator would — a dry run first, then the real one —
# and show that nothing but the format changed. Needs only the treeshift
# binary: the embedded backend keeps live state as files.
set -eu
bin=${TREESHIFT:-bin/treeshift}
root=$(mktemp -d "${TMPDIR:-/tmp}/treeshift-demo.XXXXXX")
ts() { echo "\$ treeshift $*"; "$bin" --root "$root" "$@"; }

mkdir -p "$root/etc/treeshift/service"
cp demo/services/* "$root/etc/treeshift/service/"
echo "# staged root: $root"

# Real processes under s6 when it is installed; the embedded backend (state
# files, no processes) otherwise.
backend=files
if command -v s6-svscan >/dev/null && command -v execlineb >/dev/null; then
	backend=s6
fi
# The staged root goes when the demo ends, however it ends (KEEP=1 keeps
# it for a look); with s6, its supervisor and services are stopped first.
cleanup() {
	trap - INT TERM EXIT
	[ "$backend" = s6 ] && "$bin" --root "$root" scandir stop >/dev/null 2>&1
	if [ "${KEEP:-}" = 1 ]; then
		echo "# left in place: $root (rm -rf it when done)"
	else
		rm -rf "$root"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "# supervisor backend: $backend"
ts scandir start --supervisor "$backend"

ts tree create --format 1 -E -c boot
ts tree create --format 1 -E net
ts tree create --format 1 -E desktop
ts enable -t boot udevd syslogd hostname
ts enable -t net network
ts enable -t desktop desktop
for t in boot net desktop; do ts init "$t"; done
ts start -t boot udevd syslogd hostname
ts -v 2 start -t net sshd ntpd
ts start -t desktop dbus
ts tree list
"$bin" --root "$root" status --json > "$root/status-before.json"

echo
echo "# The package was upgraded: its trees must move to format 3."
ts plan
ts update -d
ts -v 3 update
ts tree list
ts status
"$bin" --root "$root" status --json > "$root/status-after.json"
echo
echo "# status --json before and after, formats and stamp aside:"
strip() { sed -E 's/"(format|stamp|uptime)": [0-9]+/"\1": N/' "$1"; }
if [ "$(strip "$root/status-before.json")" = "$(strip "$root/status-after.json")" ]; then
	echo "identical: same trees, services, dependencies, order and live states"
	[ "$backend" = s6 ] && echo "(and every service that was up kept its process: same pids)"
else
	echo "DIFFERENT:"; strip "$root/status-before.json" > "$root/b"; strip "$root/status-after.json" | diff "$root/b" - ; exit 1
fi
if [ "$backend" = s6 ]; then
	echo "# stopping the demo's s6-svscan and its services"
fi
[ "${KEEP:-}" = 1 ] || echo "# removing $root (KEEP=1 make demo keeps it)"
