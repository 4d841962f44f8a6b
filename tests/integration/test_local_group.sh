#!/bin/bash
# contrib/local-group end to end: `up` with one node gives a Normal node with open listeners,
# a certificate clients can verify and a complete group.env; `down` leaves no process and no
# listener behind, and a second `down` still succeeds.
# Uses DUET_BUILD (default build/).  Exit 0 pass, 1 fail, 77 skipped.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DUET_BUILD:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
lg=$root/contrib/local-group

fail() {
	echo "test_local_group: FAIL: $*" >&2
	exit 1
}
note() {
	echo "test_local_group: $*"
}

[ -x /usr/lib/postgresql/15/bin/initdb ] || {
	echo "test_local_group: SKIP: PostgreSQL 15 is not installed"
	exit 77
}
for b in srmd srmctl presenced; do
	[ -x "$build/bin/$b" ] || fail "$build/bin/$b is not built"
done

# Alive and not a zombie (nothing here reaps orphans, so a dead one may linger as Z).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ "$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
listening() {
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
children_of() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(sed -n 's/^.*) . \([0-9]*\) .*$/\1/p' "$p/stat" 2>/dev/null)" = "$1" ] &&
			echo "${p#/proc/}"
	done
}

# A base port with both of node 1's ports free.
base=16222
while listening "$base" || listening $((base + 1)); do
	base=$((base + 10))
	[ "$base" -lt 16722 ] || fail "no free ports from 16222 on"
done

dir=$(mktemp -d /tmp/duet-lg.XXXXXX)
passed=0
cleanup() {
	"$lg" down "$dir" >/dev/null 2>&1
	if [ "$passed" -eq 1 ]; then rm -rf "$dir"; else echo "logs kept in $dir" >&2; fi
}
trap cleanup EXIT

"$lg" up "$dir" --nodes 1 --base-port "$base" --build "$build" || fail "local-group up failed"
[ -f "$dir/group.env" ] || fail "no group.env"
# shellcheck source=/dev/null
. "$dir/group.env"
for key in DOMAIN NODES TLS_CERT NODE1_XMPP_PORT NODE1_XMPPS_PORT NODE1_CTL NODE1_PGHOST \
	NODE1_LOG; do
	[ -n "${!key:-}" ] || fail "group.env lacks $key"
done
[ "$NODES" = 1 ] || fail "NODES=$NODES, want 1"
[ "$NODE1_XMPP_PORT" = "$base" ] || fail "NODE1_XMPP_PORT=$NODE1_XMPP_PORT, want $base"
[ "$NODE1_XMPPS_PORT" = $((base + 1)) ] || fail "NODE1_XMPPS_PORT=$NODE1_XMPPS_PORT"
[ -S "$NODE1_CTL" ] || fail "control socket $NODE1_CTL missing"
[ -s "$TLS_CERT" ] || fail "certificate $TLS_CERT missing"
[ -f "$NODE1_LOG" ] || fail "log $NODE1_LOG missing"
ls "$NODE1_PGHOST"/.s.PGSQL.* >/dev/null 2>&1 || fail "no PostgreSQL socket in $NODE1_PGHOST"
note "group.env complete"

normal='"state"[[:space:]]*:[[:space:]]*"Normal"'
"$build/bin/srmctl" -s "$NODE1_CTL" status --json | grep -Eq "$normal" ||
	fail "srmctl status --json does not say Normal"
"$lg" status "$dir" --build "$build" | grep -q Normal || fail "local-group status: not Normal"
note "node 1 is Normal"

listening "$NODE1_XMPP_PORT" || fail "nothing listens on $NODE1_XMPP_PORT"
listening "$NODE1_XMPPS_PORT" || fail "nothing listens on $NODE1_XMPPS_PORT"
# The direct-TLS port presents the group certificate, valid for the domain and localhost.
for name in "$DOMAIN" localhost; do
	timeout 10 openssl s_client -connect "127.0.0.1:$NODE1_XMPPS_PORT" -CAfile "$TLS_CERT" \
		-verify_hostname "$name" -verify_return_error -brief </dev/null >"$dir/s_client.log" 2>&1 ||
		fail "TLS on $NODE1_XMPPS_PORT does not verify for $name: $(cat "$dir/s_client.log")"
done
note "listeners open, certificate verifies for $DOMAIN and localhost"

srmd_pid=$(cat "$dir/node1/srmd.pid")
pg_pid=$(head -n 1 "$dir/node1/pg/postmaster.pid")
engine_pids=$(children_of "$srmd_pid")
alive "$srmd_pid" || fail "srmd (pid $srmd_pid) is not running"
alive "$pg_pid" || fail "postgres (pid $pg_pid) is not running"
[ -n "$engine_pids" ] || fail "srmd has no child process (presenced)"

"$lg" down "$dir" || fail "local-group down failed"
for pid in "$srmd_pid" "$pg_pid" $engine_pids; do
	! alive "$pid" || fail "pid $pid still running after down: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
done
! listening "$NODE1_XMPP_PORT" || fail "port $NODE1_XMPP_PORT still open after down"
! listening "$NODE1_XMPPS_PORT" || fail "port $NODE1_XMPPS_PORT still open after down"
! ls "$NODE1_PGHOST"/.s.PGSQL.* >/dev/null 2>&1 || fail "PostgreSQL socket left behind"
[ ! -e "$dir/group.env" ] || fail "group.env left behind after down"
"$lg" down "$dir" || fail "a second down failed"
note "down stopped srmd, presenced and PostgreSQL; nothing listens"

passed=1
note "PASS"
