/* --mode failover (failover.h): per-user records that outlive connections, reconnection
 * policy, chat schedule, recovery figures and the timeline. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/util.h>

#include "contrib/loadgen/failover.h"
#include "contrib/loadgen/loadgen.h"
#include "contrib/loadgen/xmlin.h"

#define FO_MAX_TARGETS 8
#define FO_DRAIN_NS 3000000000ull /* after sending stops, in-flight messages may arrive */

enum fo_state { FO_IDLE, FO_CONNECTING, FO_ONLINE, FO_WAITING };

struct fo_user {
	struct client *c;
	enum fo_state state;
	int target;              /* index into fo.targets */
	int attempts;            /* connections since the last login */
	long spread_s;           /* re-login spread from disco, -1 unknown */
	uint64_t reconnect_at;   /* FO_WAITING: when */
	uint64_t next_send;      /* online: next message */
	uint32_t sent;           /* last seq written */
	uint32_t confirmed;      /* how many seqs the server confirmed (conf[]) */
	uint32_t conn_first;     /* first seq written on the current connection */
	uint8_t *conf;           /* per seq: confirmed by a ping answer on its own connection */
	uint32_t sent_at_mark, sent_until_back;
	uint8_t *rx;             /* copies received of each seq from the partner (cap 255) */
	uint32_t rx_cap;
	int32_t *sent_ms;        /* when each seq was sent, ms from the start (for lost ones) */
	uint32_t sent_cap;       /* of sent_ms and conf */
	uint64_t lost_ns, back_ns; /* after the mark: session lost, logged in again */
};

struct fo_bucket {
	uint32_t online, logins, disconnects, sent, received;
};

struct fo {
	struct fo_user *u; /* index user - first_user */
	int n;
	struct sockaddr_storage targets[FO_MAX_TARGETS];
	socklen_t target_len[FO_MAX_TARGETS];
	int ntargets;
	int chatting, sending;
	uint64_t mark_ns, all_back_ns, stop_ns;
	int lost_after_mark, back_after_mark;
	struct fo_bucket *tl;
	size_t tl_len;
	uint64_t redirects, retry_afters, backoffs;
};

static struct fo F;

static double rnd(void) { return (double)random() / ((double)RAND_MAX + 1.0); }

static struct fo_user *user_of(const struct lg *lg, int user)
{
	int i = user - lg->cfg.first_user;
	return i >= 0 && i < F.n ? &F.u[i] : NULL;
}

static struct fo_bucket *bucket(const struct lg *lg, uint64_t now)
{
	uint64_t ms = lg->cfg.timeline_ms > 0 ? (uint64_t)lg->cfg.timeline_ms : 1000;
	size_t i = (size_t)((now - lg->t0) / 1000000u / ms);
	if (i >= F.tl_len) {
		size_t n = F.tl_len ? F.tl_len : 256;
		while (n <= i)
			n *= 2;
		struct fo_bucket *p = realloc(F.tl, n * sizeof *p);
		if (!p)
			return NULL;
		memset(p + F.tl_len, 0, (n - F.tl_len) * sizeof *p);
		F.tl = p;
		F.tl_len = n;
	}
	return &F.tl[i];
}

static void count(const struct lg *lg, size_t field)
{
	struct fo_bucket *b = bucket(lg, lg_now_ns());
	if (b)
		(*(uint32_t *)((char *)b + field))++;
}

static int add_target(const struct sockaddr *sa, socklen_t len)
{
	for (int i = 0; i < F.ntargets; i++)
		if (F.target_len[i] == len && memcmp(&F.targets[i], sa, len) == 0)
			return i;
	if (F.ntargets == FO_MAX_TARGETS)
		return -1;
	memcpy(&F.targets[F.ntargets], sa, len);
	F.target_len[F.ntargets] = len;
	return F.ntargets++;
}

int fo_init(struct lg *lg)
{
	F.n = lg->cfg.users;
	F.u = calloc((size_t)F.n, sizeof *F.u);
	if (!F.u)
		return -1;
	for (int i = 0; i < F.n; i++)
		F.u[i].spread_s = -1;
	add_target((struct sockaddr *)&lg->addr, lg->addrlen);
	if (lg->alt_addrlen)
		add_target((struct sockaddr *)&lg->alt_addr, lg->alt_addrlen);
	srandom((unsigned)lg_now_ns());
	return 0;
}

void fo_free(struct lg *lg)
{
	for (int i = 0; F.u && i < F.n; i++) /* politely: the run is over */
		if (F.u[i].c)
			client_close(F.u[i].c);
	for (int i = 0; F.u && i < F.n; i++) {
		free(F.u[i].rx);
		free(F.u[i].sent_ms);
		free(F.u[i].conf);
	}
	free(F.u);
	free(F.tl);
	memset(&F, 0, sizeof F);
}

static void connect_now(struct lg *lg, int user, struct fo_user *u, uint64_t sched)
{
	u->state = FO_CONNECTING;
	u->attempts++;
	u->c = client_start_at(lg, user, sched, (struct sockaddr *)&F.targets[u->target],
			       F.target_len[u->target]);
	if (!u->c) { /* could not even open a socket: try again later */
		u->state = FO_WAITING;
		u->reconnect_at = lg_now_ns() + 1000000000u;
	}
}

void fo_start(struct lg *lg, int user, uint64_t sched_ns)
{
	struct fo_user *u = user_of(lg, user);
	if (u && u->state == FO_IDLE)
		connect_now(lg, user, u, sched_ns);
}

void fo_mark(struct lg *lg, uint64_t now)
{
	if (F.mark_ns)
		return;
	F.mark_ns = now;
	for (int i = 0; i < F.n; i++)
		F.u[i].sent_at_mark = F.u[i].sent;
	fprintf(stderr, "duet-loadgen: fault marked at t=%.3fs\n", (double)(now - lg->t0) / 1e9);
}

void fo_end(struct lg *lg, uint64_t now)
{
	if (F.stop_ns)
		return;
	F.stop_ns = now;
	F.sending = 0;
	fprintf(stderr, "duet-loadgen: end requested at t=%.3fs, draining\n",
		(double)(now - lg->t0) / 1e9);
}

/* The partner of user (2i-1 <-> 2i, counted from first_user). */
static int partner(const struct lg *lg, int user)
{
	int rel = user - lg->cfg.first_user;
	int p = rel % 2 ? rel - 1 : rel + 1;
	return p < F.n ? lg->cfg.first_user + p : 0;
}

void fo_on_login(struct lg *lg, struct client *c, int user)
{
	struct fo_user *u = user_of(lg, user);
	if (!u)
		return;
	uint64_t now = lg_now_ns();
	u->state = FO_ONLINE;
	u->attempts = 0;
	u->conn_first = u->sent + 1;
	count(lg, offsetof(struct fo_bucket, logins));
	if (u->lost_ns && !u->back_ns) {
		u->back_ns = now;
		F.back_after_mark++;
	}
	/* the next message within one interval, so a returning crowd does not send at once */
	u->next_send = now + (uint64_t)(rnd() * lg->cfg.msg_interval * 1e9);
	client_send_disco(c);
}

static void rx_note(struct lg *lg, struct fo_user *u, uint32_t seq)
{
	if (seq >= u->rx_cap) {
		uint32_t n = u->rx_cap ? u->rx_cap : 64;
		while (n <= seq)
			n *= 2;
		uint8_t *p = realloc(u->rx, n);
		if (!p)
			return;
		memset(p + u->rx_cap, 0, n - u->rx_cap);
		u->rx = p;
		u->rx_cap = n;
	}
	if (u->rx[seq] < 255)
		u->rx[seq]++;
	count(lg, offsetof(struct fo_bucket, received));
}

void fo_on_message(struct lg *lg, int user, const struct xin_stanza *st)
{
	struct fo_user *u = user_of(lg, user);
	if (!u || strcmp(st->type, "chat") != 0 || st->text_len == 0)
		return;
	char *end;
	unsigned long seq = strtoul(st->text, &end, 10);
	if (*end != ' ' || seq == 0 || seq > 100000000ul) {
		failures_add(&lg->fail, "message-bad-body");
		return;
	}
	lg->msgs_recv++;
	rx_note(lg, u, (uint32_t)seq);
}

void fo_on_iq(struct lg *lg, int user, const struct xin_stanza *st)
{
	struct fo_user *u = user_of(lg, user);
	if (!u || strcmp(st->type, "result") != 0)
		return;
	if (st->id[0] == 'p') {
		/* The ping after message seq: everything this connection sent up to it was
		 * routed.  Not what an earlier connection sent: a server ending a session may
		 * not have read its last stanzas, which stay in doubt. */
		unsigned long seq = strtoul(st->id + 1, NULL, 10);
		for (unsigned long s = u->conn_first; s <= seq && s <= u->sent; s++)
			if (s < u->sent_cap && !u->conf[s]) {
				u->conf[s] = 1;
				u->confirmed++;
			}
	} else if (strcmp(st->id, "d") == 0 && st->relogin_upper >= 0 && st->relogin_lower >= 0) {
		long spread = st->relogin_upper - st->relogin_lower;
		u->spread_s = spread > 0 ? spread : 0;
	}
}

/* When to try again, and where. */
static void schedule_back(struct lg *lg, struct fo_user *u, struct client *c, int was_online)
{
	uint64_t now = lg_now_ns();
	const char *redirect = client_redirect(c);
	long retry = client_retry_after(c);
	double delay;
	if (redirect[0]) {
		struct sockaddr_storage ss;
		int len = sizeof ss;
		int t = evutil_parse_sockaddr_port(redirect, (struct sockaddr *)&ss, &len) == 0
				? add_target((struct sockaddr *)&ss, (socklen_t)len)
				: -1;
		if (t >= 0) {
			u->target = t;
			u->attempts = 0;
			F.redirects++;
			delay = 0;
			goto out;
		}
	}
	if (retry >= 0) {
		F.retry_afters++;
		delay = (double)retry + rnd();
		goto out;
	}
	F.backoffs++;
	if (was_online && u->spread_s > 0) {
		delay = rnd() * (double)u->spread_s; /* the server's advice */
	} else {
		double cap = lg->cfg.backoff_min * pow(2.0, u->attempts > 1 ? u->attempts - 1 : 0);
		if (cap > lg->cfg.backoff_max)
			cap = lg->cfg.backoff_max;
		delay = lg->cfg.backoff_min / 2 + rnd() * cap; /* full jitter, never at once */
	}
	/* A connection that never logged in failed at this node: try the other next time. */
	if (!was_online && F.ntargets > 1 && u->attempts > 0)
		u->target = u->target == 0 ? 1 : 0;
out:
	u->state = FO_WAITING;
	u->reconnect_at = now + (uint64_t)(delay * 1e9);
}

void fo_on_gone(struct lg *lg, struct client *c, int user, int was_online)
{
	struct fo_user *u = user_of(lg, user);
	if (!u || u->c != c)
		return;
	u->c = NULL;
	if (was_online) {
		count(lg, offsetof(struct fo_bucket, disconnects));
		if (F.mark_ns && !u->lost_ns) {
			u->lost_ns = lg_now_ns();
			F.lost_after_mark++;
		}
	}
	if (lg->stopping || F.stop_ns) {
		u->state = FO_IDLE;
		return;
	}
	schedule_back(lg, u, c, was_online);
}

static void send_due(struct lg *lg, uint64_t now)
{
	for (int i = 0; i < F.n; i++) {
		struct fo_user *u = &F.u[i];
		if (u->state != FO_ONLINE || !u->c || now < u->next_send)
			continue;
		int to = partner(lg, lg->cfg.first_user + i);
		if (!to)
			continue;
		if (client_send_chat(u->c, to, u->sent + 1) == 0) {
			u->sent++;
			if (u->sent >= u->sent_cap) {
				uint32_t n = u->sent_cap ? u->sent_cap * 2 : 64;
				int32_t *p = realloc(u->sent_ms, n * sizeof *p);
				if (p)
					u->sent_ms = p;
				uint8_t *q = p ? realloc(u->conf, n) : NULL;
				if (q) {
					memset(q + u->sent_cap, 0, n - u->sent_cap);
					u->conf = q;
					u->sent_cap = n;
				}
			}
			if (u->sent < u->sent_cap)
				u->sent_ms[u->sent] = (int32_t)((now - lg->t0) / 1000000u);
			lg->msgs_sent++;
			count(lg, offsetof(struct fo_bucket, sent));
		}
		u->next_send = now + (uint64_t)(lg->cfg.msg_interval * (0.75 + 0.5 * rnd()) * 1e9);
	}
}

static void reconnect_due(struct lg *lg, uint64_t now)
{
	for (int i = 0; i < F.n; i++) {
		struct fo_user *u = &F.u[i];
		if (u->state == FO_WAITING && now >= u->reconnect_at &&
		    lg->open_conns < LG_MAX_CONNECTIONS)
			connect_now(lg, lg->cfg.first_user + i, u, now);
	}
}

static int online_count(void)
{
	int n = 0;
	for (int i = 0; i < F.n; i++)
		n += F.u[i].state == FO_ONLINE;
	return n;
}

static int confirmed(const struct fo_user *u, uint32_t s)
{
	return s < u->sent_cap && u->conf[s];
}

/* Every confirmed message has arrived at its partner. */
static int drained(const struct lg *lg)
{
	for (int i = 0; i < F.n; i++) {
		const struct fo_user *u = &F.u[i];
		int p = partner(lg, lg->cfg.first_user + i);
		const struct fo_user *r = p ? user_of(lg, p) : NULL;
		for (uint32_t s = 1; r && s <= u->sent; s++)
			if (confirmed(u, s) && (s >= r->rx_cap || !r->rx[s]))
				return 0;
	}
	return 1;
}

int fo_tick(struct lg *lg, uint64_t now)
{
	struct fo_bucket *b = bucket(lg, now);
	int online = online_count();
	if (b)
		b->online = (uint32_t)online;
	if (!F.chatting && lg->all_up_reported) {
		F.chatting = F.sending = 1; /* chat once every client is up */
		for (int i = 0; i < F.n; i++)
			F.u[i].next_send = now + (uint64_t)(rnd() * lg->cfg.msg_interval * 1e9);
	}
	if (F.sending)
		send_due(lg, now);
	reconnect_due(lg, now);
	if (F.mark_ns && !F.all_back_ns && F.back_after_mark == F.lost_after_mark &&
	    F.lost_after_mark > 0 && F.lost_after_mark >= lg->cfg.expect_moved) {
		F.all_back_ns = now;
		for (int i = 0; i < F.n; i++)
			F.u[i].sent_until_back = F.u[i].sent;
	}
	if (!F.stop_ns) {
		int settled = F.all_back_ns && now - F.all_back_ns >= (uint64_t)(lg->cfg.settle * 1e9);
		int late = F.mark_ns && now - F.mark_ns >= (uint64_t)(lg->cfg.after_mark * 1e9);
		int plain = !F.mark_ns && lg->all_up_reported &&
			    now - lg->all_up_ns >= (uint64_t)(lg->cfg.duration * 1e9);
		if (settled || late || plain) {
			F.stop_ns = now;
			F.sending = 0;
			fprintf(stderr, "duet-loadgen: sending stopped, draining\n");
		}
		return 0;
	}
	return now - F.stop_ns >= FO_DRAIN_NS || drained(lg);
}

/* ---- the figures ---- */

struct fo_totals {
	uint64_t sent, confirmed, received, lost, duplicated, unconfirmed, unconfirmed_arrived;
	uint64_t sent_during_move;
	int clients, online, lost_session, back, never_back;
	double back_ms[3]; /* 50%, 99%, 100% of the clients that lost their session */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void totals(const struct lg *lg, struct fo_totals *t)
{
	memset(t, 0, sizeof *t);
	t->clients = F.n;
	uint64_t *backs = calloc((size_t)F.n + 1, sizeof *backs);
	int nb = 0;
	for (int i = 0; i < F.n; i++) {
		const struct fo_user *u = &F.u[i];
		t->online += u->state == FO_ONLINE;
		t->sent += u->sent;
		t->confirmed += u->confirmed;
		if (F.mark_ns)
			t->sent_during_move += (F.all_back_ns ? u->sent_until_back : u->sent) -
					       u->sent_at_mark;
		if (u->lost_ns) {
			t->lost_session++;
			if (u->back_ns) {
				t->back++;
				if (backs)
					backs[nb++] = u->back_ns - F.mark_ns;
			} else {
				t->never_back++;
			}
		}
		int p = partner(lg, lg->cfg.first_user + i);
		const struct fo_user *r = p ? user_of(lg, p) : NULL;
		for (uint32_t s = 1; r && s <= u->sent; s++) {
			unsigned got = s < r->rx_cap ? r->rx[s] : 0;
			if (got)
				t->received++;
			if (got > 1)
				t->duplicated += got - 1;
			if (confirmed(u, s) && !got)
				t->lost++;
			if (!confirmed(u, s)) {
				t->unconfirmed++;
				t->unconfirmed_arrived += got > 0;
			}
		}
	}
	static const double qs[3] = {0.5, 0.99, 1.0};
	if (backs && nb) {
		qsort(backs, (size_t)nb, sizeof *backs, cmp_u64);
		for (int k = 0; k < 3; k++) {
			/* of all that lost their session: a quantile not reached is -1 */
			long need = (long)ceil(qs[k] * t->lost_session);
			t->back_ms[k] = need <= nb && need > 0 ? (double)backs[need - 1] / 1e6 : -1;
		}
	} else {
		for (int k = 0; k < 3; k++)
			t->back_ms[k] = t->lost_session ? -1 : 0;
	}
	free(backs);
}

/* Up to max lost messages (dups: duplicated ones instead) as [from, to, seq, sent ms from
 * the fault] (JSON), for the bench to look them up. */
static void ids_print(const struct lg *lg, FILE *out, int max, bool dups)
{
	int n = 0;
	for (int i = 0; i < F.n && n < max; i++) {
		const struct fo_user *u = &F.u[i];
		int p = partner(lg, lg->cfg.first_user + i);
		const struct fo_user *r = p ? user_of(lg, p) : NULL;
		for (uint32_t s = 1; r && s <= u->sent && n < max; s++) {
			unsigned got = s < r->rx_cap ? r->rx[s] : 0;
			if (dups ? got > 1 : confirmed(u, s) && !got) {
				long at = s < u->sent_cap ? u->sent_ms[s] : -1;
				long mark = F.mark_ns ? (long)((F.mark_ns - lg->t0) / 1000000u) : 0;
				fprintf(out, "%s[%d,%d,%u,%ld]", n++ ? "," : "",
					lg->cfg.first_user + i, p, s, at >= 0 ? at - mark : -1);
			}
		}
	}
}

static void timeline_print(const struct lg *lg, FILE *out, int json)
{
	uint64_t ms = lg->cfg.timeline_ms > 0 ? (uint64_t)lg->cfg.timeline_ms : 1000;
	uint64_t from = F.mark_ns ? F.mark_ns : lg->all_up_ns ? lg->all_up_ns : lg->t0;
	size_t first = (size_t)((from - lg->t0) / 1000000u / ms);
	size_t back = (size_t)(2000 / ms); /* two seconds before the mark */
	first = first > back ? first - back : 0;
	size_t last = (size_t)((lg_now_ns() - lg->t0) / 1000000u / ms);
	if (last >= F.tl_len)
		last = F.tl_len ? F.tl_len - 1 : 0;
	if (!json)
		fprintf(out, "timeline (t from the fault, ms; per %llu ms): online logins "
			     "disconnects sent received\n", (unsigned long long)ms);
	for (size_t i = first; i <= last && i < F.tl_len; i++) {
		const struct fo_bucket *b = &F.tl[i];
		double t = (double)(i * ms) - (double)(from - lg->t0) / 1e6;
		if (json)
			fprintf(out, "%s[%.0f,%u,%u,%u,%u,%u]", i == first ? "" : ",", t, b->online,
				b->logins, b->disconnects, b->sent, b->received);
		else
			fprintf(out, "%8.0f %7u %6u %6u %6u %6u\n", t, b->online, b->logins,
				b->disconnects, b->sent, b->received);
	}
}

void fo_report(const struct lg *lg, FILE *out, int json)
{
	struct fo_totals t;
	totals(lg, &t);
	if (json) {
		fprintf(out,
			"\"failover\":{\"clients\":%d,\"online_at_end\":%d,\"lost_session\":%d,"
			"\"back\":%d,\"never_back\":%d,\"back_ms\":{\"p50\":%.0f,\"p99\":%.0f,"
			"\"p100\":%.0f},\"redirects\":%llu,\"retry_afters\":%llu,\"backoffs\":%llu,"
			"\"messages\":{\"sent\":%llu,\"confirmed\":%llu,\"received\":%llu,"
			"\"lost\":%llu,\"duplicated\":%llu,\"unconfirmed\":%llu,"
			"\"unconfirmed_arrived\":%llu,\"sent_during_move\":%llu},\"timeline\":[",
			t.clients, t.online, t.lost_session, t.back, t.never_back, t.back_ms[0],
			t.back_ms[1], t.back_ms[2], (unsigned long long)F.redirects,
			(unsigned long long)F.retry_afters, (unsigned long long)F.backoffs,
			(unsigned long long)t.sent, (unsigned long long)t.confirmed,
			(unsigned long long)t.received, (unsigned long long)t.lost,
			(unsigned long long)t.duplicated, (unsigned long long)t.unconfirmed,
			(unsigned long long)t.unconfirmed_arrived,
			(unsigned long long)t.sent_during_move);
		timeline_print(lg, out, 1);
		fprintf(out, "],\"lost_ids\":[");
		ids_print(lg, out, 200, false);
		fprintf(out, "],\"dup_ids\":[");
		ids_print(lg, out, 20, true);
		fprintf(out, "]}");
		return;
	}
	fprintf(out, "failover: %d clients, %d lost their session after the fault, %d back, "
		     "%d never back, %d online at the end\n",
		t.clients, t.lost_session, t.back, t.never_back, t.online);
	fprintf(out, "back after the fault (ms): 50%% %.0f  99%% %.0f  100%% %.0f  "
		     "(-1: not reached)\n", t.back_ms[0], t.back_ms[1], t.back_ms[2]);
	fprintf(out, "reconnects: %llu see-other-host, %llu retry-after, %llu backoff\n",
		(unsigned long long)F.redirects, (unsigned long long)F.retry_afters,
		(unsigned long long)F.backoffs);
	fprintf(out, "messages: %llu sent (%llu during the move), %llu confirmed by the server, "
		     "%llu received; lost %llu, duplicated %llu; %llu unconfirmed when their "
		     "connection ended, %llu of them arrived\n",
		(unsigned long long)t.sent, (unsigned long long)t.sent_during_move,
		(unsigned long long)t.confirmed, (unsigned long long)t.received,
		(unsigned long long)t.lost, (unsigned long long)t.duplicated,
		(unsigned long long)t.unconfirmed, (unsigned long long)t.unconfirmed_arrived);
	timeline_print(lg, out, 0);
}
