#!/bin/sh
# End-to-end benchmark of treeshift update, one table for every case. For
# each case TREESxSERVICES it stages that many trees of that many services,
# all in format 1 and live with a service up, then, REPEAT times in turn,
#   1. cp -a of the staged root plus sync -f (the floor: copying the bytes
#      once, durably),
#   2. treeshift update of a fresh copy (the real thing, durably),
# then REPEAT times treeshift update with nothing to do. It prints one line per
# case: the medians of wall-clock seconds (update, floor, their ratio), the
# update's CPU seconds and peak RSS, the flushes it made (syncfs and fsync,
# as it reports them at -v 4) and the nothing-to-do run's seconds. Needs GNU
# time (Debian: time).
#
#   bench/update.sh [CASE...]          default 10x20 100x100
#   bench/update.sh TREES SERVICES     one case
#
# TMPDIR chooses the filesystem measured (TMPDIR=/dev/shm for tmpfs). With
# FRESH_EXT4=1 (root only), the runs happen on a new ext4 filesystem in an
# image under TMPDIR, mounted for the benchmark: a filesystem without
# history. That matters on ext4 mounted without a journal, where creating a
# file skips over inodes freed in the last minutes, so every run pays for
# what earlier runs (and the staging) deleted. VERBOSE=1 prints every run.
set -eu
if [ $# -eq 2 ] && [ "${1#*x}" = "$1" ]; then
	set -- "${1}x${2}"
fi
[ $# -gt 0 ] || set -- 10x20 100x100
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
	truncate -s 16G "$work/fs.img"
	mkfs.ext4 -q -F -N 4000000 "$work/fs.img"
	mkdir "$work/fs"
	mount -o loop "$work/fs.img" "$work/fs"
	base=$work/fs
fi

# stage TREES SERVICES DIR: the system a case updates.
stage() {
	staged=$3
	defs=$staged/etc/treeshift/service
	mkdir -p "$defs"
	# Services: longruns, each depending on the one before it in groups of
	# ten.
	i=0
	while [ $i -lt "$2" ]; do
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
	while [ $t -lt "$1" ]; do
		name=$(printf 't%03d' $t)
		"$bin" --root "$staged" tree create --format 1 -E "$name"
		# shellcheck disable=SC2086
		"$bin" --root "$staged" enable -t "$name" $all
		"$bin" --root "$staged" init "$name"
		"$bin" --root "$staged" start -t "$name" s0005
		t=$((t + 1))
	done
	sync
}

# timed LABEL COMMAND...: appends "LABEL WALL CPU KIB" to $work/runs. GNU
# time gives CPU time and peak RSS; wall-clock time is taken to the
# millisecond around it (time's own is in hundredths). The command's
# stderr goes to $work/err.
timed() {
	label=$1; shift
	start=$(date +%s%N)
	/usr/bin/time -f "%U %S %M" -o "$work/time" "$@" 2> "$work/err"
	end=$(date +%s%N)
	read -r user sys kib < "$work/time"
	echo "$label $(( (end - start) / 1000000 )) $user $sys $kib" |
		awk '{printf "%s %.3f %.2f %d\n", $1, $2 / 1000, $3 + $4, $5}' >> "$work/runs"
}

median() { # label, field
	awk -v l="$1" -v f="$2" '$1 == l {print $f}' "$work/runs" | sort -n |
		awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

fs=$(df -T "$base" | awk 'NR == 2 {print $2}')
echo "# treeshift update, format 1 -> 3, against cp -a + sync -f of the same root,"
echo "# on $fs ($base); medians of $repeat runs each, floor and update alternating"
printf '%-12s %9s %9s %6s %7s %8s %-22s %9s\n' case 'update s' 'floor s' ratio 'CPU s' 'RSS MiB' 'flushes' 'nothing s'
for c in "$@"; do
	trees=${c%x*}
	services=${c#*x}
	: > "$work/runs"
	staged=$base/staged
	stage "$trees" "$services" "$staged"
	r=1
	while [ "$r" -le "$repeat" ]; do
		timed floor sh -c "cp -a '$staged' '$base/floor' && sync -f '$base/floor'"
		cp -a "$staged" "$base/run"
		sync
		timed update "$bin" --root "$base/run" -v 4 update
		flushes=$(sed -n 's/^treeshift: debug: durable layer: //p' "$work/err" | tail -1)
		if [ -n "${VERBOSE:-}" ]; then
			tail -2 "$work/runs" | tr '\n' ' '
			echo "$flushes"
		fi
		if [ "$r" -lt "$repeat" ]; then
			rm -rf "$base/floor" "$base/run"
			sync
		fi
		r=$((r + 1))
	done
	# A re-run comes later: what the update left to write back is on the
	# disk first, as the staged root was before each update.
	sync
	r=1
	while [ "$r" -le "$repeat" ]; do
		timed again "$bin" --root "$base/run" update
		r=$((r + 1))
	done
	rm -rf "$base/floor" "$base/run" "$staged"
	sync
	floor=$(median floor 2)
	upd=$(median update 2)
	# "2 flush(es): 2 syncfs, 0 fsync of a file, 0 fsync of a directory"
	short=$(echo "$flushes" | awk -F'[:,] *' '{n = $1; sub(/ .*/, "", n); s = $2; sub(/ .*/, "", s); f = $3; sub(/ .*/, "", f); d = $4; sub(/ .*/, "", d); printf "%s (%s syncfs, %s fsync)", n, s, f + d}')
	printf '%-12s %9.3f %9.3f %6.2f %7.2f %8.1f %-22s %9.3f\n' "$trees x $services" "$upd" "$floor" \
		"$(echo "$upd $floor" | awk '{printf "%.2f", $1 / $2}')" "$(median update 3)" \
		"$(median update 4 | awk '{print $1 / 1024}')" "$short" "$(median again 2)"
done
