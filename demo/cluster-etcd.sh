#!/bin/sh
# A 5-member cluster over a 3-node etcd, rolled from format 1 to 3: each
# member is a root of its own with an agent process (as it would be one per
# host), the stage commands run from here. Members roll in parallel as
# quorum allows; one agent is killed mid-upgrade to show the refusal and the
# recovery. Everything started is stopped on exit, INT or TERM.
#
# Needs etcd (Debian's etcd-server). ETCD_PORT (default 23790) is the first
# of six consecutive ports used on 127.0.0.1; KEEP=1 keeps the directory.
set -eu
bin=${TREESHIFT:-bin/treeshift}
etcd=${ETCD:-etcd}
command -v "$etcd" >/dev/null || { echo "etcd not found: install Debian's etcd-server" >&2; exit 1; }
port=${ETCD_PORT:-23790}
dir=$(mktemp -d "${TMPDIR:-/tmp}/treeshift-cluster-etcd.XXXXXX")
pids=""
cleanup() {
	trap - INT TERM EXIT
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then
		echo "# left in place: $dir (rm -rf it when done)"
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "# etcd: 3 nodes on 127.0.0.1:$port, $((port + 2)), $((port + 4)); data and members under $dir"
initial=""
for i in 1 2 3; do
	initial="$initial${initial:+,}e$i=http://127.0.0.1:$((port + 2 * i - 1))"
done
endpoints=""
for i in 1 2 3; do
	c=http://127.0.0.1:$((port + 2 * i - 2)) p=http://127.0.0.1:$((port + 2 * i - 1))
	"$etcd" --name "e$i" --data-dir "$dir/etcd/e$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
		--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$initial" \
		--initial-cluster-state new --initial-cluster-token treeshift-demo \
		--heartbeat-interval 50 --election-timeout 500 --log-level warn >"$dir/etcd-e$i.log" 2>&1 &
	pids="$pids $!"
	endpoints="$endpoints${endpoints:+,}127.0.0.1:$((port + 2 * i - 2))"
done
store="etcd://$endpoints/demo"

members="m1 m2 m3 m4 m5"
for m in $members; do
	root=$dir/$m
	mkdir -p "$root/etc/treeshift/service"
	cp demo/services/* "$root/etc/treeshift/service/"
	"$bin" --root "$root" tree create --format 1 -E -c boot
	"$bin" --root "$root" enable -t boot syslogd udevd
	"$bin" --root "$root" init boot
	"$bin" --root "$root" start -t boot syslogd udevd
done

# One agent per member, as a supervisor would run it on each host.
agent() {
	"$bin" --root "$dir/$1" cluster --store "$store" agent --member "$1" --ttl 3s >>"$dir/agent-$1.log" 2>&1 &
	eval "agent_$1=$!"
	pids="$pids $!"
}
for m in $members; do agent "$m"; done
for m in $members; do
	until grep -q "agent up" "$dir/agent-$m.log" 2>/dev/null; do sleep 0.1; done
done
echo "# agents up: $members (lease 3 s)"

c() { echo "\$ treeshift cluster $*"; "$bin" cluster --store "$store" "$@"; }
c init --quorum-vote --member m1 --member m2 --member m3 --member m4 --member m5
c check setup m1
c setup m1
c preinstall
c install
c postinstall
echo "# 6 votes with the quorum vote: three members rolling at once would leave 3, not a majority"
c roll --parallel m2 m3 m4 || echo "# refused, as it should be"
c roll --parallel m2 m3

echo "# m4's agent dies (SIGKILL); its lease expires in 3 s"
eval "kill -9 \$agent_m4"
sleep 4
c status
c roll m4 || echo "# refused, as it should be: m4 is down"
echo "# m4 down counts no votes: m1 m2 m3 and the quorum vote still make 4 of 6 while m5 rolls"
c roll m5

echo "# m4's agent restarts: it reports m4's disk again"
agent m4
until grep -c "agent up" "$dir/agent-m4.log" | grep -q 2; do sleep 0.1; done
c roll m4
c switch
c clean
c status
for m in $members; do echo "# $m:"; "$bin" --root "$dir/$m" tree list; done
