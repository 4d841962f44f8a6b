/* The tcp peer link: listening, dialing with backoff, TLS with mutual certificates, the HELLO
 * exchange, choosing one connection when both nodes dialed, heartbeats with RTT echo, and
 * goodbye.  Failure detection itself is heartbeat/detector.c; the wire format frame.c.
 *
 * Connections live in a list.  Closing one only marks it dead and disables it; a reaper
 * event frees it later, so a callback (ours or the user's) never frees a bufferevent whose
 * read loop is still running. */
#include "heartbeat/peer_link.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "heartbeat/detector.h"
#include "heartbeat/peer_tls.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/log.h"

#define BACKOFF_MIN_MS 100u
#define DIAL_GRACE_MS 250u  /* the higher-id node waits this long before dialing */
#define MAX_PENDING 4       /* unauthenticated connections at once */
#define RTT_MAX_US 60000000 /* larger echoes are bogus */

enum conn_phase {
	CONN_TLS,     /* TCP connect and TLS handshake */
	CONN_HELLO,   /* TLS up, our HELLO sent, waiting for theirs */
	CONN_SESSION, /* the link's current connection */
	CONN_LINGER,  /* our GOODBYE queued: flush, half-close, wait for the peer to close */
};

struct peer_conn {
	struct peer_link *link;
	struct peer_conn *next;
	struct bufferevent *bev;
	struct event *timer; /* handshake deadline, then linger deadline */
	bool outgoing;
	bool dead;
	enum conn_phase phase;
	uint8_t version; /* negotiated protocol version */
	struct frame_hello hello;
	uint64_t last_seq;
	uint64_t opened_us;
};

struct peer_link {
	struct event_base *base;
	struct peer_link_config cfg;
	char *listen, *peer_address, *peer_name;
	struct peer_link_callbacks cbs;
	void *arg;
	SSL_CTX *ctx;
	struct evconnlistener *listener;
	struct sockaddr_storage peer_sa;
	int peer_salen;
	struct peer_conn *conns;
	struct peer_conn *session;
	struct peer_conn *dialing;
	struct event *hb_timer, *dead_timer, *dial_timer, *reap_ev, *closed_ev;
	uint32_t backoff_ms;
	uint64_t last_fail_log_ms;
	struct detector det;
	uint32_t peer_id; /* from the last HELLO, 0 = not known yet */
	struct frame_hello peer_hello;
	uint64_t peer_last_seq; /* across connections, for gap counting */
	uint64_t echo_time_us, echo_rx_us;
	struct hb_state local;
	uint64_t hb_seq;
	uint64_t created_us;
	uint64_t last_rx_us;
	bool stopping;
	struct peer_link_stats st;
};

static const char *conn_dir(const struct peer_conn *c)
{
	return c->outgoing ? "outgoing" : "incoming";
}

/* Connection failures repeat at every redial while a peer is down or misconfigured: warn at
 * most every FAIL_LOG_MS, the rest goes to the debug log. */
#define FAIL_LOG_MS 10000u

static bool link_fail_log_due(struct peer_link *link)
{
	uint64_t t = (uint64_t)clock_mono_ms();

	if (link->last_fail_log_ms && t - link->last_fail_log_ms < FAIL_LOG_MS)
		return false;
	link->last_fail_log_ms = t;
	return true;
}

/* Why a handshake failed: the certificate verdict, then the OpenSSL errors libevent saved
 * (it also saves bare SSL_get_error() codes, library 0, which say nothing more).  Returns
 * how many real TLS reasons there were (0: not a TLS failure, e.g. connection refused). */
static int tls_failure_log(struct peer_conn *c, bool loud)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long e;
	char buf[256];
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	int n = 0;

	if (vr != X509_V_OK) {
		(loud ? log_warnx : log_debug)("peer: %s connection: peer certificate rejected: %s",
					       conn_dir(c), X509_verify_cert_error_string(vr));
		n++;
	}
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue;
		ERR_error_string_n(e, buf, sizeof buf);
		(loud ? log_warnx : log_debug)("peer: %s connection: TLS: %s", conn_dir(c), buf);
		n++;
	}
	return n;
}

/* ---- connections ---- */

static void link_dial_schedule(struct peer_link *link, uint64_t delay_ms);
static void link_session_lost(struct peer_link *link);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

static void conn_close(struct peer_conn *c)
{
	struct peer_link *link = c->link;
	bool was_session = link->session == c;

	if (c->dead)
		return;
	c->dead = true;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	evtimer_del(c->timer);
	if (link->dialing == c)
		link->dialing = NULL;
	if (was_session) {
		link->session = NULL;
		link->st.connected = 0;
		link->st.session_outgoing = 0;
	}
	event_active(link->reap_ev, EV_TIMEOUT, 0);
	if (was_session && !link->stopping)
		link_session_lost(link);
}

static void conn_destroy(struct peer_conn *c)
{
	bufferevent_free(c->bev);
	event_free(c->timer);
	free(c);
}

static void link_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;
	struct peer_conn **pp = &link->conns;

	while (*pp) {
		struct peer_conn *c = *pp;
		if (c->dead) {
			*pp = c->next;
			conn_destroy(c);
		} else {
			pp = &c->next;
		}
	}
}

static int link_pending_count(const struct peer_link *link)
{
	int n = 0;
	for (const struct peer_conn *c = link->conns; c; c = c->next)
		if (!c->dead && c->phase < CONN_SESSION)
			n++;
	return n;
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg);

static struct peer_conn *conn_new(struct peer_link *link, evutil_socket_t fd, bool outgoing)
{
	struct peer_conn *c = calloc(1, sizeof *c);
	SSL *ssl;
	struct timeval tv = clock_tv_ms(link->cfg.connect_timeout_ms);

	if (!c) {
		log_warn("peer: calloc");
		return NULL;
	}
	ssl = peer_tls_new(link->ctx, link->peer_name, outgoing);
	if (!ssl) {
		free(c);
		return NULL;
	}
	c->link = link;
	c->outgoing = outgoing;
	c->phase = CONN_TLS;
	c->opened_us = (uint64_t)clock_mono_us();
	c->bev = bufferevent_openssl_socket_new(
		link->base, fd, ssl, outgoing ? BUFFEREVENT_SSL_CONNECTING : BUFFEREVENT_SSL_ACCEPTING,
		BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->bev) {
		log_warnx("peer: cannot create a TLS bufferevent");
		SSL_free(ssl);
		free(c);
		return NULL;
	}
	c->timer = evtimer_new(link->base, conn_timeout_cb, c);
	if (!c->timer) {
		bufferevent_free(c->bev);
		free(c);
		return NULL;
	}
	/* The peer ends its side by closing after GOODBYE; a missing close_notify is no error. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	/* Read at most one whole frame beyond what is being parsed. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD + 16384);
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	evtimer_add(c->timer, &tv);
	c->next = link->conns;
	link->conns = c;
	return c;
}

static int conn_send(struct peer_conn *c, const struct frame *f)
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

static void conn_send_hello(struct peer_conn *c)
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
	if (conn_send(c, &f) != 0)
		conn_close(c);
}

static void link_send_heartbeat(struct peer_link *link)
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
	if (link->echo_time_us) {
		uint64_t hold = t - link->echo_rx_us;
		f.u.hb.echo_time_us = link->echo_time_us;
		f.u.hb.echo_hold_us = hold > UINT32_MAX ? UINT32_MAX : (uint32_t)hold;
	}
	f.u.hb.st = link->local;
	if (conn_send(c, &f) == 0)
		link->st.heartbeats_tx++;
	detector_heartbeat_sent(&link->det, t / 1000u);
}

/* ---- detector events -> callbacks ---- */

static void link_dead_timer_arm(struct peer_link *link)
{
	uint64_t ms = detector_next_deadline(&link->det, (uint64_t)clock_mono_ms());
	struct timeval tv;

	if (ms == UINT64_MAX) {
		evtimer_del(link->dead_timer);
		return;
	}
	/* +1: libevent may fire a hair early relative to our own clock reading. */
	tv = clock_tv_ms(ms + 1);
	evtimer_add(link->dead_timer, &tv);
}

static void link_report(struct peer_link *link, enum detector_event ev,
			enum peer_down_reason reason, int goodbye_reason)
{
	char hex[2 * FRAME_BOOT_ID_SIZE + 1];

	switch (ev) {
	case DET_NONE:
		return;
	case DET_PEER_RESTARTED:
		log_info("peer: node %u restarted (new boot id) without saying goodbye",
			 link->peer_id);
		link->st.downs++;
		link->st.up = 0;
		if (link->cbs.on_down)
			link->cbs.on_down(link->arg, PEER_DOWN_RESTARTED, 0);
		/* It is up again with the new boot id. */
		__attribute__((fallthrough));
	case DET_PEER_UP:
		for (int i = 0; i < FRAME_BOOT_ID_SIZE; i++)
			snprintf(hex + 2 * i, 3, "%02x", link->peer_hello.boot_id[i]);
		log_info("peer: node %u up, boot id %s", link->peer_id, hex);
		link->st.ups++;
		link->st.up = 1;
		link_dead_timer_arm(link);
		if (link->cbs.on_up)
			link->cbs.on_up(link->arg, link->peer_hello.boot_id, &link->peer_hello);
		return;
	case DET_PEER_DOWN:
	case DET_PEER_GOODBYE:
		if (reason == PEER_DOWN_GOODBYE)
			log_info("peer: node %u said goodbye (%s)", link->peer_id,
				 goodbye_reason_name(goodbye_reason));
		else
			log_warnx("peer: node %u down: %s", link->peer_id,
				  peer_down_reason_name(reason));
		link->st.downs++;
		link->st.up = 0;
		evtimer_del(link->dead_timer);
		if (link->cbs.on_down)
			link->cbs.on_down(link->arg, reason, goodbye_reason);
		return;
	}
}

static void link_dead_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;
	enum detector_event ev = detector_tick(&link->det, (uint64_t)clock_mono_ms());

	if (ev == DET_PEER_DOWN) {
		/* The connection, if any, has been silent for the whole timeout: it is stalled or
		 * half-open.  Drop it and dial afresh. */
		if (link->session)
			conn_close(link->session);
		link_report(link, ev, PEER_DOWN_TIMEOUT, 0);
		return;
	}
	link_dead_timer_arm(link);
}

/* ---- frames in ---- */

static void conn_attempt_failed(struct peer_conn *c);

static void conn_protocol_error(struct peer_conn *c, const char *why)
{
	struct peer_link *link = c->link;
	bool was_session = link->session == c;

	log_warnx("peer: %s connection: protocol error: %s", conn_dir(c), why);
	link->st.protocol_errors++;
	if (link->dialing == c) {
		conn_attempt_failed(c);
		return;
	}
	conn_close(c);
	if (was_session)
		link_report(link, detector_on_protocol_error(&link->det, (uint64_t)clock_mono_ms()),
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
				  "%s one", conn_initiator(old), conn_dir(c));
			conn_close(c);
			return;
		}
		log_debug("peer: %s connection replaces the one opened by node %u", conn_dir(c),
			  conn_initiator(old));
		link->session = NULL; /* a replacement, not a loss: no redial from conn_close */
		conn_close(old);
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
	log_info("peer: %s connection to node %u established (protocol %u)", conn_dir(c),
		 link->peer_id, c->version);
	ev = detector_on_hello(&link->det, c->hello.boot_id, (uint64_t)clock_mono_ms());
	link_send_heartbeat(link);
	if (ev == DET_NONE) {
		if (link->cbs.on_reconnect)
			link->cbs.on_reconnect(link->arg);
	} else {
		link_report(link, ev, 0, 0);
	}
	/* The lower-id node still dials if the session is the peer's connection. */
	if (link->session == c && !c->outgoing && link->cfg.node_id < link->peer_id)
		link_dial_schedule(link, BACKOFF_MIN_MS);
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
	/* Our own send time came back: RTT = now - then - time the peer held it. */
	if (hb->echo_time_us >= link->created_us && hb->echo_time_us <= t) {
		uint64_t elapsed = t - hb->echo_time_us;
		if (elapsed >= hb->echo_hold_us && elapsed - hb->echo_hold_us <= RTT_MAX_US) {
			uint32_t rtt = (uint32_t)(elapsed - hb->echo_hold_us);
			struct peer_link_stats *s = &link->st;
			if (s->rtt_samples == 0) {
				s->rtt_min_us = s->rtt_max_us = s->rtt_srtt_us = rtt;
				s->rtt_rttvar_us = rtt / 2;
			} else {
				uint32_t dev = rtt > s->rtt_srtt_us ? rtt - s->rtt_srtt_us
								    : s->rtt_srtt_us - rtt;
				s->rtt_rttvar_us = (uint32_t)(((uint64_t)s->rtt_rttvar_us * 3 + dev) / 4);
				s->rtt_srtt_us = (uint32_t)(((uint64_t)s->rtt_srtt_us * 7 + rtt) / 8);
				if (rtt < s->rtt_min_us)
					s->rtt_min_us = rtt;
				if (rtt > s->rtt_max_us)
					s->rtt_max_us = rtt;
			}
			s->rtt_last_us = rtt;
			s->rtt_samples++;
		}
	}
	if (link->cbs.on_heartbeat)
		link->cbs.on_heartbeat(link->arg, &hb->st);
}

static void conn_tls_up(struct peer_conn *c);

static void conn_on_frame(struct peer_conn *c, const struct frame *f)
{
	struct peer_link *link = c->link;

	link->st.frames_rx++;
	if (c->phase == CONN_LINGER)
		return; /* we said goodbye; whatever comes now is irrelevant */
	if (c->phase == CONN_TLS) {
		/* Data before our CONNECTED event was handled: finish that step first. */
		conn_tls_up(c);
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
		link_report(link, detector_on_frame(&link->det, (uint64_t)clock_mono_ms()), 0, 0);
		if (!c->dead)
			conn_on_heartbeat(c, f);
		return;
	case FRAME_GOODBYE:
		/* Close first: the peer is leaving, there is nothing to redial for now. */
		conn_close(c);
		link_report(link, detector_on_goodbye(&link->det, (uint64_t)clock_mono_ms()), PEER_DOWN_GOODBYE,
			    f->u.bye.reason);
		return;
	case FRAME_APP:
		link_report(link, detector_on_frame(&link->det, (uint64_t)clock_mono_ms()), 0, 0);
		link->st.app_rx++;
		if (!c->dead && link->cbs.on_app)
			link->cbs.on_app(link->arg, f->u.app.subtype, f->u.app.payload, f->u.app.len);
		return;
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
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
			conn_close(c);
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

/* ---- connection events ---- */

static void conn_attempt_failed(struct peer_conn *c)
{
	struct peer_link *link = c->link;
	bool was_dialing = link->dialing == c;

	conn_close(c);
	if (was_dialing && !link->stopping) {
		link->st.connects_failed++;
		link->backoff_ms = link->backoff_ms ? link->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (link->backoff_ms > link->cfg.connect_timeout_ms)
			link->backoff_ms = link->cfg.connect_timeout_ms;
		link_dial_schedule(link, link->backoff_ms);
	}
}

static void conn_linger_done(struct peer_conn *c)
{
	struct peer_link *link = c->link;

	conn_close(c);
	event_active(link->closed_ev, EV_TIMEOUT, 0);
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_conn *c = arg;

	if (c->phase == CONN_LINGER) {
		log_warnx("peer: goodbye not acknowledged within %ums, closing",
			  c->link->cfg.connect_timeout_ms);
		conn_linger_done(c);
		return;
	}
	(link_fail_log_due(c->link) ? log_warnx : log_debug)(
		"peer: %s connection: no %s within %ums", conn_dir(c),
		  c->phase == CONN_TLS ? "TLS handshake" : "HELLO", c->link->cfg.connect_timeout_ms);
	conn_attempt_failed(c);
}

static void conn_tls_up(struct peer_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	int one = 1;

	/* The handshake cannot succeed otherwise (SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT), but
	 * a certificate-less success would be a silent hole: check again. */
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK || !SSL_get0_peer_certificate(ssl)) {
		c->link->st.tls_failures++;
		log_warnx("peer: %s connection: peer certificate not verified", conn_dir(c));
		conn_attempt_failed(c);
		return;
	}
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (c->outgoing)
		c->link->st.connects_ok++;
	c->phase = CONN_HELLO;
	conn_send_hello(c);
}

static void conn_linger_write_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;
	evutil_socket_t fd = bufferevent_getfd(bev);

	/* GOODBYE is in the kernel.  Half-close and keep reading until the peer closes: closing
	 * with unread input would send a reset, which can destroy the goodbye in flight. */
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	bufferevent_setcb(bev, conn_read_cb, NULL, conn_event_cb, c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer_conn *c = arg;
	struct peer_link *link = c->link;
	bool loud;

	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_up(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->phase == CONN_LINGER) {
		conn_linger_done(c);
		return;
	}
	if (c->phase == CONN_SESSION) {
		int err = EVUTIL_SOCKET_ERROR();
		if ((what & BEV_EVENT_ERROR) && err)
			log_warnx("peer: connection to node %u lost: %s", link->peer_id,
				  evutil_socket_error_to_string(err));
		else
			log_info("peer: connection to node %u closed by the peer", link->peer_id);
		tls_failure_log(c, false);
		conn_close(c);
		return;
	}
	loud = link_fail_log_due(link);
	if (tls_failure_log(c, loud) > 0) {
		link->st.tls_failures++;
	} else {
		int err = EVUTIL_SOCKET_ERROR();
		(loud ? log_info : log_debug)(
			"peer: %s connection failed %s: %s", conn_dir(c),
			c->phase == CONN_HELLO ? "before HELLO" : "during connect/TLS handshake",
			(what & BEV_EVENT_ERROR) && err ? evutil_socket_error_to_string(err)
							: "refused or closed by the other end");
	}
	conn_attempt_failed(c);
}

/* ---- dialing ---- */

static bool link_should_dial(const struct peer_link *link)
{
	if (link->stopping || link->peer_salen == 0 || link->dialing)
		return false;
	if (!link->session)
		return true;
	/* Our own connection wins when we are the lower id: dial even though one exists. */
	return !link->session->outgoing && link->cfg.node_id < link->peer_id;
}

static void link_dial_schedule(struct peer_link *link, uint64_t delay_ms)
{
	struct timeval tv = clock_tv_ms(delay_ms);

	if (link->stopping || link->peer_salen == 0)
		return;
	evtimer_add(link->dial_timer, &tv);
}

static void link_dial_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;
	struct peer_conn *c;

	if (!link_should_dial(link))
		return;
	c = conn_new(link, -1, true);
	if (!c) {
		link_dial_schedule(link, link->cfg.connect_timeout_ms);
		return;
	}
	link->dialing = c;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&link->peer_sa,
				       link->peer_salen) != 0) {
		log_debug("peer: connect to %s failed at once", link->peer_address);
		conn_attempt_failed(c);
	}
}

static void link_session_lost(struct peer_link *link)
{
	/* The lower id (or an unknown order) redials at once; the higher waits a little so
	 * that in the usual case only one connection is made. */
	bool lower = link->peer_id == 0 || link->cfg.node_id < link->peer_id;
	link_dial_schedule(link, lower ? 0 : DIAL_GRACE_MS);
}

/* ---- listening ---- */

static void link_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			   int salen, void *arg)
{
	struct peer_link *link = arg;
	struct peer_conn *c;

	if (link->stopping || link_pending_count(link) >= MAX_PENDING) {
		log_warnx("peer: refusing a connection (%s)",
			  link->stopping ? "stopping" : "too many unauthenticated");
		evutil_closesocket(fd);
		return;
	}
	link->st.accepts++;
	c = conn_new(link, fd, false);
	if (!c)
		evutil_closesocket(fd);
}

static void link_accept_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("peer: accept");
}

/* ---- timers ---- */

static void link_hb_cb(evutil_socket_t fd, short what, void *arg)
{
	link_send_heartbeat(arg);
}

static void link_closed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;

	if (link->cbs.on_closed)
		link->cbs.on_closed(link->arg);
}

/* ---- public ---- */

void peer_link_config_from(struct peer_link_config *out, const struct duet_config *cfg)
{
	memset(out, 0, sizeof *out);
	out->node_id = (uint32_t)cfg->node_id;
	out->listen = cfg->peer_listen;
	out->peer_address = cfg->peer_address;
	out->peer_name = cfg->peer_node_name;
	out->tls_ca = cfg->peer_tls_ca;
	out->tls_cert = cfg->peer_tls_cert;
	out->tls_key = cfg->peer_tls_key;
	out->heartbeat_interval_ms = (uint32_t)cfg->peer_heartbeat_interval_ms;
	out->dead_timeout_ms = (uint32_t)cfg->peer_dead_timeout_ms;
	out->connect_timeout_ms = (uint32_t)cfg->peer_connect_timeout_ms;
}

static bool str_set(const char *s)
{
	return s && s[0];
}

static int config_check(const struct peer_link_config *cfg)
{
	struct detector_config dc = {cfg->heartbeat_interval_ms, cfg->dead_timeout_ms};

	if (cfg->node_id == 0) {
		log_warnx("peer: node id must be non-zero");
		return -1;
	}
	if (!str_set(cfg->peer_name) || !str_set(cfg->tls_ca) || !str_set(cfg->tls_cert) ||
	    !str_set(cfg->tls_key)) {
		log_warnx("peer: node_name, tls_ca, tls_cert and tls_key are required");
		return -1;
	}
	if (!str_set(cfg->listen) && !str_set(cfg->peer_address)) {
		log_warnx("peer: neither listen nor peer_address is set");
		return -1;
	}
	if (detector_config_check(&dc) != 0) {
		log_warnx("peer: dead_timeout (%ums) must be at least %d heartbeat intervals (%ums)",
			  cfg->dead_timeout_ms, DETECTOR_MIN_INTERVALS, cfg->heartbeat_interval_ms);
		return -1;
	}
	if (cfg->connect_timeout_ms == 0) {
		log_warnx("peer: connect_timeout must be non-zero");
		return -1;
	}
	return 0;
}

static int link_listen(struct peer_link *link)
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

struct peer_link *peer_link_new(struct event_base *base, const struct peer_link_config *cfg,
				const struct peer_link_callbacks *cbs, void *arg)
{
	struct peer_link *link;
	struct detector_config dc = {cfg->heartbeat_interval_ms, cfg->dead_timeout_ms};
	struct timeval hb = clock_tv_ms(cfg->heartbeat_interval_ms);
	static const uint8_t zero[FRAME_BOOT_ID_SIZE];

	if (config_check(cfg) != 0)
		return NULL;
	link = calloc(1, sizeof *link);
	if (!link) {
		log_warn("peer: calloc");
		return NULL;
	}
	link->base = base;
	link->cfg = *cfg;
	link->cbs = *cbs;
	link->arg = arg;
	link->created_us = (uint64_t)clock_mono_us();
	link->listen = strdup(str_set(cfg->listen) ? cfg->listen : "");
	link->peer_address = strdup(str_set(cfg->peer_address) ? cfg->peer_address : "");
	link->peer_name = strdup(cfg->peer_name);
	/* Only our copies are used from here on. */
	link->cfg.listen = link->listen;
	link->cfg.peer_address = link->peer_address;
	link->cfg.peer_name = link->peer_name;
	link->cfg.tls_ca = link->cfg.tls_cert = link->cfg.tls_key = NULL;
	while (memcmp(link->cfg.boot_id, zero, sizeof zero) == 0)
		if (RAND_bytes(link->cfg.boot_id, FRAME_BOOT_ID_SIZE) != 1) {
			log_warnx("peer: no randomness for the boot id");
			goto fail;
		}
	detector_init(&link->det, &dc, (uint64_t)clock_mono_ms());
	link->hb_timer = event_new(base, -1, EV_PERSIST, link_hb_cb, link);
	link->dead_timer = evtimer_new(base, link_dead_timer_cb, link);
	link->dial_timer = evtimer_new(base, link_dial_cb, link);
	link->reap_ev = event_new(base, -1, 0, link_reap_cb, link);
	link->closed_ev = event_new(base, -1, 0, link_closed_cb, link);
	if (!link->listen || !link->peer_address || !link->peer_name || !link->hb_timer ||
	    !link->dead_timer || !link->dial_timer || !link->reap_ev || !link->closed_ev) {
		log_warnx("peer: out of memory");
		goto fail;
	}
	link->ctx = peer_tls_context_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key);
	if (!link->ctx)
		goto fail;
	if (link->peer_address[0] &&
	    peer_address_resolve(link->peer_address, &link->peer_sa, &link->peer_salen) != 0) {
		log_warnx("peer: cannot parse or resolve peer_address \"%s\"", link->peer_address);
		goto fail;
	}
	if (link->listen[0] && link_listen(link) != 0)
		goto fail;
	evtimer_add(link->hb_timer, &hb);
	link_dial_schedule(link, 0);
	return link;
fail:
	peer_link_free(link);
	return NULL;
}

void peer_link_free(struct peer_link *link)
{
	struct peer_conn *c, *next;

	if (!link)
		return;
	for (c = link->conns; c; c = next) {
		next = c->next;
		conn_destroy(c);
	}
	if (link->listener)
		evconnlistener_free(link->listener);
	if (link->hb_timer)
		event_free(link->hb_timer);
	if (link->dead_timer)
		event_free(link->dead_timer);
	if (link->dial_timer)
		event_free(link->dial_timer);
	if (link->reap_ev)
		event_free(link->reap_ev);
	if (link->closed_ev)
		event_free(link->closed_ev);
	SSL_CTX_free(link->ctx);
	free(link->listen);
	free(link->peer_address);
	free(link->peer_name);
	free(link);
}

void peer_link_set_local_state(struct peer_link *link, const struct hb_state *st)
{
	bool urgent = st->state != link->local.state || st->reason != link->local.reason ||
		      st->services != link->local.services;

	link->local = *st;
	if (urgent && !link->stopping)
		link_send_heartbeat(link);
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
		conn_close(c);
		return -1;
	}
	link->st.frames_tx++;
	link->st.app_tx++;
	link->st.bytes_tx += sizeof hdr + len;
	return 0;
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
			conn_close(c);
	f.u.bye.reason = (uint8_t)goodbye_reason;
	if (!s || s->dead || conn_send(s, &f) != 0) {
		if (s)
			conn_close(s);
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
	bufferevent_setcb(s->bev, conn_read_cb, conn_linger_write_cb, conn_event_cb, s);
	evtimer_del(s->timer);
	evtimer_add(s->timer, &tv);
}

void peer_link_stats_get(const struct peer_link *link, struct peer_link_stats *out)
{
	*out = link->st;
	out->last_rx_age_ms = link->last_rx_us ? ((uint64_t)clock_mono_us() - link->last_rx_us) / 1000u : 0;
}

const uint8_t *peer_link_boot_id(const struct peer_link *link)
{
	return link->cfg.boot_id;
}

int peer_link_listen_port(const struct peer_link *link)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (!link->listener ||
	    getsockname(evconnlistener_get_fd(link->listener), (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

const char *peer_down_reason_name(enum peer_down_reason reason)
{
	switch (reason) {
	case PEER_DOWN_TIMEOUT:
		return "timeout";
	case PEER_DOWN_GOODBYE:
		return "goodbye";
	case PEER_DOWN_PROTOCOL:
		return "protocol-error";
	case PEER_DOWN_RESTARTED:
		return "restarted";
	case PEER_DOWN_MEMBERSHIP:
		return "membership";
	}
	return "?";
}
