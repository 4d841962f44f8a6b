/* Offline messages that replication writes (docs/replication-protocol.md): the peer's
 * srmd applies them in replica mode, so no engine saw them, and a recipient already online
 * here would get them only at its next login.  Schema migration 5 makes every such row
 * announce itself (NOTIFY duet_offline, payload: the username); this engine LISTENs on a
 * connection of its own and flushes the store of a recipient that is online.
 *
 * The connection is asynchronous like the pool's (PQconnectStart/PQconnectPoll driven by
 * libevent) and comes back after a failure, after LISTEN_RETRY_MS; a notification lost
 * meanwhile costs only the delay until the recipient's next login, as before. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "engine/engine.h"
#include "lib/log.h"

#define LISTEN_RETRY_MS 1000

static struct {
	PGconn *pq;
	struct event *ev;    /* connecting: one-shot per poll step; then persistent read */
	struct event *retry;
	bool down_logged;
} L;

static void stop(const char *why)
{
	if (L.pq && !L.down_logged)
		log_warnx("offline listen: %s (retrying)", why);
	L.down_logged = true;
	if (L.ev)
		event_free(L.ev);
	L.ev = NULL;
	PQfinish(L.pq);
	L.pq = NULL;
	struct timeval tv = {LISTEN_RETRY_MS / 1000, (LISTEN_RETRY_MS % 1000) * 1000};
	if (L.retry)
		event_add(L.retry, &tv);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	if (!PQconsumeInput(L.pq)) {
		stop(PQerrorMessage(L.pq));
		return;
	}
	PGresult *r;
	while (!PQisBusy(L.pq) && (r = PQgetResult(L.pq))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			char why[256];
			snprintf(why, sizeof why, "LISTEN failed: %s", PQresultErrorMessage(r));
			PQclear(r);
			stop(why);
			return;
		}
		PQclear(r);
	}
	PGnotify *n;
	while ((n = PQnotifies(L.pq))) {
		struct user *u = user_find_loaded(n->extra);
		if (u)
			offline_replicated(u);
		PQfreemem(n);
	}
}

static void listen_now(void)
{
	if (!PQsendQuery(L.pq, "LISTEN duet_offline")) {
		stop(PQerrorMessage(L.pq));
		return;
	}
	PQflush(L.pq); /* a few bytes on a fresh socket: they fit */
	L.ev = event_new(server.base, PQsocket(L.pq), EV_READ | EV_PERSIST, on_read, NULL);
	if (!L.ev || event_add(L.ev, NULL) < 0) {
		stop("out of memory");
		return;
	}
	if (L.down_logged)
		log_info("offline listen: connected again");
	L.down_logged = false;
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	if (L.ev)
		event_free(L.ev);
	L.ev = NULL;
	switch (PQconnectPoll(L.pq)) {
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(L.pq, 1) < 0) {
			stop(PQerrorMessage(L.pq));
			return;
		}
		listen_now();
		return;
	case PGRES_POLLING_READING:
		L.ev = event_new(server.base, PQsocket(L.pq), EV_READ, on_connect, NULL);
		break;
	case PGRES_POLLING_WRITING:
		L.ev = event_new(server.base, PQsocket(L.pq), EV_WRITE, on_connect, NULL);
		break;
	default:
		stop(PQerrorMessage(L.pq));
		return;
	}
	if (!L.ev || event_add(L.ev, NULL) < 0)
		stop("out of memory");
}

static void start(void)
{
	L.pq = PQconnectStart(server.cfg.db_conninfo);
	if (!L.pq || PQstatus(L.pq) == CONNECTION_BAD) {
		stop(L.pq ? PQerrorMessage(L.pq) : "out of memory");
		return;
	}
	/* The documented first step: as if PQconnectPoll had answered POLLING_WRITING. */
	L.ev = event_new(server.base, PQsocket(L.pq), EV_WRITE, on_connect, NULL);
	if (!L.ev || event_add(L.ev, NULL) < 0)
		stop("out of memory");
}

static void on_retry(evutil_socket_t fd, short what, void *arg) { start(); }

void offline_listen_start(void)
{
	if (!L.retry)
		L.retry = event_new(server.base, -1, 0, on_retry, NULL);
	start();
}
