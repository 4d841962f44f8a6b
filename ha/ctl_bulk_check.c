/* The check for duplicate and invalid user IDs (inventory-part2 §14.6, ch.18; the manual's
 * Cisco IM and Presence Data Monitor and `utils users validate`; docs/bulk-tools.md).
 *
 * Every [srm] user_check_interval (the manual's User Check Interval, default 30 min) and on
 * `srmctl users check`, srmd reads every account of its database and reports:
 *   - duplicate user IDs: accounts whose IDs are one identity for XMPP, equal after Unicode
 *     compatibility normalization (NFKC) and case folding ("Alice", "alice", "ａｌｉｃｅ"):
 *     srmd itself never creates such twins, but replication from an older node, SQL by
 *     hand or a restored backup can;
 *   - invalid user IDs: accounts whose ID breaks the rules srmd provisions by (RFC 7622
 *     localpart, lower case, at most 1023 bytes): nobody can log in as them reliably.
 * Results are logged (a warning naming the manual's alarm, DuplicateUserid / InvalidUserid,
 * with at most 10 users, as the manual's troubleshooter shows) and kept for `users check`.
 * On a pair both databases hold the same accounts, so each node checks its own. */
#include "ha/ctl_bulk.h"

#include "ha/ha_wire.h"
#include "ha/srm.h"
#include "lib/json_out.h"
#include "lib/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_USERS_MAX 10
#define WAITERS_MAX 16

struct bulk_check {
	struct srm *srm;
	struct event *timer;
	struct pg_req *req;
	int running_periodic;
	struct ctl_conn *waiters[WAITERS_MAX];
	int nwaiters;
	/* the last result */
	int have;
	time_t at;
	long users, duplicates, invalid, runs;
	int last_ok;
	char error[300];
	struct evbuffer *text, *json; /* the problem lists, ready to print */
};

static void check_timer_arm(struct bulk_check *bc)
{
	long ms = bc->srm->cfg.user_check_interval_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(bc->timer, &tv);
}

static void answer(struct bulk_check *bc, struct ctl_conn *c);

static void on_check_rows(void *arg, PGresult *res, const char *errmsg)
{
	struct bulk_check *bc = arg;
	bc->req = NULL;
	bc->have = 1;
	bc->at = time(NULL);
	bc->runs++;
	evbuffer_drain(bc->text, evbuffer_get_length(bc->text));
	evbuffer_drain(bc->json, evbuffer_get_length(bc->json));
	bc->users = bc->duplicates = bc->invalid = 0;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		bc->last_ok = 0;
		bulk_db_error(res, errmsg, bc->error, sizeof bc->error);
		log_warnx("user check: cannot read the accounts: %s", bc->error);
	} else {
		bc->last_ok = 1;
		bc->error[0] = '\0';
		int n = PQntuples(res);
		bc->users = n;
		/* Rows come grouped by identity key; count > 1 marks a duplicate group. */
		struct evbuffer *dt = evbuffer_new(), *dj = evbuffer_new();
		struct evbuffer *it = evbuffer_new(), *ij = evbuffer_new();
		if (!dt || !dj || !it || !ij) {
			bc->last_ok = 0;
			snprintf(bc->error, sizeof bc->error, "out of memory");
		}
		long logged_dup = 0, logged_inv = 0;
		for (int i = 0; bc->last_ok && i < n; i++) {
			const char *user = PQgetvalue(res, i, 0), *home = PQgetvalue(res, i, 1);
			const char *key = PQgetvalue(res, i, 2);
			long count = atol(PQgetvalue(res, i, 3));
			char shown[2 * 1024 + 16];
			bulk_printable(user, strlen(user), shown, sizeof shown);
			if (count > 1) {
				int first = i == 0 || strcmp(PQgetvalue(res, i - 1, 2), key) != 0;
				if (first) {
					char k[2 * 1024 + 16];
					bulk_printable(key, strlen(key), k, sizeof k);
					bc->duplicates++;
					evbuffer_add_printf(dt, "User ID: %s\n  User ID        Home Node\n",
							    k);
					evbuffer_add_printf(dj, "%s{\"id\":", bc->duplicates > 1 ? "," : "");
					json_out_string(dj, key);
					evbuffer_add_printf(dj, ",\"users\":[");
				}
				evbuffer_add_printf(dt, "  %-14s %s\n", shown, home);
				evbuffer_add_printf(dj, "%s{\"user\":", first ? "" : ",");
				json_out_string(dj, user);
				evbuffer_add_printf(dj, ",\"home_node\":%s}", home);
				int last = i == n - 1 || strcmp(PQgetvalue(res, i + 1, 2), key) != 0;
				if (last)
					evbuffer_add_printf(dj, "]}");
				if (logged_dup++ < LOG_USERS_MAX)
					log_warnx("user check: alarm DuplicateUserid: %s (home node %s) "
						  "is the same user ID as another account",
						  shown, home);
			}
			if (!ha_localpart_valid(user)) {
				bc->invalid++;
				evbuffer_add_printf(it, "  %-14s %s\n", shown, home);
				evbuffer_add_printf(ij, "%s{\"user\":", bc->invalid > 1 ? "," : "");
				json_out_string(ij, user);
				evbuffer_add_printf(ij, ",\"home_node\":%s}", home);
				if (logged_inv++ < LOG_USERS_MAX)
					log_warnx("user check: alarm InvalidUserid: %s (home node %s) is "
						  "not a valid user ID",
						  shown, home);
			}
		}
		if (bc->last_ok) {
			evbuffer_add_printf(bc->text, "Users with Duplicate User IDs\n-----\n");
			if (!bc->duplicates)
				evbuffer_add_printf(bc->text, "  none\n");
			evbuffer_add_buffer(bc->text, dt);
			evbuffer_add_printf(bc->text, "Users with Invalid User IDs\n-----\n");
			evbuffer_add_printf(bc->text, bc->invalid ? "  User ID        Home Node\n"
								  : "  none\n");
			evbuffer_add_buffer(bc->text, it);
			evbuffer_add_printf(bc->json, "\"duplicates\":[");
			evbuffer_add_buffer(bc->json, dj);
			evbuffer_add_printf(bc->json, "],\"invalid\":[");
			evbuffer_add_buffer(bc->json, ij);
			evbuffer_add_printf(bc->json, "]");
		}
		if (dt)
			evbuffer_free(dt);
		if (dj)
			evbuffer_free(dj);
		if (it)
			evbuffer_free(it);
		if (ij)
			evbuffer_free(ij);
		if (bc->duplicates || bc->invalid)
			log_warnx("user check: %ld users, %ld duplicate user IDs, %ld invalid user "
				  "IDs (srmctl users check lists them)",
				  bc->users, bc->duplicates, bc->invalid);
		else
			log_info("user check: %ld users, no duplicate or invalid user IDs",
				 bc->users);
	}
	for (int i = 0; i < bc->nwaiters; i++)
		answer(bc, bc->waiters[i]);
	bc->nwaiters = 0;
	if (bc->running_periodic) {
		bc->running_periodic = 0;
		check_timer_arm(bc);
	}
}

static int check_run(struct bulk_check *bc)
{
	if (bc->req)
		return 0; /* one run at a time: join it */
	/* Identity key: NFKC then lower case (the database's case mapping). */
	bc->req = pg_query(bc->srm->pool,
			   "SELECT username, home_node, k, count(*) OVER (PARTITION BY k)"
			   " FROM (SELECT username, home_node,"
			   "   lower(normalize(username, NFKC)) AS k FROM users) x"
			   " ORDER BY k COLLATE \"C\", username COLLATE \"C\"",
			   0, NULL, on_check_rows, bc);
	return bc->req ? 0 : -1;
}

static void on_check_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bulk_check *bc = arg;
	bc->running_periodic = 1;
	if (check_run(bc) < 0) {
		log_warnx("user check: out of memory");
		bc->running_periodic = 0;
		check_timer_arm(bc);
	}
}

struct bulk_check *bulk_check_new(struct srm *srm)
{
	struct bulk_check *bc = calloc(1, sizeof *bc);
	if (!bc)
		return NULL;
	bc->srm = srm;
	bc->timer = evtimer_new(srm->base, on_check_timer, bc);
	bc->text = evbuffer_new();
	bc->json = evbuffer_new();
	if (!bc->timer || !bc->text || !bc->json) {
		bulk_check_free(bc);
		return NULL;
	}
	check_timer_arm(bc);
	return bc;
}

static void waiter_cancel(void *arg);

void bulk_check_free(struct bulk_check *bc)
{
	if (!bc)
		return;
	if (bc->req)
		pg_req_cancel(bc->req);
	if (bc->timer)
		event_free(bc->timer);
	if (bc->text)
		evbuffer_free(bc->text);
	if (bc->json)
		evbuffer_free(bc->json);
	free(bc);
}

static void answer(struct bulk_check *bc, struct ctl_conn *c)
{
	char when[32] = "-";
	struct tm tm;
	if (bc->have && gmtime_r(&bc->at, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	long interval_s = bc->srm->cfg.user_check_interval_ms / 1000;
	if (!bc->last_ok) {
		ctl_reply_error(c, "database", "user check: %s", bc->error);
		return;
	}
	if (ctl_conn_json(c)) {
		ctl_body_printf(c, "{\"checked_at\":\"%s\",\"node_id\":%ld,\"users\":%ld,"
				   "\"duplicate_count\":%ld,\"invalid_count\":%ld,"
				   "\"interval_s\":%ld,\"runs\":%ld,",
				when, bc->srm->cfg.node_id, bc->users, bc->duplicates, bc->invalid,
				interval_s, bc->runs);
		size_t n = evbuffer_get_length(bc->json);
		ctl_body_printf(c, "%.*s}\n", (int)n, (char *)evbuffer_pullup(bc->json, -1));
	} else {
		ctl_body_printf(c, "user check: node %ld, %s, %ld users (every %ld s)\n",
				bc->srm->cfg.node_id, when, bc->users, interval_s);
		size_t n = evbuffer_get_length(bc->text);
		ctl_body_printf(c, "%.*s", (int)n, (char *)evbuffer_pullup(bc->text, -1));
		ctl_body_printf(c, "result: %ld duplicate user IDs, %ld invalid user IDs\n",
				bc->duplicates, bc->invalid);
	}
	ctl_reply_ok(c);
}

static void waiter_cancel(void *arg)
{
	struct ctl_conn *c = arg;
	struct srm *srm = ctl_conn_ctx(c);
	struct bulk_check *bc = srm->bulk_check;
	for (int i = 0; bc && i < bc->nwaiters; i++) {
		if (bc->waiters[i] == c) {
			bc->waiters[i] = bc->waiters[--bc->nwaiters];
			break;
		}
	}
}

void ctl_bulk_users_check(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct bulk_check *bc = srm->bulk_check;
	if (!bc) {
		ctl_reply_error(c, "internal", "the user check is not running");
		return;
	}
	if (bc->nwaiters == WAITERS_MAX) {
		ctl_reply_error(c, "busy", "too many user checks waiting");
		return;
	}
	if (check_run(bc) < 0) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	bc->waiters[bc->nwaiters++] = c;
	ctl_conn_set_cancel(c, waiter_cancel, c);
}
