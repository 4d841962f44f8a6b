/* Frames out on the peer link: HELLO, heartbeats (with the RTT echo) and APP frames. */
#include "heartbeat/peer_link_internal.h"

#include <string.h>

#include <event2/buffer.h>

#include "heartbeat/hb_echo.h"
#include "lib/clock.h"
#include "lib/log.h"

int peer_conn_send(struct peer_conn *c, const struct frame *f)
{
	uint8_t buf[FRAME_HEADER_SIZE + FRAME_HEARTBEAT_SIZE + FRAME_HELLO_SIZE];
	long n = frame_encode(f, c->version ? c->version : FRAME_VERSION_MIN, buf, sizeof buf);

	if (n < 0) {
		log_warnx("peer: cannot encode %s: %s", frame_type_name(f->h.type),
			  frame_strerror((int)n));
		return -1;
	}
	if (bufferevent_write(c->bev, buf, (size_t)n) != 0)
		return -1;
	c->link->st.frames_tx++;
	c->link->st.bytes_tx += (uint64_t)n;
	return 0;
}

void peer_conn_send_hello(struct peer_conn *c)
{
	struct peer_link *link = c->link;
	struct frame f = {.h.type = FRAME_HELLO};

	f.u.hello.version_min = FRAME_VERSION_MIN;
	f.u.hello.version_max = FRAME_VERSION_MAX;
	f.u.hello.node_id = link->cfg.node_id;
	memcpy(f.u.hello.boot_id, link->cfg.boot_id, FRAME_BOOT_ID_SIZE);
	f.u.hello.heartbeat_interval_ms = link->cfg.heartbeat_interval_ms;
	f.u.hello.dead_timeout_ms = link->cfg.dead_timeout_ms;
	/* HELLO always goes out in the lowest version's framing (c->version is still 0): the
	 * peer can read it before anything is negotiated. */
	if (peer_conn_send(c, &f) != 0)
		peer_conn_close(c);
}

void peer_link_send_heartbeat(struct peer_link *link)
{
	struct peer_conn *c = link->session;
	struct frame f = {.h.type = FRAME_HEARTBEAT};
	uint64_t t = (uint64_t)clock_mono_us();

	if (!c || c->dead || c->phase != CONN_SESSION)
		return;
	/* A peer that reads nothing is caught by its own silence; do not grow the queue. */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 2 * PEER_LINK_MAX_QUEUE)
		return;
	f.u.hb.seq = ++link->hb_seq;
	f.u.hb.send_time_us = t;
	hb_echo_fill(&f.u.hb, t, link->echo_time_us, link->echo_rx_us);
	f.u.hb.st = link->local;
	if (peer_conn_send(c, &f) == 0)
		link->st.heartbeats_tx++;
	detector_heartbeat_sent(&link->det, t / 1000u);
}

void peer_link_hb_cb(evutil_socket_t fd, short what, void *arg)
{
	peer_link_send_heartbeat(arg);
}

void peer_link_set_local_state(struct peer_link *link, const struct hb_state *st)
{
	bool urgent = st->state != link->local.state || st->reason != link->local.reason ||
		      st->services != link->local.services;

	link->local = *st;
	if (urgent && !link->stopping)
		peer_link_send_heartbeat(link);
}

int peer_link_send_app(struct peer_link *link, uint16_t subtype, const void *payload, size_t len)
{
	struct peer_conn *c = link->session;
	uint8_t hdr[FRAME_HEADER_SIZE + 2];
	struct evbuffer *out;

	if (!c || c->dead || c->phase != CONN_SESSION || link->stopping)
		return -1;
	if (frame_app_header_encode(c->version, subtype, len, hdr) != FRAME_OK)
		return -1;
	out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) + len > PEER_LINK_MAX_QUEUE)
		return -1;
	if (bufferevent_write(c->bev, hdr, sizeof hdr) != 0 ||
	    (len && bufferevent_write(c->bev, payload, len) != 0)) {
		/* Half a frame may be queued: the stream is unusable. */
		log_warnx("peer: cannot queue an APP frame, dropping the connection");
		peer_conn_close(c);
		return -1;
	}
	link->st.frames_tx++;
	link->st.app_tx++;
	link->st.bytes_tx += sizeof hdr + len;
	return 0;
}
