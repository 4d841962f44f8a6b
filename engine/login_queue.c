/* The login queue (docs/login-profiles.md, "The login queue"): a login that finds no
 * admission (srmd's throttle, the storm guard, logins in progress at their cap) waits here,
 * its stream header answered and its features held back, instead of being turned away at
 * once -- if its turn comes within [xmpp] login_queue_wait at the rate logins are admitted.
 * A refused client reconnects later: a TCP connection, a stream header and a stream error
 * each time, on both sides, and a crowd refused several times over spends on that the CPU
 * its logins needed (a 15,000-client failover drew 38,000-56,000 refusals, docs/
 * benchmarks.md).  A waiting connection costs no CPU.  What arrives beyond the queue's
 * length is refused with retry-after as before.
 *
 * First come, first admitted: a timer every LQ_TICK_MS admits from the head while
 * admission allows, and refuses what waited longer than the limit (the rate fell).  A
 * connection that closes while it waits leaves the queue (login_queue_leave). */
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "engine/engine.h"
#include "lib/clock.h"

#define LQ_TICK_MS 10
#define LQ_DEFAULT_RATE 100.0 /* logins/s assumed when no rate limits admission */

struct login_queue_entry {
	TAILQ_ENTRY(login_queue_entry) link;
	struct conn *c;
	int64_t since; /* clock_mono_ms() */
};

static struct {
	TAILQ_HEAD(login_queue_head, login_queue_entry) q;
	long len;
	uint64_t total; /* ever queued */
	struct event *tick;
} LQ = {.q = TAILQ_HEAD_INITIALIZER(LQ.q)};

static void remove_entry(struct login_queue_entry *e)
{
	TAILQ_REMOVE(&LQ.q, e, link);
	LQ.len--;
	conn_set_queue_entry(e->c, NULL);
	free(e);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	struct login_queue_entry *e;
	while ((e = TAILQ_FIRST(&LQ.q)) && conn_take_admission(e->c)) {
		struct conn *c = e->c;
		remove_entry(e);
		conn_queue_admitted(c);
	}
	/* The oldest first: what waited past the limit is refused as it would have been. */
	int64_t now = clock_mono_ms();
	while ((e = TAILQ_FIRST(&LQ.q)) && now - e->since > server.cfg.login_queue_wait_ms) {
		struct conn *c = e->c;
		remove_entry(e);
		conn_refuse_login(c);
	}
	if (LQ.len > 0) {
		struct timeval tv = clock_tv_ms(LQ_TICK_MS);
		event_add(LQ.tick, &tv);
	}
}

/* Logins admitted per second while the queue drains: what admission ran at in the last
 * second, the throttle's rate, or the measured capacity when only the cap on logins in
 * progress holds them back. */
static double drain_rate(void)
{
	double r = login_admission_rate();
	if (r <= 0)
		r = login_capacity_per_s();
	return r > 0 ? r : LQ_DEFAULT_RATE;
}

bool login_queue_enter(struct conn *c)
{
	if (server.cfg.login_queue_wait_ms <= 0)
		return false;
	double room = drain_rate() * (double)server.cfg.login_queue_wait_ms / 1000.0;
	if ((double)(LQ.len + 1) > room)
		return false;
	if (!LQ.tick && !(LQ.tick = evtimer_new(server.base, on_tick, NULL)))
		return false;
	struct login_queue_entry *e = calloc(1, sizeof *e);
	if (!e)
		return false;
	e->c = c;
	e->since = clock_mono_ms();
	TAILQ_INSERT_TAIL(&LQ.q, e, link);
	LQ.len++;
	LQ.total++;
	conn_set_queue_entry(c, e);
	login_guard_raise(); /* more logins than admitted: the guard stays up */
	if (!evtimer_pending(LQ.tick, NULL)) {
		struct timeval tv = clock_tv_ms(LQ_TICK_MS);
		evtimer_add(LQ.tick, &tv);
	}
	return true;
}

void login_queue_leave(struct login_queue_entry *e)
{
	if (e)
		remove_entry(e);
}

long login_queue_length(void) { return LQ.len; }
uint64_t login_queue_total(void) { return LQ.total; }
