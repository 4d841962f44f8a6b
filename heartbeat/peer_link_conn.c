/* One peer connection: creation with TLS, its events (connected, failed, timed out), closing
 * and reaping. */
#include "heartbeat/peer_link_internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "heartbeat/peer_tls.h"
#include "lib/clock.h"
#include "lib/log.h"

const char *peer_conn_dir(const struct peer_conn *c)
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
					       peer_conn_dir(c), X509_verify_cert_error_string(vr));
		n++;
	}
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue;
		ERR_error_string_n(e, buf, sizeof buf);
		(loud ? log_warnx : log_debug)("peer: %s connection: TLS: %s", peer_conn_dir(c), buf);
		n++;
	}
	return n;
}

void peer_conn_close(struct peer_conn *c)
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
		peer_link_session_lost(link);
}

void peer_conn_destroy(struct peer_conn *c)
{
	bufferevent_free(c->bev);
	event_free(c->timer);
	free(c);
}

void peer_link_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;
	struct peer_conn **pp = &link->conns;

	while (*pp) {
		struct peer_conn *c = *pp;
		if (c->dead) {
			*pp = c->next;
			peer_conn_destroy(c);
		} else {
			pp = &c->next;
		}
	}
}

int peer_link_pending_count(const struct peer_link *link)
{
	int n = 0;
	for (const struct peer_conn *c = link->conns; c; c = c->next)
		if (!c->dead && c->phase < CONN_SESSION)
			n++;
	return n;
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg);

struct peer_conn *peer_conn_new(struct peer_link *link, evutil_socket_t fd, bool outgoing)
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
	bufferevent_setcb(c->bev, peer_conn_read_cb, NULL, peer_conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	evtimer_add(c->timer, &tv);
	c->next = link->conns;
	link->conns = c;
	return c;
}

void peer_conn_attempt_failed(struct peer_conn *c)
{
	struct peer_link *link = c->link;
	bool was_dialing = link->dialing == c;

	peer_conn_close(c);
	if (was_dialing && !link->stopping) {
		link->st.connects_failed++;
		link->backoff_ms = link->backoff_ms ? link->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (link->backoff_ms > link->cfg.connect_timeout_ms)
			link->backoff_ms = link->cfg.connect_timeout_ms;
		peer_link_dial_schedule(link, link->backoff_ms);
	}
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_conn *c = arg;

	if (c->phase == CONN_LINGER) {
		log_warnx("peer: goodbye not acknowledged within %ums, closing",
			  c->link->cfg.connect_timeout_ms);
		peer_conn_linger_done(c);
		return;
	}
	(link_fail_log_due(c->link) ? log_warnx : log_debug)(
		"peer: %s connection: no %s within %ums", peer_conn_dir(c),
		  c->phase == CONN_TLS ? "TLS handshake" : "HELLO", c->link->cfg.connect_timeout_ms);
	peer_conn_attempt_failed(c);
}

void peer_conn_tls_up(struct peer_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	int one = 1;

	/* The handshake cannot succeed otherwise (SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT), but
	 * a certificate-less success would be a silent hole: check again. */
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK || !SSL_get0_peer_certificate(ssl)) {
		c->link->st.tls_failures++;
		log_warnx("peer: %s connection: peer certificate not verified", peer_conn_dir(c));
		peer_conn_attempt_failed(c);
		return;
	}
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (c->outgoing)
		c->link->st.connects_ok++;
	c->phase = CONN_HELLO;
	peer_conn_send_hello(c);
}

void peer_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer_conn *c = arg;
	struct peer_link *link = c->link;
	bool loud;

	if (what & BEV_EVENT_CONNECTED) {
		peer_conn_tls_up(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (c->phase == CONN_LINGER) {
		peer_conn_linger_done(c);
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
		peer_conn_close(c);
		return;
	}
	loud = link_fail_log_due(link);
	if (tls_failure_log(c, loud) > 0) {
		link->st.tls_failures++;
	} else {
		int err = EVUTIL_SOCKET_ERROR();
		(loud ? log_info : log_debug)(
			"peer: %s connection failed %s: %s", peer_conn_dir(c),
			c->phase == CONN_HELLO ? "before HELLO" : "during connect/TLS handshake",
			(what & BEV_EVENT_ERROR) && err ? evutil_socket_error_to_string(err)
							: "refused or closed by the other end");
	}
	peer_conn_attempt_failed(c);
}
