#!/bin/sh
# shellcheck disable=SC2317 # functions called indirectly (trap, wait_for)
# srmd on a single node, with tests/lib/fake-engine.py as its engine and a scratch database
# in the test PostgreSQL: start-up to Normal, user provisioning through srmctl (exit codes,
# errors, SCRAM credentials checked against the password), engine health problems, kill -9
# and SIGSTOP of the engine (restart, restarts counted), a database outage, SIGTERM (engine
# stopped, exit 0), a configuration fault (no restart), an engine that ignores stop (SIGKILL
# after 5 s), a stale socket after srmd was killed, and a second srmd refused.
# Needs DUET_TEST_CONNINFO (keyword form) and DUET_BUILD, as tests/run sets them.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
if [ -z "${DUET_TEST_CONNINFO:-}" ] || [ -z "${DUET_BUILD:-}" ]; then
	echo "skip: DUET_TEST_CONNINFO and DUET_BUILD must be set (run through tests/run)"
	exit 77
fi
srmd_bin=$DUET_BUILD/bin/srmd
srmctl_bin=$DUET_BUILD/bin/srmctl
for b in "$srmd_bin" "$srmctl_bin"; do
	[ -x "$b" ] || {
		echo "FAIL: $b not built"
		exit 1
	}
done
# shellcheck disable=SC1091 # checked on its own
. "$root/tests/lib/pg.sh"
psql_bin="$(pg_bindir)/psql"
[ -x "$psql_bin" ] || psql_bin=psql

tmp=${DUET_TEST_TMP:-$(mktemp -d /tmp/srmd-test.XXXXXX)}
mkdir -p "$tmp/run"
sock=$tmp/run/srmd.sock
conf=$tmp/node.ini
log=$tmp/srmd.log
englog=$tmp/engine.log
healthfile=$tmp/engine-health
db=duet_srmd_$$_$(date +%s)
srmd_pid=""
domain=example.test

notify_pid=""
cleanup() {
	[ -n "$notify_pid" ] && kill "$notify_pid" 2>/dev/null
	if [ -n "$srmd_pid" ] && kill -0 "$srmd_pid" 2>/dev/null; then
		kill -KILL "$srmd_pid" 2>/dev/null
		wait "$srmd_pid" 2>/dev/null
	fi
	psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
}
trap cleanup EXIT

psql_admin() { "$psql_bin" -X -q -At -d "$DUET_TEST_CONNINFO" -c "$1"; }
psql_db() { "$psql_bin" -X -q -At -d "$DUET_TEST_CONNINFO dbname=$db" -c "$1"; }

fail() {
	echo "FAIL: $*"
	echo "---- srmd log (last 60 lines) ----"
	tail -n 60 "$log" 2>/dev/null
	exit 1
}
note() { echo "ok: $*"; }

ctl() { "$srmctl_bin" -s "$sock" "$@"; }

# expect_rc CODE COMMAND...: run it, compare its exit status; output in $out.
expect_rc() {
	want=$1
	shift
	out=$("$@" 2>&1)
	got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want: $out"
}

# json_get PATH: read JSON on stdin, print the value at a dotted path.
json_get() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[k]
print("null" if d is None else d)' "$1"
}
status_get() { ctl status --json 2>/dev/null | json_get "$1" 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.1 s until COMMAND succeeds.
wait_for() {
	limit=$(($1 * 10))
	what=$2
	shift 2
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -ge "$limit" ] && fail "timed out waiting for: $what"
		sleep 0.1
	done
}
state_is() { [ "$(status_get state)/$(status_get reason)" = "$1/$2" ]; }
pid_alive() { kill -0 "$1" 2>/dev/null; }
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
engine_pid_not() {
	p=$(status_get engine.pid)
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$1" ]
}

write_config() {
	cat >"$conf" <<EOF
[node]
id = 1
name = localhost
domain = $domain
run_dir = $tmp/run

[database]
conninfo = $DUET_TEST_CONNINFO dbname=$db

[xmpp]
scram_iterations = 4096

[srm]
engine_program = $root/tests/lib/fake-engine.py
control_socket = $sock
engine_health_interval = 200ms
EOF
}

start_srmd() {
	FAKE_ENGINE_LOG=$englog FAKE_ENGINE_HEALTH_FILE=$healthfile \
		"$srmd_bin" -c "$conf" >>"$log" 2>&1 &
	srmd_pid=$!
}

# stop_srmd: SIGTERM, expect exit 0 within SECONDS.
stop_srmd() {
	kill -TERM "$srmd_pid" || fail "srmd is not running"
	wait_for "$1" "srmd to exit after SIGTERM" pid_gone "$srmd_pid"
	wait "$srmd_pid"
	rc=$?
	[ "$rc" -eq 0 ] || fail "srmd exited $rc after SIGTERM"
	srmd_pid=""
}

# check_scram USER PASSWORD: the stored SCRAM keys in the database derive from PASSWORD.
check_scram() {
	row=$(psql_db "SELECT encode(sha1_salt,'hex'), sha1_iter, encode(sha1_stored,'hex'),
		encode(sha1_server,'hex'), encode(sha256_salt,'hex'), sha256_iter,
		encode(sha256_stored,'hex'), encode(sha256_server,'hex')
		FROM users WHERE username = '$1'") || fail "cannot read credentials of $1"
	[ -n "$row" ] || fail "no row for user $1"
	printf '%s' "$row" | python3 -c '
import hashlib, hmac, sys
f = sys.stdin.read().strip().split("|")
pw = sys.argv[1].encode()
for (salt, it, stored, server), h in ((f[0:4], "sha1"), (f[4:8], "sha256")):
    salted = hashlib.pbkdf2_hmac(h, pw, bytes.fromhex(salt), int(it))
    client_key = hmac.new(salted, b"Client Key", h).digest()
    ok = hashlib.new(h, client_key).hexdigest() == stored and \
         hmac.new(salted, b"Server Key", h).hexdigest() == server
    if not ok or int(it) != 4096 or len(bytes.fromhex(salt)) < 16:
        sys.exit("%s credentials do not match the password" % h)
' "$2" || fail "SCRAM credentials of $1 are wrong"
}

psql_admin "CREATE DATABASE $db" >/dev/null || fail "cannot create scratch database $db"
write_config
: >"$log"

# --- start-up ----------------------------------------------------------------------------
# The first start is under a stand-in for systemd's notify socket (sd_notify(3)): srmd must
# say READY=1 and report its state as STATUS=.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode(errors="replace") + "\n")
        f.flush()' "$tmp/notify.sock" "$tmp/notify.log" &
notify_pid=$!
wait_for 10 "the notify socket" test -S "$tmp/notify.sock"
export NOTIFY_SOCKET="$tmp/notify.sock"
start_srmd
unset NOTIFY_SOCKET
wait_for 30 "status Normal" state_is Normal Normal
wait_for 10 "READY=1 on the notify socket" grep -qx READY=1 "$tmp/notify.log"
wait_for 10 "STATUS= Normal on the notify socket" \
	grep -qx "STATUS=node 1: Normal (Normal)" "$tmp/notify.log"
kill "$notify_pid"
notify_pid=""
engine_pid=$(status_get engine.pid)
[ "$engine_pid" -gt 0 ] 2>/dev/null || fail "no engine pid in status"
pid_alive "$engine_pid" || fail "engine pid $engine_pid not running"
[ "$(status_get engine.restarts)" = 0 ] || fail "restarts not 0 at start"
[ "$(status_get database.up)" = True ] || fail "database not up in status"
[ "$(status_get sessions)" = 0 ] || fail "sessions from the engine's stats missing"
[ "$(status_get users)" = 0 ] || fail "users from the engine's stats missing"
[ "$(status_get node_id)" = 1 ] || fail "node id"
[ "$(status_get domain)" = "$domain" ] || fail "domain"
grep -q "^$engine_pid hello 1$" "$englog" || fail "engine did not get 'hello 1'"
grep -q "^$engine_pid serve 1$" "$englog" || fail "engine did not get 'serve 1'"
grep -q "^$engine_pid health " "$englog" || fail "engine got no health checks"
expect_rc 0 ctl status
echo "$out" | grep -q '^state: *Normal$' || fail "text status: $out"
echo "$out" | grep -q "^engine: *ready, pid $engine_pid, health ok$" || fail "text status: $out"
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode is not 0600"
[ "$(psql_db 'SELECT max(version) FROM schema_version')" -ge 1 ] || fail "schema not migrated"
note "srmd reached Normal with engine pid $engine_pid"

# A second srmd must refuse the live socket.
"$srmd_bin" -c "$conf" >"$tmp/second.log" 2>&1
rc=$?
[ "$rc" -ne 0 ] || fail "a second srmd started on the same socket"
grep -q "another srmd" "$tmp/second.log" || fail "second srmd: $(cat "$tmp/second.log")"
pid_alive "$srmd_pid" || fail "first srmd died"
expect_rc 0 ctl status
note "second srmd refused"

# --- users ---------------------------------------------------------------------------------
expect_rc 0 ctl user add "alice@$domain" secret1
check_scram alice secret1
expect_rc 1 ctl user add alice other
echo "$out" | grep -q "exists" || fail "duplicate: $out"
expect_rc 1 ctl user add "ALICE@EXAMPLE.TEST" other
echo "$out" | grep -q "exists" || fail "case-folded duplicate: $out"
expect_rc 1 ctl user add bob@other.test pw
echo "$out" | grep -q "wrong-domain" || fail "wrong domain: $out"
expect_rc 1 ctl user add "bad user@$domain" pw
echo "$out" | grep -q "bad-jid" || fail "bad JID with space: $out"
expect_rc 1 ctl user add "bob@$domain/res" pw
echo "$out" | grep -q "bad-jid" || fail "bad JID with resource: $out"
expect_rc 1 ctl user add "@$domain" pw
echo "$out" | grep -q "bad-jid" || fail "empty localpart: $out"
long=$(python3 -c 'print("x" * 1024)')
expect_rc 1 ctl user add "$long" pw
echo "$out" | grep -q "bad-jid" || fail "1024-byte localpart: $out"
expect_rc 2 ctl user add carol
expect_rc 2 ctl user add carol "$(printf 'a\tb')"
expect_rc 0 ctl user add Carol pw-carol
printf 'from-stdin\n' | ctl user add dave - >/dev/null 2>&1 || fail "password from stdin"
check_scram dave from-stdin
expect_rc 0 ctl user list
printf '%s\n' "$out" | grep -qx "alice@$domain 1" || fail "list: $out"
printf '%s\n' "$out" | grep -qx "carol@$domain 1" || fail "list (lowercased): $out"
[ "$(ctl user list --json | json_get count)" = 3 ] || fail "list --json count"
note "user add and list"

expect_rc 0 ctl user passwd "alice@$domain" secret2
check_scram alice secret2
grep -q " kick alice@$domain$" "$englog" || fail "passwd did not kick alice"
expect_rc 1 ctl user passwd nobody pw
echo "$out" | grep -q "not-found" || fail "passwd of unknown user: $out"
expect_rc 0 ctl user del --yes carol
grep -q " kick carol@$domain$" "$englog" || fail "del did not kick carol"
expect_rc 1 ctl user del --yes carol
echo "$out" | grep -q "not-found" || fail "second delete: $out"
expect_rc 0 ctl user list
printf '%s\n' "$out" | grep -q "^carol@" && fail "carol still listed: $out"
[ "$(psql_db "SELECT count(*) FROM users")" = 2 ] || fail "users table count"
note "user passwd and del (with kick)"

# --- srmctl usage and reachability ---------------------------------------------------------
expect_rc 2 ctl
expect_rc 2 ctl frobnicate
expect_rc 2 ctl status extra
expect_rc 2 ctl user add alice pw --json
expect_rc 0 ctl help
expect_rc 3 "$srmctl_bin" -s "$tmp/run/nobody.sock" status
echo "$out" | grep -q "cannot reach srmd" || fail "unreachable message: $out"
# Raw protocol: a wrong version, an unknown command, an escaped body line.
raw=$(printf '2\tstatus\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); print(s.makefile().readline().strip())' "$sock")
case "$raw" in "error version "*) ;; *) fail "wrong version answered: $raw" ;; esac
expect_rc 2 ctl failover
echo "$out" | grep -q -- "--yes" || fail "failover without --yes and a terminal: $out"
expect_rc 4 ctl failover --yes
echo "$out" | grep -q "no-peer" || fail "failover on a single node: $out"
expect_rc 4 ctl replication
note "srmctl exit codes"

expect_rc 0 ctl status --brief
printf '%s\n' "$out" | grep -Eq '^1 \* +localhost +Normal +Normal +[0-9T:-]+Z +1 +ok +0$' ||
	fail "status --brief: $out"
expect_rc 0 ctl history
printf '%s\n' "$out" | grep -q ' Initializing (Initialization) *Normal (Normal)$' ||
	fail "history: $out"
expect_rc 0 ctl user show "alice@$domain"
printf '%s\n' "$out" | grep -q '^served by: *node 1$' || fail "user show: $out"
note "srmctl status --brief, history, user show"

# --- engine health problems, crash, hang ---------------------------------------------------
echo no-listener >"$healthfile"
wait_for 10 "Critical Service Down" state_is "Running in Failed Mode" "Critical Service Down"
echo db-down >"$healthfile"
wait_for 10 "Database Failure from engine" state_is "Running in Failed Mode" "Database Failure"
rm -f "$healthfile"
wait_for 10 "Normal again" state_is Normal Normal
note "engine health answers drive the state"

kill -KILL "$engine_pid"
wait_for 10 "engine restarted after kill -9" engine_pid_not "$engine_pid"
wait_for 10 "Normal after restart" state_is Normal Normal
[ "$(status_get engine.restarts)" = 1 ] || fail "restarts not 1 after kill -9"
expect_rc 0 ctl status
echo "$out" | grep -q "^restarts: *1 (last exit: killed by signal 9)$" || fail "status: $out"
grep -q "Running in Failed Mode (Critical Service Down)" "$log" ||
	fail "the crash did not show as Critical Service Down"
[ "$(ctl history 2 --json | json_get transitions | grep -c 'Running in Failed Mode')" -ge 1 ] ||
	fail "history lacks the crash: $(ctl history)"
engine_pid=$(status_get engine.pid)
note "kill -9: engine restarted as $engine_pid"

kill -STOP "$engine_pid"
wait_for 15 "hung engine replaced" engine_pid_not "$engine_pid"
wait_for 10 "Normal after hang" state_is Normal Normal
[ "$(status_get engine.restarts)" = 2 ] || fail "restarts not 2 after SIGSTOP"
grep -q "hung" "$log" || fail "no hang logged"
pid_gone "$engine_pid" || fail "stopped engine $engine_pid still exists"
engine_pid=$(status_get engine.pid)
note "SIGSTOP: hung engine killed and restarted as $engine_pid"

# --- database outage -----------------------------------------------------------------------
psql_admin "ALTER DATABASE $db ALLOW_CONNECTIONS false" >/dev/null || fail "alter database"
psql_admin "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'" \
	>/dev/null || fail "terminate backends"
wait_for 20 "Database Failure" state_is "Running in Failed Mode" "Database Failure"
[ "$(status_get database.up)" = False ] || fail "database.up still true"
expect_rc 1 ctl user add erin pw
echo "$out" | grep -q "database" || fail "user add during outage: $out"
psql_admin "ALTER DATABASE $db ALLOW_CONNECTIONS true" >/dev/null || fail "alter database"
wait_for 30 "Normal after the database is back" state_is Normal Normal
expect_rc 0 ctl user add erin pw
note "database outage detected and recovered"

# --- SIGTERM -------------------------------------------------------------------------------
stop_srmd 10
pid_gone "$engine_pid" || fail "engine $engine_pid survived srmd's stop"
grep -q "^$engine_pid stop$" "$englog" || fail "engine was not sent stop"
grep -q "acknowledged stop" "$log" || fail "no stop acknowledgement logged"
[ -e "$sock" ] && fail "socket left behind after a clean exit"
note "SIGTERM: engine stopped, srmd exited 0"

# --- configuration fault: exit 2 is not restarted -------------------------------------------
FAKE_ENGINE_EXIT=2 start_srmd
wait_for 20 "Start of Critical Services Failed" \
	state_is "Running in Failed Mode" "Start of Critical Services Failed"
sleep 1
[ "$(status_get engine.restarts)" = 0 ] || fail "a configuration fault was restarted"
[ "$(status_get engine.state)" = fault ] || fail "engine state not fault"
stop_srmd 10
note "exit code 2: reported, not restarted"

# --- srmd killed: the engine follows, the stale socket is cleared ---------------------------
start_srmd
wait_for 30 "Normal" state_is Normal Normal
engine_pid=$(status_get engine.pid)
kill -KILL "$srmd_pid"
wait "$srmd_pid" 2>/dev/null
srmd_pid=""
wait_for 10 "orphaned engine to exit" pid_gone "$engine_pid"
[ -S "$sock" ] || fail "expected a stale socket after kill -9"
note "kill -9 srmd: engine exited on EOF"

# --- an engine that ignores stop is killed after 5 s ----------------------------------------
FAKE_ENGINE_IGNORE_STOP=1 start_srmd
wait_for 30 "Normal after a stale socket" state_is Normal Normal
grep -q "removing stale socket" "$log" || fail "stale socket not reported"
engine_pid=$(status_get engine.pid)
stop_srmd 15
pid_gone "$engine_pid" || fail "engine ignoring stop survived"
grep -q "still running 5000 ms after stop: sending SIGKILL" "$log" || fail "no SIGKILL logged"
note "engine ignoring stop: SIGKILL after 5 s"

echo "PASS: srmd single node"
exit 0
