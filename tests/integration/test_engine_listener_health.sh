#!/bin/bash
# Supervision checks a live listener, not just a pid: when presenced's client port stops
# accepting (its listening socket shut down from inside the process with gdb), its health
# answer says no-listener and srmd leaves Normal with reason Critical Service Down.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DUET_BUILD:-$root/build}
command -v gdb >/dev/null || { echo "SKIP: gdb is not installed"; exit 77; }
dir=$(mktemp -d "${DUET_TEST_TMP:-/tmp}/lh.XXXXXX")
trap '"$root/contrib/local-group" down "$dir" >/dev/null 2>&1 || true' EXIT
"$root/contrib/local-group" up "$dir" --nodes 1 --base-port "${BASE_PORT:-24600}" \
	--build "$build" >"$dir/up.log" 2>&1 || { cat "$dir/up.log"; exit 1; }
# shellcheck disable=SC1091
. "$dir/group.env"
state() { "$build/bin/srmctl" -s "$NODE1_CTL" status --json | python3 -c \
	'import json,sys; d=json.load(sys.stdin); print(d.get("state"), "/", d.get("reason"))'; }
[ "$(state)" = "Normal / Normal" ] || { echo "FAIL: not Normal at start: $(state)"; exit 1; }
pid=$(pgrep -f "presenced --config $dir/" | head -1)
fd=$(ss -ltnp | grep "pid=$pid," | grep ":$NODE1_XMPP_PORT " | sed 's/.*fd=\([0-9]*\).*/\1/')
[ -n "$fd" ] || { echo "FAIL: no listening socket of pid $pid on $NODE1_XMPP_PORT"; exit 1; }
gdb -p "$pid" -batch -ex "call (int)shutdown($fd, 2)" >/dev/null 2>&1
for _ in $(seq 1 50); do
	[ "$(state)" = "Running in Failed Mode / Critical Service Down" ] && break
	sleep 0.1
done
s=$(state)
[ "$s" = "Running in Failed Mode / Critical Service Down" ] ||
	{ echo "FAIL: state after the listener died: $s"; exit 1; }
grep -q "health no-listener" "$NODE1_LOG" || { echo "FAIL: no 'health no-listener' in the log"; exit 1; }
echo "PASS: dead listener -> health no-listener -> $s"
