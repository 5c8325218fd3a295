#!/bin/sh
# End-to-end benchmark of treeshift update: stage TREES trees of SERVICES
# services each, all in format 1 and live with some services up, then, REPEAT
# times in turn,
#   1. cp -a of the staged root plus sync (the floor: copying the bytes once),
#   2. treeshift update of a fresh copy (the real thing, durably),
# and once more treeshift update with nothing to do. It reports wall-clock
# and CPU seconds and peak RSS for each run, the medians, and the ratio of
# the medians. Needs GNU time (Debian: time).
#
#   bench/update.sh [TREES] [SERVICES]      default 10 20
#
# TMPDIR chooses the filesystem measured (TMPDIR=/dev/shm for tmpfs). With
# FRESH_EXT4=1 (root only), the runs happen on a new ext4 filesystem in an
# image under TMPDIR, mounted for the benchmark: a filesystem without
# history. That matters on ext4 mounted without a journal, where creating a
# file skips over inodes freed in the last minutes, so every run pays for
# what earlier runs (and the staging) deleted.
set -eu
trees=${1:-10}
services=${2:-20}
repeat=${REPEAT:-5}
bin=$(realpath "${TREESHIFT:-bin/treeshift}")
work=$(mktemp -d "${TMPDIR:-/tmp}/treeshift-bench.XXXXXX")
cleanup() {
	if mountpoint -q "$work/fs" 2>/dev/null; then umount "$work/fs"; fi
	rm -rf "$work"
}
# An interrupted run removes its roots too (they can take gigabytes): the
# shell runs the EXIT trap on a signal only when the signal is trapped.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
base=$work
if [ "${FRESH_EXT4:-}" = 1 ]; then
	truncate -s 8G "$work/fs.img"
	mkfs.ext4 -q -F -N 2000000 "$work/fs.img"
	mkdir "$work/fs"
	mount -o loop "$work/fs.img" "$work/fs"
	base=$work/fs
fi
staged=$base/staged
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
sync

# timed LABEL COMMAND...: appends "LABEL WALL CPU KIB" to $work/runs. GNU
# time gives CPU time and peak RSS; wall-clock time is taken to the
# millisecond around it (time's own is in hundredths).
timed() {
	label=$1; shift
	start=$(date +%s%N)
	/usr/bin/time -f "%U %S %M" -o "$work/time" "$@"
	end=$(date +%s%N)
	read -r user sys kib < "$work/time"
	echo "$label $(( (end - start) / 1000000 )) $user $sys $kib" |
		awk '{printf "%s %.3f %.2f %d\n", $1, $2 / 1000, $3 + $4, $5}' >> "$work/runs"
}

fs=$(df -T "$base" | awk 'NR == 2 {print $2}')
echo "# $trees trees x $services services, format 1 -> 3, on $fs ($base), $repeat runs each"
printf '%-8s %10s %10s %10s %12s\n' run 'floor s' 'update s' 'cpu s' 'RSS KiB'
r=1
while [ "$r" -le "$repeat" ]; do
	timed floor sh -c "cp -a '$staged' '$base/floor$r' && sync"
	cp -a "$staged" "$base/run$r"
	sync
	timed update "$bin" --root "$base/run$r" update
	awk -v r="$r" '$1 == "floor" {f = $2} $1 == "update" {u = $2; c = $3; m = $4}
		END {printf "%-8s %10.3f %10.3f %10.2f %12d\n", r, f, u, c, m}' "$work/runs"
	r=$((r + 1))
done
median() { # label, field
	awk -v l="$1" -v f="$2" '$1 == l {print $f}' "$work/runs" | sort -n |
		awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
floor=$(median floor 2)
upd=$(median update 2)
printf '%-8s %10.3f %10.3f %10.2f %12d\n' median "$floor" "$upd" "$(median update 3)" "$(median update 4)"
echo "update / floor (medians): $(echo "$upd $floor" | awk '{printf "%.2f", $1 / $2}')"
timed again "$bin" --root "$base/run1" update
awk '$1 == "again" {printf "nothing to do: %.3f s wall, %d KiB peak RSS\n", $2, $4}' "$work/runs"
