/* Replication (replication/, lib/schema.c migration 2) against a real PostgreSQL: two
 * scratch databases play node 1 and node 2, two struct repl talk through an in-memory link
 * that delivers APP frames in order and can be cut (frames in flight lost, sends refused).
 * tests/run sets DUET_TEST_CONNINFO; without it the tests fail rather than pass vacuously. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "lib/log.h"
#include "lib/pg.h"
#include "lib/schema.h"
#include "replication/repl_internal.h" /* repl_apply_batch, for direct apply tests */
#include "replication/replication.h"

/* ---- helpers: blocking SQL ---- */

static void notice_quiet(void *arg, const char *message) {}

static PGconn *db_connect(const char *info)
{
	PGconn *c = PQconnectdb(info);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", info, PQerrorMessage(c));
	PQsetNoticeProcessor(c, notice_quiet, NULL);
	return c;
}

static void db_exec(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void db_exec(PGconn *c, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* First column of the first row as text into out ("" for NULL). */
static void db_text(PGconn *c, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void db_text(PGconn *c, char *out, size_t cap, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static long long db_int(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long db_int(PGconn *c, const char *fmt, ...)
{
	char sql[4096], v[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	db_text(c, v, sizeof v, "%s", sql);
	return atoll(v);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- two nodes and a link ---- */

struct frame {
	struct frame *next;
	uint16_t subtype;
	size_t len;
	uint8_t *p;
};

struct node {
	int idx;
	uint32_t id;
	char conninfo[512];
	PGconn *db;
	struct pg_pool *pool;
	struct repl *repl;
	struct frame *out_head, *out_tail; /* frames this node sent, not yet delivered */
	uint64_t sent_frames[8];           /* by subtype - 256 */
};

static struct event_base *base;
static struct node N[2];
static int link_up;
static struct event *ev_deliver;
/* Test hook: drop the k-th BATCH node 0 sends (1-based), 0 = none. */
static int drop_batch_at, batches_seen;

static void frames_drop(struct node *n)
{
	struct frame *f = n->out_head;
	while (f) {
		struct frame *next = f->next;
		free(f->p);
		free(f);
		f = next;
	}
	n->out_head = n->out_tail = NULL;
}

static int fake_send(void *arg, uint16_t subtype, const void *p, size_t len)
{
	struct node *n = arg;
	if (!link_up)
		return -1;
	assert_true(subtype >= REPL_SUBTYPE_FIRST && subtype <= REPL_SUBTYPE_LAST);
	assert_true(len <= REPL_FRAME_MAX);
	if (subtype - 256 < 8)
		n->sent_frames[subtype - 256]++;
	if (n->idx == 0 && subtype == REPL_SUBTYPE_BATCH && ++batches_seen == drop_batch_at)
		return 0; /* "sent", then lost */
	struct frame *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->p = malloc(len ? len : 1);
	assert_non_null(f->p);
	memcpy(f->p, p, len);
	f->len = len;
	f->subtype = subtype;
	if (n->out_tail)
		n->out_tail->next = f;
	else
		n->out_head = f;
	n->out_tail = f;
	event_active(ev_deliver, EV_TIMEOUT, 0);
	return 0;
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < 2; i++) {
		struct node *n = &N[i], *peer = &N[1 - i];
		/* Only what is queued now: frames sent while delivering wait for the next round. */
		struct frame *f = n->out_head;
		n->out_head = n->out_tail = NULL;
		while (f) {
			struct frame *next = f->next;
			if (link_up)
				repl_on_app(peer->repl, f->subtype, f->p, f->len);
			free(f->p);
			free(f);
			f = next;
		}
	}
}

static void link_cut(void)
{
	link_up = 0;
	frames_drop(&N[0]);
	frames_drop(&N[1]);
}

/* A new connection (on_up / on_reconnect on both sides). */
static void link_connect(void)
{
	link_up = 1;
	repl_peer_up(N[0].repl);
	repl_peer_up(N[1].repl);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) { *(int *)arg = 1; }

static int run_until(int (*pred)(void *), void *arg, int ms)
{
	int expired = 0;
	struct event *t = event_new(base, -1, 0, on_deadline, &expired);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	assert_non_null(t);
	event_add(t, &tv);
	while (!pred(arg) && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return pred(arg);
}

static void run_for(int ms)
{
	int expired = 0;
	struct event *t = event_new(base, -1, 0, on_deadline, &expired);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(t, &tv);
	while (!expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static uint64_t db_head(struct node *n)
{
	return (uint64_t)db_int(n->db, "SELECT head FROM repl_local_state(0)");
}

struct sync_goal {
	uint64_t head[2];
	int64_t next_check;
};

/* Both directions applied and acknowledged up to the heads taken when waiting started. */
static int pred_synced(void *arg)
{
	struct sync_goal *g = arg;
	struct repl_status s0, s1;
	repl_status_get(N[0].repl, &s0);
	repl_status_get(N[1].repl, &s1);
	return s1.applied >= g->head[0] && s0.applied >= g->head[1] && s0.acked >= g->head[0] &&
	       s1.acked >= g->head[1] && !s0.receiving_resync && !s1.receiving_resync &&
	       s0.ship == REPL_INCREMENTAL && s1.ship == REPL_INCREMENTAL;
}

static void wait_synced(int ms)
{
	struct sync_goal g = {{db_head(&N[0]), db_head(&N[1])}, 0};
	if (!run_until(pred_synced, &g, ms)) {
		struct repl_status s0, s1;
		repl_status_get(N[0].repl, &s0);
		repl_status_get(N[1].repl, &s1);
		fail_msg("not synced: heads %llu/%llu; node1 applied %llu acked %llu ship %d;"
			 " node2 applied %llu acked %llu ship %d",
			 (unsigned long long)g.head[0], (unsigned long long)g.head[1],
			 (unsigned long long)s0.applied, (unsigned long long)s0.acked, s0.ship,
			 (unsigned long long)s1.applied, (unsigned long long)s1.acked, s1.ship);
	}
}

static void digest_text(struct node *n, char *out, size_t cap)
{
	PGresult *r = PQexec(n->db, "SELECT string_agg(tbl || ' ' || nrows || ' ' || digest,"
				    " E'\\n' ORDER BY tbl) FROM repl_digest()");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static void assert_digests_equal(void)
{
	char a[2048], b[2048];
	digest_text(&N[0], a, sizeof a);
	digest_text(&N[1], b, sizeof b);
	if (strcmp(a, b) != 0)
		fail_msg("digests differ:\nnode 1:\n%s\nnode 2:\n%s", a, b);
}

static void user_add(PGconn *db, const char *name, int home)
{
	db_exec(db,
		"INSERT INTO users (username, home_node, sha1_salt, sha1_iter, sha1_stored,"
		" sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server)"
		" VALUES ('%s', %d, '\\x0102', 4096, '\\xaa', '\\xbb', '\\x0304', 4096, '\\xcc',"
		" '\\xdd')",
		name, home);
}

static const char *base_conninfo;

static void node_start(struct node *n)
{
	struct repl_config cfg;
	repl_config_defaults(&cfg);
	cfg.node_id = n->id;
	cfg.peer_id = 3 - n->id;
	cfg.retry_ms = 200;
	n->pool = pg_pool_new(base, n->conninfo, 2);
	assert_non_null(n->pool);
	n->repl = repl_new(base, n->pool, &cfg, fake_send, n);
	assert_non_null(n->repl);
}

static void node_stop(struct node *n)
{
	repl_free(n->repl);
	n->repl = NULL;
	pg_pool_free(n->pool);
	n->pool = NULL;
	frames_drop(n);
}

static int group_setup(void **state)
{
	base_conninfo = getenv("DUET_TEST_CONNINFO");
	if (!base_conninfo || !*base_conninfo) {
		fprintf(stderr, "DUET_TEST_CONNINFO is not set: run through tests/run\n");
		return -1;
	}
	log_init("test_replication", getenv("REPL_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	PGconn *admin = db_connect(base_conninfo);
	for (int i = 0; i < 2; i++) {
		struct node *n = &N[i];
		n->idx = i;
		n->id = (uint32_t)i + 1;
		db_exec(admin, "DROP DATABASE IF EXISTS duet_repl_n%d", i + 1);
		db_exec(admin, "CREATE DATABASE duet_repl_n%d", i + 1);
		snprintf(n->conninfo, sizeof n->conninfo, "%s dbname=duet_repl_n%d", base_conninfo,
			 i + 1);
		n->db = db_connect(n->conninfo);
		char err[512];
		if (schema_migrate(n->db, err, sizeof err) < 0)
			fail_msg("migrate: %s", err);
		if (repl_node_set(n->db, n->id, err, sizeof err) < 0)
			fail_msg("repl_node_set: %s", err);
	}
	PQfinish(admin);
	base = event_base_new();
	ev_deliver = event_new(base, -1, 0, on_deliver, NULL);
	return base && ev_deliver ? 0 : -1;
}

static int group_teardown(void **state)
{
	for (int i = 0; i < 2; i++)
		if (N[i].db)
			PQfinish(N[i].db);
	if (ev_deliver)
		event_free(ev_deliver);
	if (base)
		event_base_free(base);
	return 0;
}

static int test_setup(void **state)
{
	link_up = 0;
	drop_batch_at = 0;
	batches_seen = 0;
	node_start(&N[0]);
	node_start(&N[1]);
	return 0;
}

static int test_teardown(void **state)
{
	link_cut();
	node_stop(&N[0]);
	node_stop(&N[1]);
	return 0;
}

/* ---- tests ---- */

/* Wire format: round trips and refusals (the fuzz target covers hostile input). */
static void test_wire(void **state)
{
	struct repl_hello h = {.version_min = 1, .version_max = 1, .node_id = 2, .schema_version = 2,
				.epoch = 77, .head = 10, .peer_epoch = 99, .applied = 4},
			  h2;
	uint8_t hb[REPL_HELLO_SIZE];
	assert_int_equal(repl_hello_encode(&h, hb), REPL_WIRE_OK);
	assert_int_equal(repl_hello_decode(hb, sizeof hb, &h2), REPL_WIRE_OK);
	assert_int_equal(h2.node_id, 2);
	assert_int_equal(h2.applied, 4);
	assert_int_equal(repl_hello_decode(hb, sizeof hb - 1, &h2), REPL_WIRE_SHORT);
	hb[3] = 1;
	assert_int_equal(repl_hello_decode(hb, sizeof hb, &h2), REPL_WIRE_FIELD);

	struct repl_builder b;
	assert_int_equal(repl_builder_init(&b, 0, 1, 42, 10, 20, 0), REPL_WIRE_OK);
	struct repl_change c = {.id = 11, .hlc = 5, .origin = 1, .op = 'U', .tbl = "users",
				.tbl_len = 5, .pk = "{\"username\": \"a\"}", .pk_len = 17,
				.data = "{\"x\": 1}", .data_len = 8};
	assert_int_equal(repl_builder_add(&b, &c), REPL_WIRE_OK);
	c.id = 11; /* not increasing */
	assert_int_equal(repl_builder_add(&b, &c), REPL_WIRE_ORDER);
	c.id = 15;
	c.op = 'D';
	c.data_len = 0;
	assert_int_equal(repl_builder_add(&b, &c), REPL_WIRE_OK);
	c.id = 16;
	c.tbl = "Users";
	assert_int_equal(repl_builder_add(&b, &c), REPL_WIRE_FIELD);
	c.tbl = "users";
	c.origin = 2; /* not the batch's origin */
	assert_int_equal(repl_builder_add(&b, &c), REPL_WIRE_FIELD);
	size_t len = repl_builder_finish(&b);
	struct repl_batch *d;
	assert_int_equal(repl_batch_decode(b.buf, len, &d), REPL_WIRE_OK);
	assert_int_equal(d->count, 2);
	assert_int_equal(d->after, 10);
	assert_int_equal(d->last, 15);
	assert_int_equal(d->changes[1].op, 'D');
	assert_memory_equal(d->changes[0].pk, "{\"username\": \"a\"}", 17);
	repl_batch_free(d);
	/* Truncated, extended, and a changed last id are all refused. */
	assert_int_not_equal(repl_batch_decode(b.buf, len - 1, &d), REPL_WIRE_OK);
	assert_null(d);
	uint8_t *big = malloc(len + 1);
	memcpy(big, b.buf, len);
	big[len] = 0;
	assert_int_not_equal(repl_batch_decode(big, len + 1, &d), REPL_WIRE_OK);
	big[31] = 16; /* last = 16, but the last change is 15 */
	assert_int_not_equal(repl_batch_decode(big, len, &d), REPL_WIRE_OK);
	free(big);
	repl_builder_release(&b);
}

/* Changes on node 1 of every replicated table reach node 2, in order; digests agree; nothing
 * applied shows up in node 2's outbox. */
static void test_ship_in_order(void **state)
{
	link_connect();
	wait_synced(10000); /* first contact: a full resync of the (empty) tables */
	PGconn *db = N[0].db;
	user_add(db, "alice", 1);
	user_add(db, "bob", 1);
	user_add(db, "carol", 2);
	db_exec(db, "UPDATE users SET roster_ver = 1 WHERE username = 'alice'");
	db_exec(db, "INSERT INTO roster_items (username, contact, name, subscription, groups, ver)"
		    " VALUES ('alice', 'bob@example.com', 'Bob \"the\" \\ builder', 'both',"
		    " '{Friends,Work}', 1)");
	db_exec(db, "INSERT INTO roster_items (username, contact) VALUES ('bob', 'alice@example.com')");
	db_exec(db, "UPDATE roster_items SET subscription = 'to', ver = 2 WHERE username = 'bob'");
	db_exec(db, "INSERT INTO offline_messages (username, stanza) VALUES"
		    " ('alice', '<message xmlns=\"jabber:client\"><body>hi ☃</body></message>'),"
		    " ('alice', '<message><body>second</body></message>')");
	long long first = db_int(db, "SELECT min(id) FROM offline_messages");
	db_exec(db, "DELETE FROM offline_messages WHERE id = %lld", first);
	db_exec(db, "INSERT INTO vcards (username, vcard) VALUES ('alice', '<vCard/>')");
	db_exec(db, "INSERT INTO last_activity (username, logout_at, status) VALUES"
		    " ('bob', '2024-01-02 03:04:05.678901+02', 'gone')");
	db_exec(db, "UPDATE users SET home_node = 2 WHERE username = 'bob'");
	wait_synced(10000);
	assert_digests_equal();
	PGconn *db2 = N[1].db;
	assert_int_equal(db_int(db2, "SELECT count(*) FROM offline_messages"), 1);
	assert_int_equal(db_int(db2, "SELECT home_node FROM users WHERE username = 'bob'"), 2);
	char v[256];
	db_text(db2, v, sizeof v,
		"SELECT name || '|' || groups::text FROM roster_items WHERE contact = 'bob@example.com'");
	assert_string_equal(v, "Bob \"the\" \\ builder|{Friends,Work}");
	/* No echo: node 2 captured nothing while applying. */
	assert_int_equal(db_int(db2, "SELECT count(*) FROM repl_outbox"), 0);
	struct repl_status s;
	repl_status_get(N[1].repl, &s);
	assert_true(s.batches_applied >= 1);
	assert_int_equal(s.lag_in, 0);
	assert_true(repl_caught_up(N[1].repl, db_head(&N[0])));
	/* Node 2's own change goes the other way. */
	db_exec(db2, "INSERT INTO vcards (username, vcard) VALUES ('carol', '<vCard>c</vCard>')");
	wait_synced(10000);
	assert_digests_equal();
	assert_int_equal(db_int(db, "SELECT count(*) FROM vcards WHERE username = 'carol'"), 1);
	assert_int_equal(db_int(db, "SELECT count(*) FROM repl_outbox WHERE origin = 2"), 0);
	/* Acknowledged rows are trimmed from node 1's outbox (every second). */
	run_for(1300);
	assert_int_equal(db_int(db, "SELECT count(*) FROM repl_outbox"), 0);
	assert_int_equal(db_int(db, "SELECT count(*) FROM replication_conflicts"), 0);
}

struct apply_wait {
	int done;
	struct repl_apply_result res;
	char err[256];
};

static void on_test_applied(void *arg, const struct repl_apply_result *res)
{
	struct apply_wait *w = arg;
	w->res = *res;
	w->res.conflict_list = NULL;
	snprintf(w->err, sizeof w->err, "%s", res->errmsg ? res->errmsg : "");
	w->res.errmsg = NULL;
	w->done = 1;
}

static int pred_done(void *arg) { return ((struct apply_wait *)arg)->done; }

/* Build a batch from node 1's outbox rows in (after, upto]. */
static struct repl_batch *batch_from_outbox(uint64_t after, uint64_t upto)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT id, hlc, prev_hlc, origin, prev_origin, op, tbl, pk::text, data::text"
		 " FROM repl_outbox WHERE id > %llu AND id <= %llu ORDER BY id",
		 (unsigned long long)after, (unsigned long long)upto);
	PGresult *r = PQexec(N[0].db, sql);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	uint64_t epoch = (uint64_t)db_int(N[0].db, "SELECT epoch FROM repl_node");
	struct repl_builder b;
	assert_int_equal(repl_builder_init(&b, 0, 1, epoch, after, upto, 0), REPL_WIRE_OK);
	for (int i = 0; i < PQntuples(r); i++) {
		struct repl_change c;
		memset(&c, 0, sizeof c);
		c.id = strtoull(PQgetvalue(r, i, 0), NULL, 10);
		c.hlc = strtoull(PQgetvalue(r, i, 1), NULL, 10);
		c.prev_hlc = strtoull(PQgetvalue(r, i, 2), NULL, 10);
		c.origin = (uint32_t)atoi(PQgetvalue(r, i, 3));
		c.prev_origin = (uint32_t)atoi(PQgetvalue(r, i, 4));
		c.op = PQgetvalue(r, i, 5)[0];
		c.tbl = PQgetvalue(r, i, 6);
		c.tbl_len = strlen(c.tbl);
		c.pk = PQgetvalue(r, i, 7);
		c.pk_len = strlen(c.pk);
		c.data = PQgetvalue(r, i, 8);
		c.data_len = c.op == 'D' ? 0 : strlen(c.data);
		assert_int_equal(repl_builder_add(&b, &c), REPL_WIRE_OK);
	}
	PQclear(r);
	size_t len = repl_builder_finish(&b);
	assert_true(len > 0);
	struct repl_batch *d;
	assert_int_equal(repl_batch_decode(b.buf, len, &d), REPL_WIRE_OK);
	repl_builder_release(&b);
	return d;
}

static struct apply_wait apply_now(const struct repl_batch *b)
{
	struct apply_wait w;
	memset(&w, 0, sizeof w);
	assert_non_null(repl_apply_batch(N[1].pool, 1, b, on_test_applied, &w));
	assert_true(run_until(pred_done, &w, 10000));
	return w;
}

/* The same batch applied twice changes nothing the second time; an overlapping batch applies
 * only what is new; a batch after a missing one is refused as a gap. */
static void test_idempotent_reapply(void **state)
{
	/* No link: node 2 follows node 1's epoch since the previous test. */
	uint64_t applied = (uint64_t)db_int(N[1].db, "SELECT applied_id FROM repl_state"
						     " WHERE peer = 1");
	assert_true(applied > 0);
	db_exec(N[0].db, "INSERT INTO vcards (username, vcard) VALUES ('bob', '<vCard>1</vCard>')");
	uint64_t mid = db_head(&N[0]);
	db_exec(N[0].db, "UPDATE vcards SET vcard = '<vCard>2</vCard>' WHERE username = 'bob'");
	db_exec(N[0].db, "DELETE FROM vcards WHERE username = 'alice'");
	uint64_t head = db_head(&N[0]);

	struct repl_batch *gap = batch_from_outbox(mid, head);
	struct apply_wait w = apply_now(gap);
	assert_false(w.res.ok);
	assert_true(w.res.gap);
	repl_batch_free(gap);

	struct repl_batch *b1 = batch_from_outbox(applied, mid);
	w = apply_now(b1);
	assert_true(w.res.ok);
	assert_false(w.res.duplicate);
	assert_int_equal(w.res.applied, 1);
	w = apply_now(b1); /* again */
	assert_true(w.res.ok);
	assert_true(w.res.duplicate);
	repl_batch_free(b1);

	struct repl_batch *b2 = batch_from_outbox(applied, head); /* overlaps b1 */
	w = apply_now(b2);
	assert_true(w.res.ok);
	assert_int_equal(w.res.position, head);
	assert_int_equal(w.res.applied, 2); /* bob's update, alice's delete */
	w = apply_now(b2);
	assert_true(w.res.duplicate);
	repl_batch_free(b2);

	assert_int_equal(db_int(N[1].db, "SELECT applied_id FROM repl_state WHERE peer = 1"),
			 (long long)head);
	char v[64];
	db_text(N[1].db, v, sizeof v, "SELECT vcard FROM vcards WHERE username = 'bob'");
	assert_string_equal(v, "<vCard>2</vCard>");
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM vcards WHERE username = 'alice'"),
			 0);
	assert_digests_equal();
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM repl_outbox"), 0);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM replication_conflicts"), 0);
}

struct progress {
	uint64_t target;
};
static int pred_partly(void *arg)
{
	struct repl_status s;
	repl_status_get(N[1].repl, &s);
	return s.applied >= ((struct progress *)arg)->target;
}

/* Breaks: frames in flight lost, srmd restarted (new objects), a batch lost without a break;
 * each time shipping resumes incrementally from the acknowledged position. */
static void test_resume_after_break(void **state)
{
	link_connect();
	wait_synced(10000);
	uint64_t start = db_head(&N[0]);
	/* 4,000 changes: several batches. */
	db_exec(N[0].db, "INSERT INTO users (username, sha1_salt, sha1_iter, sha1_stored,"
			 " sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server)"
			 " SELECT 'u' || g, '\\x01', 1, '\\x02', '\\x03', '\\x04', 1, '\\x05',"
			 " '\\x06' FROM generate_series(1, 2000) g");
	db_exec(N[0].db, "INSERT INTO last_activity (username, logout_at)"
			 " SELECT 'u' || g, now() FROM generate_series(1, 2000) g");
	/* Cut once some but not all have been applied. */
	struct progress p = {start + 1};
	assert_true(run_until(pred_partly, &p, 10000));
	link_cut();
	struct repl_status s;
	repl_status_get(N[1].repl, &s);
	assert_true(s.applied < db_head(&N[0]));
	run_for(50);
	link_connect(); /* on_reconnect */
	wait_synced(20000);
	assert_digests_equal();

	/* srmd restart on both nodes while changes are pending. */
	link_cut();
	db_exec(N[0].db, "UPDATE last_activity SET status = 'restart' WHERE username LIKE 'u1%%'");
	node_stop(&N[0]);
	node_stop(&N[1]);
	node_start(&N[0]);
	node_start(&N[1]);
	link_connect();
	wait_synced(20000);
	assert_digests_equal();
	repl_status_get(N[1].repl, &s);
	assert_int_equal(s.resyncs_received, 0); /* incremental, from the stored position */
	assert_true(s.batches_applied >= 1);

	/* A batch lost on a live connection: the receiver sees the gap and asks again. */
	batches_seen = 0;
	drop_batch_at = 1;
	db_exec(N[0].db, "UPDATE last_activity SET status = 'lost' WHERE username LIKE 'u2%%'");
	run_for(100);
	db_exec(N[0].db, "UPDATE last_activity SET status = 'after' WHERE username LIKE 'u3%%'");
	wait_synced(20000);
	assert_digests_equal();
	repl_status_get(N[1].repl, &s);
	assert_true(s.restarts >= 1);
	assert_int_equal(s.resyncs_received, 0);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM repl_outbox"), 0);
}

/* The outbox was trimmed past node 2's position while it was away: full resync.  Stale rows
 * on node 2 (deleted on node 1 meanwhile, or never on node 1) disappear. */
static void test_full_resync_after_trim(void **state)
{
	link_connect();
	wait_synced(10000);
	link_cut();
	db_exec(N[0].db, "DELETE FROM users WHERE username = 'u7'"); /* cascades */
	db_exec(N[0].db, "UPDATE users SET roster_ver = roster_ver + 1 WHERE username LIKE 'u5%%'");
	user_add(N[0].db, "dave", 1);
	/* A row only node 2 has, not in its outbox (as if written long ago and lost on node 1). */
	db_exec(N[1].db, "SET session_replication_role = replica;"
			 " INSERT INTO vcards (username, vcard) VALUES ('u9', 'stale');"
			 " SET session_replication_role = origin");
	/* A local write on node 2 that node 1 has not seen yet must survive. */
	db_exec(N[1].db, "INSERT INTO vcards (username, vcard) VALUES ('u8', 'fresh')");
	/* Node 1 keeps no unacknowledged row (max_keep 0). */
	db_exec(N[0].db, "SELECT repl_trim(0, 0)");
	assert_int_equal(db_int(N[0].db, "SELECT count(*) FROM repl_outbox"), 0);
	assert_true(db_int(N[0].db, "SELECT trimmed_upto FROM repl_node") >
		    db_int(N[1].db, "SELECT applied_id FROM repl_state WHERE peer = 1"));
	link_connect();
	wait_synced(30000);
	assert_digests_equal();
	struct repl_status s;
	repl_status_get(N[1].repl, &s);
	assert_int_equal(s.resyncs_received, 1);
	repl_status_get(N[0].repl, &s);
	assert_int_equal(s.resyncs_sent, 1);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM users WHERE username = 'u7'"), 0);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM last_activity WHERE username = 'u7'"),
			 0);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM users WHERE username = 'dave'"), 1);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM vcards WHERE vcard = 'stale'"), 0);
	assert_int_equal(db_int(N[0].db, "SELECT count(*) FROM vcards WHERE vcard = 'fresh'"), 1);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM repl_outbox WHERE origin = 1"), 0);
}

/* Both nodes write the same rows while apart; after the link returns both hold the same
 * rows, the later write (HLC) wins, and the conflicts are logged on both. */
static void test_split_brain(void **state)
{
	link_connect();
	wait_synced(10000);
	long long c0 = db_int(N[0].db, "SELECT coalesce(max(id), 0) FROM replication_conflicts");
	long long c1 = db_int(N[1].db, "SELECT coalesce(max(id), 0) FROM replication_conflicts");
	link_cut();
	/* Node 1 first, node 2 later: node 2's versions carry larger HLCs. */
	db_exec(N[0].db, "INSERT INTO vcards (username, vcard) VALUES ('bob', 'from-1')"
			 " ON CONFLICT (username) DO UPDATE SET vcard = 'from-1'");
	db_exec(N[0].db, "UPDATE roster_items SET name = 'n1' WHERE username = 'alice'");
	db_exec(N[0].db, "UPDATE last_activity SET status = 'one' WHERE username = 'u10'");
	db_exec(N[0].db, "INSERT INTO vcards (username, vcard) VALUES ('u11', 'only-1')");
	struct timespec ts = {0, 5 * 1000 * 1000};
	nanosleep(&ts, NULL);
	db_exec(N[1].db, "INSERT INTO vcards (username, vcard) VALUES ('bob', 'from-2')"
			 " ON CONFLICT (username) DO UPDATE SET vcard = 'from-2'");
	db_exec(N[1].db, "DELETE FROM roster_items WHERE username = 'alice'");
	db_exec(N[1].db, "INSERT INTO vcards (username, vcard) VALUES ('u12', 'only-2')");
	nanosleep(&ts, NULL);
	/* ... and node 1 last for this one. */
	db_exec(N[0].db, "UPDATE last_activity SET status = 'one-later' WHERE username = 'u10'");
	link_connect();
	wait_synced(20000);
	assert_digests_equal();
	char v[64];
	for (int i = 0; i < 2; i++) {
		db_text(N[i].db, v, sizeof v, "SELECT vcard FROM vcards WHERE username = 'bob'");
		assert_string_equal(v, "from-2");
		assert_int_equal(db_int(N[i].db, "SELECT count(*) FROM roster_items"
						 " WHERE username = 'alice'"),
				 0);
		db_text(N[i].db, v, sizeof v,
			"SELECT status FROM last_activity WHERE username = 'u10'");
		assert_string_equal(v, "one-later");
		assert_int_equal(db_int(N[i].db, "SELECT count(*) FROM vcards"
						 " WHERE vcard IN ('only-1', 'only-2')"),
				 2);
	}
	/* bob's vCard and alice's roster item conflicted; logged on both sides. */
	assert_int_equal(db_int(N[0].db, "SELECT count(*) FROM replication_conflicts WHERE id > %lld",
				c0),
			 2);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM replication_conflicts WHERE id > %lld",
				c1),
			 2);
	assert_int_equal(db_int(N[0].db, "SELECT count(*) FROM replication_conflicts WHERE"
					 " tbl = 'vcards' AND pk->>'username' = 'bob'"
					 " AND winner = 'remote' AND id > %lld",
				c0),
			 1);
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM replication_conflicts WHERE"
					 " tbl = 'vcards' AND pk->>'username' = 'bob'"
					 " AND winner = 'local' AND id > %lld",
				c1),
			 1);
	/* u10 was written by node 1 only: no conflict. */
	assert_int_equal(db_int(N[1].db, "SELECT count(*) FROM replication_conflicts WHERE"
					 " tbl = 'last_activity' AND id > %lld",
				c1),
			 0);
}

/* Digest through the async API and its formatting. */
struct digest_wait {
	int done, n;
	char text[4096];
};
static void on_test_digest(void *arg, const struct repl_digest_entry *e, int n, const char *err)
{
	struct digest_wait *w = arg;
	w->n = n;
	if (n >= 0)
		repl_digest_format(w->text, sizeof w->text, e, n, 1);
	w->done = 1;
}
static int pred_digest(void *arg) { return ((struct digest_wait *)arg)->done; }

static void test_digest_api(void **state)
{
	struct digest_wait a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	assert_non_null(repl_digest_query(N[0].pool, on_test_digest, &a));
	assert_non_null(repl_digest_query(N[1].pool, on_test_digest, &b));
	assert_true(run_until(pred_digest, &a, 5000));
	assert_true(run_until(pred_digest, &b, 5000));
	assert_int_equal(a.n, 5);
	assert_string_equal(a.text, b.text);
	assert_non_null(strstr(a.text, "\"table\":\"users\""));
	/* A change makes them differ. */
	db_exec(N[1].db, "SET session_replication_role = replica;"
			 " UPDATE vcards SET vcard = 'x' WHERE username = 'u12';"
			 " SET session_replication_role = origin");
	memset(&b, 0, sizeof b);
	assert_non_null(repl_digest_query(N[1].pool, on_test_digest, &b));
	assert_true(run_until(pred_digest, &b, 5000));
	assert_string_not_equal(a.text, b.text);
	db_exec(N[1].db, "SET session_replication_role = replica;"
			 " UPDATE vcards SET vcard = 'only-2' WHERE username = 'u12';"
			 " SET session_replication_role = origin");
	char small[8];
	int need = repl_digest_format(small, sizeof small, NULL, 0, 0);
	assert_true(need > (int)sizeof small);
}

/* Apply rate: 40,000 changes applied on node 2 in batches of 2,000, one transaction each, as
 * the receiver does.  Printed, not asserted (timings on shared machines are noisy). */
static void test_throughput(void **state)
{
	link_connect();
	wait_synced(10000);
	link_cut();
	uint64_t applied = db_head(&N[0]);
	double t0 = mono_s();
	db_exec(N[0].db, "INSERT INTO users (username, sha1_salt, sha1_iter, sha1_stored,"
			 " sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server)"
			 " SELECT 'p' || g, '\\x01', 1, '\\x02', '\\x03', '\\x04', 1, '\\x05',"
			 " '\\x06' FROM generate_series(1, 200) g");
	db_exec(N[0].db, "INSERT INTO roster_items (username, contact, groups)"
			 " SELECT 'p' || (g %% 200 + 1), 'c' || g || '@example.com', '{G}'"
			 " FROM generate_series(1, 20000) g");
	db_exec(N[0].db, "UPDATE roster_items SET subscription = 'both', ver = 2"
			 " WHERE username LIKE 'p%%'");
	double t1 = mono_s();
	uint64_t head = db_head(&N[0]);
	long long total = (long long)(head - applied);
	assert_true(total >= 40000);
	fprintf(stderr, "test_replication: captured %lld changes in %.2f s (%.0f/s, batched"
			" statements)\n",
		total, t1 - t0, (double)total / (t1 - t0));

	/* Read and decode all batches first, so that only applying is timed. */
	enum { MAXB = 64 };
	struct repl_batch *bs[MAXB];
	int nb = 0;
	uint64_t pos = applied;
	while (pos < head && nb < MAXB) {
		uint64_t upto = (uint64_t)db_int(N[0].db,
						 "SELECT max(id) FROM (SELECT id FROM repl_outbox"
						 " WHERE id > %llu ORDER BY id LIMIT 2000) x",
						 (unsigned long long)pos);
		bs[nb++] = batch_from_outbox(pos, upto);
		pos = upto;
	}
	assert_int_equal(pos, head);
	double a0 = mono_s();
	uint64_t n = 0;
	for (int i = 0; i < nb; i++) {
		struct apply_wait w = apply_now(bs[i]);
		if (!w.res.ok)
			fail_msg("apply: %s", w.err);
		n += bs[i]->count;
	}
	double a1 = mono_s();
	for (int i = 0; i < nb; i++)
		repl_batch_free(bs[i]);
	fprintf(stderr, "test_replication: applied %llu changes in %d batches in %.2f s:"
			" %.0f changes/s\n",
		(unsigned long long)n, nb, a1 - a0, (double)n / (a1 - a0));
	link_connect();
	wait_synced(30000);
	assert_digests_equal();
}

/* Lag at a steady 1,000 changes/s: each change a single-statement transaction on node 1;
 * lag = from its commit until node 2 reports it applied.  Printed, not asserted. */
struct lag_run {
	int64_t *commit_ms; /* by change index */
	uint64_t *ids;
	int n, written;
	double *lags;
	int nlags, next_check;
};

static void on_lag_tick(evutil_socket_t fd, short what, void *arg)
{
	struct lag_run *L = arg;
	struct repl_status s;
	repl_status_get(N[1].repl, &s);
	int64_t now = mono_ms();
	while (L->next_check < L->written && L->ids[L->next_check] <= s.applied) {
		L->lags[L->nlags++] = (double)(now - L->commit_ms[L->next_check]);
		L->next_check++;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void test_lag_steady(void **state)
{
	link_connect();
	wait_synced(20000);
	enum { RATE = 1000, SECONDS = 3 };
	struct lag_run L;
	memset(&L, 0, sizeof L);
	L.n = RATE * SECONDS;
	L.commit_ms = calloc((size_t)L.n, sizeof *L.commit_ms);
	L.ids = calloc((size_t)L.n, sizeof *L.ids);
	L.lags = calloc((size_t)L.n, sizeof *L.lags);
	assert_true(L.commit_ms && L.ids && L.lags);
	struct event *tick = event_new(base, -1, EV_PERSIST, on_lag_tick, &L);
	struct timeval one = {0, 1000};
	event_add(tick, &one);
	int64_t start = mono_ms();
	while (L.written < L.n) {
		/* Write what is due by now, then let the loop run. */
		int due = (int)((mono_ms() - start) * RATE / 1000);
		while (L.written < due && L.written < L.n) {
			PGresult *r = PQexec(N[0].db,
					     "WITH u AS (UPDATE last_activity SET logout_at = now()"
					     " WHERE username = (SELECT 'u' || (1000 + (random() * 999)::int))"
					     " RETURNING 1) SELECT currval('repl_outbox_id_seq') FROM u");
			if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
				fail_msg("lag write: %s", PQresultErrorMessage(r));
			L.ids[L.written] = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
			L.commit_ms[L.written] = mono_ms();
			L.written++;
			PQclear(r);
		}
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		struct timespec ts = {0, 200 * 1000};
		nanosleep(&ts, NULL);
	}
	wait_synced(20000);
	on_lag_tick(-1, 0, &L);
	event_free(tick);
	assert_int_equal(L.nlags, L.n);
	qsort(L.lags, (size_t)L.nlags, sizeof *L.lags, cmp_double);
	fprintf(stderr, "test_replication: lag at %d changes/s for %d s: p50 %.0f ms, p99 %.0f ms,"
			" max %.0f ms\n",
		RATE, SECONDS, L.lags[L.nlags / 2], L.lags[L.nlags * 99 / 100],
		L.lags[L.nlags - 1]);
	free(L.commit_ms);
	free(L.ids);
	free(L.lags);
	assert_digests_equal();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire),
		cmocka_unit_test_setup_teardown(test_ship_in_order, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_reapply, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_resume_after_break, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_full_resync_after_trim, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_split_brain, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_digest_api, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_throughput, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_lag_steady, test_setup, test_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
