/* The queue of a planned move (engine/release.h): `release N TARGET WINDOW` on the control
 * socket takes the sessions of home node N as they are, then a timer ends them one after
 * another at release_pace_rate(): see-other-host naming TARGET, or system-shutdown when
 * there is none.  A session that ended meanwhile is skipped.  The pace follows the ADMIT
 * reports of the peer engine only when TARGET is that engine's node (the release sends
 * the users to it); a release with no target keeps the window's rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "engine/engine.h"
#include "engine/release.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/strmap.h"

#define RELEASE_TICK_MS 10
#define RELEASE_BURST_MS 200

struct release_queue {
	char (*jids)[JID_BUF];
	long n, next;
	char target[256];
	struct release_pace pace;
	bool follow_peer;
	double tokens;
	int64_t last_ms, start_ms;
	struct event *tick;
};

static struct release_queue RQ[MAX_HOME_NODES + 1];

static void queue_free(struct release_queue *q)
{
	if (q->tick)
		event_free(q->tick);
	free(q->jids);
	memset(q, 0, sizeof *q);
}

static void release_one(const struct release_queue *q, const char *full)
{
	struct jid j;
	if (jid_parse(full, &j) < 0)
		return;
	struct resource *r = session_find(&j);
	if (!r || !r->conn)
		return; /* gone by itself meanwhile */
	if (q->target[0])
		conn_release(r->conn, "see-other-host", q->target);
	else
		conn_release(r->conn, "system-shutdown", NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct release_queue *q = arg;
	int64_t now = clock_mono_ms();
	double rate = release_pace_rate(&q->pace, now);
	q->tokens += rate * (double)(now - q->last_ms) / 1000.0;
	q->last_ms = now;
	/* At most RELEASE_BURST_MS worth at once (at least one session): no burst after a
	 * stall, but a late tick (a busy loop runs them every 15-30 ms, not 10) loses nothing. */
	double cap = rate * RELEASE_BURST_MS / 1000.0;
	if (q->tokens > (cap > 1.0 ? cap : 1.0))
		q->tokens = cap > 1.0 ? cap : 1.0;
	while (q->tokens >= 1.0 && q->next < q->n) {
		q->tokens -= 1.0;
		release_one(q, q->jids[q->next++]);
	}
	if (q->next < q->n)
		return;
	log_info("release: %ld session(s) released in %lld ms (rate at the end %.0f/s, the "
		 "window's %.0f/s)",
		 q->n, (long long)(now - q->start_ms), rate, q->pace.base);
	queue_free(q);
}

void release_home_node(int node, const char *target, long window_ms)
{
	struct release_queue *q = &RQ[node];
	queue_free(q); /* a new release of the same node takes every session still here */
	long total = session_count_home(node);
	if (total <= 0)
		return;
	q->jids = calloc((size_t)total, sizeof *q->jids);
	q->tick = event_new(server.base, -1, EV_PERSIST, on_tick, q);
	if (!q->jids || !q->tick) {
		log_warnx("release: out of memory, %ld session(s) of home node %d stay", total,
			  node);
		queue_free(q);
		return;
	}
	void *v;
	for (size_t it = 0; strmap_next(server.users, &it, NULL, &v) && q->n < total;) {
		struct user *u = v;
		if (!u->loaded || u->home_node != node)
			continue;
		for (struct resource *r = u->resources; r && q->n < total; r = r->next)
			snprintf(q->jids[q->n++], JID_BUF, "%s", r->full);
	}
	snprintf(q->target, sizeof q->target, "%s", target ? target : "");
	/* All at once without a window: the next tick takes them all. */
	double base = window_ms > 0 ? (double)total * 1000.0 / (double)window_ms : 1e9;
	release_pace_start(&q->pace, base);
	q->follow_peer = q->target[0] && window_ms > 0;
	q->start_ms = q->last_ms = clock_mono_ms();
	q->tokens = 1.0; /* the first one now */
	struct timeval tv = {0, RELEASE_TICK_MS * 1000};
	event_add(q->tick, &tv);
}

void release_cancel(int node)
{
	struct release_queue *q = &RQ[node];
	if (!q->tick)
		return;
	log_info("release: home node %d served again: %ld session(s) stay", node, q->n - q->next);
	queue_free(q);
}

void release_peer_admit(const struct route_admit *a)
{
	int64_t now = clock_mono_ms();
	for (int n = 1; n <= MAX_HOME_NODES; n++)
		if (RQ[n].tick && RQ[n].follow_peer)
			release_pace_report(&RQ[n].pace, a, now);
}

long release_pending(void)
{
	long left = 0;
	for (int n = 1; n <= MAX_HOME_NODES; n++)
		left += RQ[n].n - RQ[n].next;
	return left;
}
