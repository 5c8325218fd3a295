#!/bin/sh
# A 3-member cluster rolled from format 1 to 3, stage by stage: each member is
# a root of its own under one temporary directory, with live v1 trees and
# services up; the cluster store is a directory beside them.
set -eu
bin=${TREESHIFT:-bin/treeshift}
dir=$(mktemp -d "${TMPDIR:-/tmp}/treeshift-cluster.XXXXXX")
# Removed when the demo ends, however it ends (KEEP=1 keeps it).
cleanup() {
	trap - INT TERM EXIT
	if [ "${KEEP:-}" = 1 ]; then
		echo "# left in place: $dir (rm -rf it when done)"
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "# members and store under: $dir"
for m in m1 m2 m3; do
	root=$dir/$m
	mkdir -p "$root/etc/treeshift/service"
	cp demo/services/* "$root/etc/treeshift/service/"
	"$bin" --root "$root" tree create --format 1 -E -c boot
	"$bin" --root "$root" enable -t boot syslogd udevd
	"$bin" --root "$root" init boot
	"$bin" --root "$root" start -t boot syslogd udevd
done
c() { echo "\$ treeshift cluster $*"; "$bin" cluster --store "$dir/store" "$@"; }
c init --quorum-vote --member "m1=$dir/m1" --member "m2=$dir/m2" --member "m3=$dir/m3"
c check setup m1
c setup m1
c preinstall
c install
c postinstall
c status
c roll --parallel m2 m3 || echo "# refused, as it should be: rolling both at once would lose quorum"
c roll m2
c roll m3
c switch
c clean
c status
for m in m1 m2 m3; do echo "# $m:"; "$bin" --root "$dir/$m" tree list; done
[ "${KEEP:-}" = 1 ] || echo "# removing $dir (KEEP=1 make demo-cluster keeps it)"
