#!/bin/sh
# End-to-end benchmark of treeshift update: stage TREES trees of SERVICES
# services each, all in format 1 and live with some services up, then time
#   1. cp -a of the staged root plus sync (the floor: copying the bytes once),
#   2. treeshift update of a fresh copy (the real thing, durably),
#   3. treeshift update again (nothing to do),
# reporting wall-clock seconds and peak RSS. Needs GNU time (Debian: time).
#
#   bench/update.sh [TREES] [SERVICES]      default 10 20
set -eu
trees=${1:-10}
services=${2:-20}
bin=${TREESHIFT:-bin/treeshift}
work=$(mktemp -d "${TMPDIR:-/tmp}/treeshift-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
staged=$work/staged
defs=$staged/etc/treeshift/service
mkdir -p "$defs"

# Services: longruns, each depending on the one before it in groups of ten.
i=0
while [ $i -lt "$services" ]; do
	name=$(printf 's%04d' $i)
	dep=""
	if [ $((i % 10)) -ne 0 ]; then dep="@depends = ( $(printf 's%04d' $((i - 1))) )"; fi
	cat > "$defs/$name" <<DEF
[main]
@type = longrun
@version = 1.0.0
@description = "benchmark service $i"
@user = ( root )
$dep

[start]
@execute = ( sleep infinity )
DEF
	i=$((i + 1))
done
all=$(cd "$defs" && ls | tr '\n' ' ')

t=0
while [ $t -lt "$trees" ]; do
	name=$(printf 't%03d' $t)
	"$bin" --root "$staged" tree create --format 1 -E "$name"
	"$bin" --root "$staged" enable -t "$name" $all
	"$bin" --root "$staged" init "$name"
	"$bin" --root "$staged" start -t "$name" s0005
	t=$((t + 1))
done

# Wall-clock time on a shared disk swings with the host's load; CPU time
# (user + system) is steadier, so both are shown.
measure() { # label, command...
	label=$1; shift
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@"
	read -r secs user sys kib < "$work/time"
	cpu=$(echo "$user $sys" | awk '{printf "%.3f", $1 + $2}')
	printf '%-34s %8.3f s wall %8s s cpu %8d KiB peak RSS\n' "$label" "$secs" "$cpu" "$kib"
}

echo "# $trees trees x $services services, format 1 -> 3"
measure "cp -a + sync (floor)" sh -c "cp -a '$staged' '$work/floor' && sync"
cp -a "$staged" "$work/run"
sync
measure "treeshift update" "$bin" --root "$work/run" update
measure "treeshift update (nothing to do)" "$bin" --root "$work/run" update
