/* Making the connection: dialing the peer with backoff, and listening for it. */
#include "heartbeat/peer_link_internal.h"

#include <event2/event.h>

#include "heartbeat/peer_tls.h"
#include "lib/clock.h"
#include "lib/log.h"

#define DIAL_GRACE_MS 250u /* the higher-id node waits this long before dialing */
#define MAX_PENDING 4      /* unauthenticated connections at once */

static bool link_should_dial(const struct peer_link *link)
{
	if (link->stopping || link->peer_salen == 0 || link->dialing)
		return false;
	if (!link->session)
		return true;
	/* Our own connection wins when we are the lower id: dial even though one exists. */
	return !link->session->outgoing && link->cfg.node_id < link->peer_id;
}

void peer_link_dial_schedule(struct peer_link *link, uint64_t delay_ms)
{
	struct timeval tv = clock_tv_ms(delay_ms);

	if (link->stopping || link->peer_salen == 0)
		return;
	evtimer_add(link->dial_timer, &tv);
}

void peer_link_dial_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;
	struct peer_conn *c;

	if (!link_should_dial(link))
		return;
	c = peer_conn_new(link, -1, true);
	if (!c) {
		peer_link_dial_schedule(link, link->cfg.connect_timeout_ms);
		return;
	}
	link->dialing = c;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&link->peer_sa,
				       link->peer_salen) != 0) {
		log_debug("peer: connect to %s failed at once", link->peer_address);
		peer_conn_attempt_failed(c);
	}
}

void peer_link_session_lost(struct peer_link *link)
{
	/* The lower id (or an unknown order) redials at once; the higher waits a little so
	 * that in the usual case only one connection is made. */
	bool lower = link->peer_id == 0 || link->cfg.node_id < link->peer_id;
	peer_link_dial_schedule(link, lower ? 0 : DIAL_GRACE_MS);
}

/* ---- listening ---- */

static void link_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			   int salen, void *arg)
{
	struct peer_link *link = arg;
	struct peer_conn *c;

	if (link->stopping || peer_link_pending_count(link) >= MAX_PENDING) {
		log_warnx("peer: refusing a connection (%s)",
			  link->stopping ? "stopping" : "too many unauthenticated");
		evutil_closesocket(fd);
		return;
	}
	link->st.accepts++;
	c = peer_conn_new(link, fd, false);
	if (!c)
		evutil_closesocket(fd);
}

static void link_accept_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("peer: accept");
}

int peer_link_listen(struct peer_link *link)
{
	struct sockaddr_storage sa;
	int salen;

	if (peer_address_resolve(link->listen, &sa, &salen) != 0) {
		log_warnx("peer: cannot parse or resolve listen address \"%s\"", link->listen);
		return -1;
	}
	link->listener = evconnlistener_new_bind(link->base, link_accept_cb, link,
						 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
							 LEV_OPT_REUSEABLE,
						 16, (struct sockaddr *)&sa, salen);
	if (!link->listener) {
		log_warn("peer: cannot listen on %s", link->listen);
		return -1;
	}
	evconnlistener_set_error_cb(link->listener, link_accept_error_cb);
	return 0;
}
