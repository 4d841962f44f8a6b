#include "lib/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Migration N is migrations[N-1].  Never edit a released migration: add a new one. */
static const char *const migrations[] = {
	/* 1: users, rosters, offline messages, vCards, last activity */
	"CREATE TABLE users ("
	"  username text PRIMARY KEY,"
	"  home_node int NOT NULL DEFAULT 1,"
	"  sha1_salt bytea NOT NULL, sha1_iter int NOT NULL,"
	"  sha1_stored bytea NOT NULL, sha1_server bytea NOT NULL,"
	"  sha256_salt bytea NOT NULL, sha256_iter int NOT NULL,"
	"  sha256_stored bytea NOT NULL, sha256_server bytea NOT NULL,"
	"  roster_ver bigint NOT NULL DEFAULT 0,"
	"  created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE roster_items ("
	"  username text NOT NULL REFERENCES users ON DELETE CASCADE,"
	"  contact text NOT NULL,"
	"  name text,"
	"  subscription text NOT NULL DEFAULT 'none'"
	"    CHECK (subscription IN ('none','to','from','both')),"
	"  ask_out boolean NOT NULL DEFAULT false,"
	"  pending_in boolean NOT NULL DEFAULT false,"
	"  pending_in_stanza text,"
	"  preapproved boolean NOT NULL DEFAULT false,"
	"  visible boolean NOT NULL DEFAULT true,"
	"  groups text[] NOT NULL DEFAULT '{}',"
	"  ver bigint NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (username, contact));"
	"CREATE INDEX roster_items_contact ON roster_items (contact);"
	"CREATE TABLE offline_messages ("
	"  id bigserial PRIMARY KEY,"
	"  username text NOT NULL REFERENCES users ON DELETE CASCADE,"
	"  stanza text NOT NULL,"
	"  created_at timestamptz NOT NULL DEFAULT now());"
	"CREATE INDEX offline_messages_user ON offline_messages (username, id);"
	"CREATE TABLE vcards ("
	"  username text PRIMARY KEY REFERENCES users ON DELETE CASCADE,"
	"  vcard text NOT NULL);"
	"CREATE TABLE last_activity ("
	"  username text PRIMARY KEY REFERENCES users ON DELETE CASCADE,"
	"  logout_at timestamptz NOT NULL,"
	"  status text NOT NULL DEFAULT '');",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
/* Arbitrary constant naming our advisory lock. */
#define SCHEMA_LOCK_KEY "4242001"

int schema_latest_version(void) { return N_MIGRATIONS; }

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

int schema_current_version(PGconn *conn, char *err, size_t errlen)
{
	PGresult *r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		/* A missing table means an empty database. */
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		int missing = state && strcmp(state, "42P01") == 0;
		if (!missing)
			snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		PQclear(r);
		return missing ? 0 : -1;
	}
	int v = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

int schema_migrate(PGconn *conn, char *err, size_t errlen)
{
	if (exec_ok(conn, "SET client_min_messages = warning", err, errlen) < 0 ||
	    exec_ok(conn, "SELECT pg_advisory_lock(" SCHEMA_LOCK_KEY ")", err, errlen) < 0)
		return -1;
	int rc = exec_ok(conn,
			 "CREATE TABLE IF NOT EXISTS schema_version ("
			 " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
			 err, errlen);
	int v = rc < 0 ? -1 : schema_current_version(conn, err, errlen);
	if (v < 0) {
		rc = -1;
		v = N_MIGRATIONS; /* nothing to apply */
	}
	for (int i = v; rc == 0 && i < N_MIGRATIONS; i++) {
		char mark[96];
		snprintf(mark, sizeof mark, "INSERT INTO schema_version (version) VALUES (%d)",
			 i + 1);
		if (exec_ok(conn, "BEGIN", err, errlen) < 0 ||
		    exec_ok(conn, migrations[i], err, errlen) < 0 ||
		    exec_ok(conn, mark, err, errlen) < 0 ||
		    exec_ok(conn, "COMMIT", err, errlen) < 0) {
			char keep[512];
			snprintf(keep, sizeof keep, "migration %d: %s", i + 1, err);
			snprintf(err, errlen, "%s", keep);
			PGresult *r = PQexec(conn, "ROLLBACK");
			PQclear(r);
			rc = -1;
		}
	}
	char ignore[16];
	exec_ok(conn, "SELECT pg_advisory_unlock(" SCHEMA_LOCK_KEY ")", ignore, sizeof ignore);
	return rc;
}
