# shellcheck shell=sh
# A private, throw-away PostgreSQL cluster for tests.  Source this file, then:
#   pg_start DIR   create DIR/pgdata, start the server with its unix socket in DIR, create the
#                  database `duet` (role `duet`, trust auth); sets PGHOST, PGPORT, PGUSER,
#                  PGDATABASE.  Prints nothing on success; on failure prints the server log.
#   pg_stop DIR    stop it (fast shutdown).
# DIR must be short: a unix socket path (DIR/.s.PGSQL.PORT) is limited to 107 bytes.
# As root the server runs as the `postgres` user (PostgreSQL refuses root) and DIR is chowned.

pg_bindir() {
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && echo "$d"
	done | sort -V | tail -n 1
}

# Run a PostgreSQL server binary as the right user.
pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	pg_dir=$1
	pg_bin=$(pg_bindir)
	if [ -z "$pg_bin" ]; then
		echo "pg_start: no PostgreSQL found under /usr/lib/postgresql/*/bin" >&2
		return 1
	fi
	if [ "${#pg_dir}" -gt 80 ]; then
		echo "pg_start: $pg_dir is too long for a unix socket path" >&2
		return 1
	fi
	mkdir -p "$pg_dir" || return 1
	[ "$(id -u)" -eq 0 ] && chown postgres: "$pg_dir"
	# A port of our own so that clusters of parallel runs never collide on the socket name.
	pg_port=${PGPORT_TEST:-$((20000 + $$ % 20000))}

	pg_as_owner "$pg_bin/initdb" -D "$pg_dir/pgdata" -A trust -U duet -E UTF8 \
		--no-sync >"$pg_dir/initdb.log" 2>&1 || {
		cat "$pg_dir/initdb.log" >&2
		return 1
	}
	cat >>"$pg_dir/pgdata/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$pg_dir'
port = $pg_port
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
	pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir/pgdata" -l "$pg_dir/server.log" -w -t 30 \
		start >/dev/null 2>&1 || {
		echo "pg_start: server did not start; log:" >&2
		cat "$pg_dir/server.log" >&2
		return 1
	}
	PGHOST=$pg_dir
	PGPORT=$pg_port
	PGUSER=duet
	PGDATABASE=duet
	export PGHOST PGPORT PGUSER PGDATABASE
	"$pg_bin/psql" -X -q -d postgres -c "CREATE DATABASE duet" >/dev/null || {
		echo "pg_start: cannot create database duet" >&2
		return 1
	}
}

pg_stop() {
	pg_dir=$1
	pg_bin=$(pg_bindir)
	[ -f "$pg_dir/pgdata/postmaster.pid" ] || return 0
	pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir/pgdata" -m fast -w stop >/dev/null 2>&1
}
