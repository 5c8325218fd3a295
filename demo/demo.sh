#!/bin/sh
# Stage a system under a temporary --root with old-format (v1) trees of
# realistic services, make them live, bring some services up, and show the
# result. Needs only the treeshift binary: the embedded backend keeps live
# state as files.
set -eu
bin=${TREESHIFT:-bin/treeshift}
root=$(mktemp -d "${TMPDIR:-/tmp}/treeshift-demo.XXXXXX")
ts() { echo "\$ treeshift $*"; "$bin" --root "$root" "$@"; }

mkdir -p "$root/etc/treeshift/service"
cp demo/services/* "$root/etc/treeshift/service/"
echo "# staged root: $root"

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
ts status
echo "# left in place for a look: $root (rm -rf it when done)"
