#!/bin/bash
# A single node captures changes into repl_outbox like a pair member does, but nobody
# acknowledges them: srmd empties the outbox every outbox_trim_interval.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DUET_BUILD:-$root/build}
dir=$(mktemp -d "${DUET_TEST_TMP:-/tmp}/ot.XXXXXX")
trap '"$root/contrib/local-group" down "$dir" >/dev/null 2>&1 || true' EXIT
DUET_EXTRA_SRM_CONF="outbox_trim_interval = 1s" \
	"$root/contrib/local-group" up "$dir" --nodes 1 --base-port "${BASE_PORT:-24700}" \
	--build "$build" >"$dir/up.log" 2>&1 || { cat "$dir/up.log"; exit 1; }
# shellcheck disable=SC1091
. "$dir/group.env"
outbox() { psql -qtA -h "$NODE1_PGHOST" -p "$NODE1_PGPORT" -U duet -d duet \
	-c "SELECT count(*) FROM repl_outbox"; }
for u in a b c; do "$build/bin/srmctl" -s "$NODE1_CTL" user add "$u@$DOMAIN" pw >/dev/null; done
n=$(outbox)
echo "outbox after 3 accounts: $n rows"
for _ in $(seq 1 50); do
	[ "$(outbox)" = 0 ] && break
	sleep 0.1
done
[ "$(outbox)" = 0 ] || { echo "FAIL: outbox still holds $(outbox) rows"; exit 1; }
[ "$("$build/bin/srmctl" -s "$NODE1_CTL" user list | wc -l)" = 3 ] ||
	{ echo "FAIL: trimming touched the accounts"; exit 1; }
echo "PASS: single-node outbox emptied, accounts intact"
