/* Frames in on the peer link: the read loop, HELLO and choosing the session connection,
 * heartbeats (sequence gaps, RTT) and APP frames. */
#include "heartbeat/peer_link_internal.h"

#include <string.h>

#include <event2/buffer.h>

#include "heartbeat/hb_echo.h"
#include "lib/clock.h"
#include "lib/log.h"


static void conn_protocol_error(struct peer_conn *c, const char *why)
{
	struct peer_link *link = c->link;
	bool was_session = link->session == c;

	log_warnx("peer: %s connection: protocol error: %s", peer_conn_dir(c), why);
	link->st.protocol_errors++;
	if (link->dialing == c) {
		peer_conn_attempt_failed(c);
		return;
	}
	peer_conn_close(c);
	if (was_session)
		peer_link_report(link, detector_on_protocol_error(&link->det, (uint64_t)clock_mono_ms()),
			    PEER_DOWN_PROTOCOL, 0);
}

/* The node id of whoever opened connection c. */
static uint32_t conn_initiator(const struct peer_conn *c)
{
	return c->outgoing ? c->link->cfg.node_id : c->hello.node_id;
}

/* c completed the HELLO exchange: make it the session, or drop it if the current one wins.
 * The connection opened by the lower node id wins; for the same opener the newer one wins
 * (the older is half-open from before a restart or a reconnect). */
static void conn_adopt(struct peer_conn *c)
{
	struct peer_link *link = c->link;
	struct peer_conn *old = link->session;
	enum detector_event ev;

	if (old) {
		if (conn_initiator(c) > conn_initiator(old)) {
			log_debug("peer: keeping the connection opened by node %u, dropping the "
				  "%s one", conn_initiator(old), peer_conn_dir(c));
			peer_conn_close(c);
			return;
		}
		log_debug("peer: %s connection replaces the one opened by node %u", peer_conn_dir(c),
			  conn_initiator(old));
		link->session = NULL; /* a replacement, not a loss: no redial from peer_conn_close */
		peer_conn_close(old);
	}
	evtimer_del(c->timer);
	c->phase = CONN_SESSION;
	if (link->dialing == c)
		link->dialing = NULL;
	link->session = c;
	link->st.connected = 1;
	link->st.session_outgoing = c->outgoing;
	link->st.sessions++;
	link->backoff_ms = 0;
	link->last_fail_log_ms = 0;
	link->peer_id = c->hello.node_id;
	if (memcmp(link->peer_hello.boot_id, c->hello.boot_id, FRAME_BOOT_ID_SIZE) != 0)
		link->peer_last_seq = 0;
	link->peer_hello = c->hello;
	link->last_rx_us = (uint64_t)clock_mono_us();
	link->echo_time_us = 0; /* echoes refer to the peer's clock of one connection's era */
	log_info("peer: %s connection to node %u established (protocol %u)", peer_conn_dir(c),
		 link->peer_id, c->version);
	ev = detector_on_hello(&link->det, c->hello.boot_id, (uint64_t)clock_mono_ms());
	peer_link_send_heartbeat(link);
	if (ev == DET_NONE) {
		if (link->cbs.on_reconnect)
			link->cbs.on_reconnect(link->arg);
	} else {
		peer_link_report(link, ev, 0, 0);
	}
	/* The lower-id node still dials if the session is the peer's connection. */
	if (link->session == c && !c->outgoing && link->cfg.node_id < link->peer_id)
		peer_link_dial_schedule(link, BACKOFF_MIN_MS);
}

static void conn_on_hello(struct peer_conn *c, const struct frame *f)
{
	struct peer_link *link = c->link;
	const struct frame_hello *h = &f->u.hello;
	unsigned common = h->version_max < FRAME_VERSION_MAX ? h->version_max : FRAME_VERSION_MAX;
	unsigned floor = h->version_min > FRAME_VERSION_MIN ? h->version_min : FRAME_VERSION_MIN;

	if (common < floor) {
		log_warnx("peer: node %u speaks protocol %u-%u, we speak %u-%u", h->node_id,
			  h->version_min, h->version_max, FRAME_VERSION_MIN, FRAME_VERSION_MAX);
		conn_protocol_error(c, "no common protocol version");
		return;
	}
	if (h->node_id == link->cfg.node_id) {
		conn_protocol_error(c, "the peer has our node id (check [node] id on both nodes)");
		return;
	}
	if (link->peer_id && h->node_id != link->peer_id)
		log_warnx("peer: peer node id changed from %u to %u", link->peer_id, h->node_id);
	if (h->heartbeat_interval_ms != link->cfg.heartbeat_interval_ms ||
	    h->dead_timeout_ms != link->cfg.dead_timeout_ms)
		log_warnx("peer: node %u uses heartbeat_interval %ums / dead_timeout %ums, we use "
			  "%ums / %ums", h->node_id, h->heartbeat_interval_ms, h->dead_timeout_ms,
			  link->cfg.heartbeat_interval_ms, link->cfg.dead_timeout_ms);
	c->hello = *h;
	c->version = (uint8_t)common;
	conn_adopt(c);
}

static void conn_on_heartbeat(struct peer_conn *c, const struct frame *f)
{
	struct peer_link *link = c->link;
	const struct frame_heartbeat *hb = &f->u.hb;
	uint64_t t = (uint64_t)clock_mono_us();

	if (hb->seq <= c->last_seq) {
		conn_protocol_error(c, "heartbeat sequence went backwards");
		return;
	}
	c->last_seq = hb->seq;
	if (link->peer_last_seq && hb->seq > link->peer_last_seq + 1)
		link->st.heartbeat_gaps += hb->seq - link->peer_last_seq - 1;
	if (hb->seq > link->peer_last_seq)
		link->peer_last_seq = hb->seq;
	link->st.heartbeats_rx++;
	link->echo_time_us = hb->send_time_us;
	link->echo_rx_us = t;
	hb_echo_rtt(&link->st, hb, link->created_us, t);
	if (link->cbs.on_heartbeat)
		link->cbs.on_heartbeat(link->arg, &hb->st);
}

static void conn_on_frame(struct peer_conn *c, const struct frame *f)
{
	struct peer_link *link = c->link;

	link->st.frames_rx++;
	if (c->phase == CONN_LINGER)
		return; /* we said goodbye; whatever comes now is irrelevant */
	if (c->phase == CONN_TLS) {
		/* Data before our CONNECTED event was handled: finish that step first. */
		peer_conn_tls_up(c);
		if (c->dead)
			return;
	}
	if (c->phase != CONN_SESSION) {
		if (f->h.type != FRAME_HELLO) {
			conn_protocol_error(c, "first frame is not HELLO");
			return;
		}
		conn_on_hello(c, f);
		return;
	}
	if (f->h.version != c->version) {
		conn_protocol_error(c, "frame version differs from the negotiated one");
		return;
	}
	link->last_rx_us = (uint64_t)clock_mono_us();
	switch (f->h.type) {
	case FRAME_HELLO:
		conn_protocol_error(c, "second HELLO");
		return;
	case FRAME_HEARTBEAT:
		peer_link_report(link, detector_on_frame(&link->det, (uint64_t)clock_mono_ms()), 0, 0);
		if (!c->dead)
			conn_on_heartbeat(c, f);
		return;
	case FRAME_GOODBYE:
		/* Close first: the peer is leaving, there is nothing to redial for now. */
		peer_conn_close(c);
		peer_link_report(link, detector_on_goodbye(&link->det, (uint64_t)clock_mono_ms()), PEER_DOWN_GOODBYE,
			    f->u.bye.reason);
		return;
	case FRAME_APP:
		peer_link_report(link, detector_on_frame(&link->det, (uint64_t)clock_mono_ms()), 0, 0);
		link->st.app_rx++;
		if (!c->dead && link->cbs.on_app)
			link->cbs.on_app(link->arg, f->u.app.subtype, f->u.app.payload, f->u.app.len);
		return;
	}
}

void peer_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->dead) {
		size_t have = evbuffer_get_length(in), total, used;
		struct frame_header h;
		struct frame f;
		const uint8_t *p;
		int r;

		if (c->phase == CONN_LINGER) {
			evbuffer_drain(in, have);
			return;
		}
		if (have < FRAME_HEADER_SIZE)
			return;
		p = evbuffer_pullup(in, FRAME_HEADER_SIZE);
		r = frame_header_decode(p, FRAME_HEADER_SIZE, &h);
		if (r < 0) {
			conn_protocol_error(c, frame_strerror(r));
			return;
		}
		total = FRAME_HEADER_SIZE + (size_t)h.length;
		if (have < total)
			return;
		p = evbuffer_pullup(in, (ev_ssize_t)total);
		if (!p) {
			log_warnx("peer: out of memory reading a frame");
			peer_conn_close(c);
			return;
		}
		r = frame_decode(p, total, &f, &used);
		if (r != FRAME_OK) {
			conn_protocol_error(c, frame_strerror(r));
			return;
		}
		c->link->st.bytes_rx += used;
		conn_on_frame(c, &f);
		/* The callbacks may have closed c, but its buffers live until the reaper runs. */
		evbuffer_drain(in, used);
	}
}
