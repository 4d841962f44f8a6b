/* Saying goodbye: the GOODBYE frame, then flush, half-close and wait for the peer to close. */
#include "heartbeat/peer_link_internal.h"

#include <sys/socket.h>

#include <event2/event.h>

#include "lib/clock.h"
#include "lib/log.h"

void peer_conn_linger_done(struct peer_conn *c)
{
	struct peer_link *link = c->link;

	peer_conn_close(c);
	event_active(link->closed_ev, EV_TIMEOUT, 0);
}

static void conn_linger_write_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;
	evutil_socket_t fd = bufferevent_getfd(bev);

	/* GOODBYE is in the kernel.  Half-close and keep reading until the peer closes: closing
	 * with unread input would send a reset, which can destroy the goodbye in flight. */
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	bufferevent_setcb(bev, peer_conn_read_cb, NULL, peer_conn_event_cb, c);
}

void peer_link_goodbye(struct peer_link *link, int goodbye_reason)
{
	struct peer_conn *s = link->session;
	struct frame f = {.h.type = FRAME_GOODBYE};
	struct timeval tv = clock_tv_ms(link->cfg.connect_timeout_ms);

	if (link->stopping)
		return;
	link->stopping = true;
	evtimer_del(link->hb_timer);
	evtimer_del(link->dead_timer);
	evtimer_del(link->dial_timer);
	if (link->listener) {
		evconnlistener_free(link->listener);
		link->listener = NULL;
	}
	for (struct peer_conn *c = link->conns; c; c = c->next)
		if (c != s)
			peer_conn_close(c);
	f.u.bye.reason = (uint8_t)goodbye_reason;
	if (!s || s->dead || peer_conn_send(s, &f) != 0) {
		if (s)
			peer_conn_close(s);
		event_active(link->closed_ev, EV_TIMEOUT, 0);
		return;
	}
	log_info("peer: saying goodbye (%s) to node %u", goodbye_reason_name(goodbye_reason),
		 link->peer_id);
	s->phase = CONN_LINGER;
	link->session = NULL;
	link->st.connected = 0;
	/* Wait for the output to drain (low watermark 0: the write callback fires when empty). */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_setcb(s->bev, peer_conn_read_cb, conn_linger_write_cb, peer_conn_event_cb, s);
	evtimer_del(s->timer);
	evtimer_add(s->timer, &tv);
}
