/* The route link's connection: one TLS connection to the peer engine, mutually
 * authenticated with the group CA ([peer] tls_ca/tls_cert/tls_key, the peer's certificate
 * must name [peer] node_name), framed as docs/route-protocol.md says, kept alive by PINGs
 * and closed after [route] dead_timeout of silence.  Node 1 dials (with backoff), node 2
 * accepts.  An accepted connection stays apart ("pending") until its TLS handshake and
 * HELLO are done, and only then replaces the current one (the dialer dials again only
 * after losing its connection), so a stranger connecting cannot cut the link.  Never blocks: non-blocking connect, the TLS
 * handshake inside bufferevent_openssl.  What the frames mean is route.c's business. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "lib/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static struct {
	bool configured, dial;
	SSL_CTX *ctx;
	struct evconnlistener *listener;
	struct sockaddr_storage peer_sa;
	int peer_salen;
	struct bufferevent *bev;     /* the connection: up, or our outgoing attempt */
	struct bufferevent *pending; /* an accepted connection before its HELLO */
	bool outgoing;
	bool hello_in, up;
	int peer_node;
	uint64_t peer_instance;
	struct event *redial, *ping;
	long backoff_ms;
	bool quiet; /* a failed attempt was logged: log the next ones at debug level */
} L;

static void tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		log_warnx("route: %s: %s", what, buf);
	}
}

/* TLS 1.2+, our certificate, the group CA as the only trust anchor, a certificate
 * required from the other side in both roles. */
static SSL_CTX *tls_ctx_new(const struct duet_config *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (!ctx) {
		tls_log_errors("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->peer_tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->peer_tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, cfg->peer_tls_ca, NULL) != 1) {
		log_warnx("route: cannot load [peer] tls_cert %s, tls_key %s or tls_ca %s",
			  cfg->peer_tls_cert, cfg->peer_tls_key, cfg->peer_tls_ca);
		tls_log_errors("certificates");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	return ctx;
}

/* An SSL accepting only a certificate that names the peer (DNS SAN, or CN without SANs). */
static SSL *tls_new(bool outgoing)
{
	SSL *ssl = SSL_new(L.ctx);
	if (!ssl) {
		tls_log_errors("SSL_new");
		return NULL;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, server.cfg.peer_node_name) != 1 ||
	    (outgoing && SSL_set_tlsext_host_name(ssl, server.cfg.peer_node_name) != 1)) {
		tls_log_errors("SSL_set1_host");
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* ---- what the link has written ---- */

static uint64_t bytes_queued, bytes_written;
static struct event *written_ev; /* conn.c is told from its own callback, never nested */

uint64_t route_link_queued_mark(void) { return bytes_queued; }
bool route_link_written(uint64_t mark) { return bytes_written >= mark; }
uint64_t route_link_unwritten(void) { return bytes_queued - bytes_written; }

static void on_written_ev(evutil_socket_t fd, short what, void *arg) { conn_route_written(); }

static void count_written(size_t n)
{
	bytes_written += n;
	if (!written_ev)
		written_ev = event_new(server.base, -1, 0, on_written_ev, NULL);
	if (written_ev)
		event_active(written_ev, 0, 0);
	else
		conn_route_written();
}

/* bufferevent_openssl drains its output once SSL_write has handed the bytes to the socket. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	if (info->n_deleted)
		count_written(info->n_deleted);
}

/* A connection is freed with output unwritten: those bytes will never be written. */
static void output_abandon(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evbuffer_remove_cb(out, on_output, NULL);
	size_t left = evbuffer_get_length(out);
	if (left)
		count_written(left);
}

bool route_link_configured(void) { return L.configured; }
bool route_link_up(void) { return L.up; }
int route_link_peer_node(void) { return L.up ? L.peer_node : 0; }
uint64_t route_link_peer_instance(void) { return L.up ? L.peer_instance : 0; }

static void schedule_redial(void)
{
	if (!L.dial || server.stopping)
		return;
	struct timeval tv = {L.backoff_ms / 1000, (L.backoff_ms % 1000) * 1000};
	event_add(L.redial, &tv);
	L.backoff_ms = L.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : L.backoff_ms * 2;
}

/* Drop the connection; if it was up, route.c handles the loss. */
static void link_drop(const char *why)
{
	if (!L.bev)
		return;
	bool was_up = L.up;
	if (was_up || !L.quiet)
		log_info("route: link to the peer engine %s: %s%s", was_up ? "lost" : "not up", why,
			 was_up ? "" : " (retrying quietly)");
	else
		log_debug("route: link to the peer engine not up: %s", why);
	L.quiet = !was_up;
	struct bufferevent *bev = L.bev;
	L.bev = NULL;
	L.up = L.hello_in = false;
	L.peer_node = 0;
	L.peer_instance = 0;
	output_abandon(bev);
	bufferevent_free(bev); /* frees the SSL too (BEV_OPT_CLOSE_ON_FREE) */
	if (was_up)
		route_on_down();
	if (was_up && L.dial)
		L.backoff_ms = BACKOFF_MIN_MS;
	schedule_redial();
}

void route_link_close(const char *why) { link_drop(why); }

static void pending_drop(const char *why)
{
	if (!L.pending)
		return;
	log_info("route: incoming connection refused: %s", why);
	struct bufferevent *bev = L.pending;
	L.pending = NULL;
	output_abandon(bev);
	bufferevent_free(bev);
}

/* A failure on bev, whichever of the two it is. */
static void conn_fail(struct bufferevent *bev, const char *why)
{
	if (bev == L.pending)
		pending_drop(why);
	else if (bev == L.bev)
		link_drop(why);
}

static void write_frame(struct evbuffer *out, enum route_frame_type type, const char *head,
			size_t head_len, const char *body, size_t body_len)
{
	unsigned char h[ROUTE_HEADER_SIZE];
	route_frame_header_encode(h, type, (uint32_t)(head_len + body_len));
	bytes_queued += sizeof h + head_len + body_len;
	evbuffer_add(out, h, sizeof h);
	if (head_len)
		evbuffer_add(out, head, head_len);
	if (body_len)
		evbuffer_add(out, body, body_len);
}

int route_link_send(enum route_frame_type type, const char *head, size_t head_len,
		    const char *body, size_t body_len)
{
	if (!L.up || head_len + body_len > ROUTE_MAX_PAYLOAD)
		return -1;
	struct evbuffer *out = bufferevent_get_output(L.bev);
	if (evbuffer_get_length(out) > ROUTE_MAX_QUEUE) {
		link_drop("the peer engine is not reading");
		return -1;
	}
	write_frame(out, type, head, head_len, body, body_len);
	return 0;
}

static void send_hello(struct bufferevent *bev)
{
	char hello[ROUTE_HELLO_MAX];
	int n = route_hello_format(hello, sizeof hello, (int)server.cfg.node_id, route_instance());
	if (n > 0)
		write_frame(bufferevent_get_output(bev), ROUTE_HELLO, hello, (size_t)n, NULL, 0);
}

/* HELLO: a common version and a node id not ours. */
static int hello_check(const char *p, size_t len, struct route_hello *h)
{
	if (route_hello_parse(p, len, h) < 0)
		return -1;
	if (h->vmin > ROUTE_VERSION || h->vmax < ROUTE_VERSION) {
		log_warnx("route: the peer engine speaks versions %u-%u, we speak %d", h->vmin,
			  h->vmax, ROUTE_VERSION);
		return -1;
	}
	if (h->node < 1 || h->node > MAX_HOME_NODES || (long)h->node == server.cfg.node_id) {
		log_warnx("route: the peer engine says it is node %u (we are %ld)", h->node,
			  server.cfg.node_id);
		return -1;
	}
	if (h->instance == route_instance()) {
		log_warnx("route: the peer engine is ourselves (same instance)");
		return -1;
	}
	return 0;
}

/* HELLO on bev checked: it becomes the link (an accepted one replaces the old link). */
static void link_establish(struct bufferevent *bev, const struct route_hello *h)
{
	if (bev == L.pending) {
		L.pending = NULL;
		if (L.bev)
			link_drop("replaced by a new connection from the peer engine");
		event_del(L.redial);
		L.bev = bev;
		L.outgoing = false;
	}
	L.hello_in = L.up = true;
	L.peer_node = (int)h->node;
	L.peer_instance = h->instance;
	L.backoff_ms = BACKOFF_MIN_MS;
	log_info("route: link to the peer engine (node %d) is up (%s)", L.peer_node,
		 L.outgoing ? "outgoing" : "incoming");
}

static void on_read(struct bufferevent *bev, void *arg)
{
	if (bev != L.bev && bev != L.pending)
		return;
	if (server.stopping) {
		/* Our sessions are closing: what the peer sends now could only be dropped or
		 * stored where it cannot be read until we are back.  Closing unread leaves it
		 * unacknowledged, so the peer holds it and delivers it where the user goes. */
		conn_fail(bev, "this engine is stopping");
		return;
	}
	struct evbuffer *in = bufferevent_get_input(bev);
	bool any = false;
	for (;;) {
		unsigned char h[ROUTE_HEADER_SIZE];
		ev_ssize_t got = evbuffer_copyout(in, h, sizeof h);
		enum route_frame_type type;
		uint32_t len;
		int hr = route_frame_header(h, got > 0 ? (size_t)got : 0, &type, &len);
		if (hr > 0)
			break;
		if (hr < 0) {
			conn_fail(bev, "malformed frame header");
			return;
		}
		if (evbuffer_get_length(in) < sizeof h + len)
			break;
		unsigned char *f = evbuffer_pullup(in, (ev_ssize_t)(sizeof h + len));
		if (!f) {
			conn_fail(bev, "out of memory");
			return;
		}
		const char *payload = (const char *)f + sizeof h;
		if (bev == L.pending || !L.hello_in) {
			struct route_hello hello;
			if (type != ROUTE_HELLO || hello_check(payload, len, &hello) < 0) {
				conn_fail(bev, "bad HELLO");
				return;
			}
			evbuffer_drain(in, sizeof h + len);
			link_establish(bev, &hello);
			route_on_up();
		} else if (type == ROUTE_HELLO) {
			link_drop("second HELLO");
			return;
		} else {
			int r = route_on_frame(type, payload, len);
			if (L.bev != bev)
				return; /* closed by a handler */
			if (r < 0) {
				link_drop("malformed frame");
				return;
			}
			evbuffer_drain(in, sizeof h + len);
			any = true;
		}
		if (L.bev != bev)
			return;
	}
	if (any)
		route_on_batch_end();
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (bev != L.bev && bev != L.pending)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		/* TCP connected and the TLS handshake (with the certificate checks) is done. */
		send_hello(bev);
		return;
	}
	char why[160];
	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(why, sizeof why, "nothing received for %ld ms",
			 server.cfg.route_dead_timeout_ms);
	} else if (what & BEV_EVENT_EOF) {
		snprintf(why, sizeof why, "closed by the peer engine");
	} else {
		unsigned long e = bufferevent_get_openssl_error(bev);
		int sock_err = EVUTIL_SOCKET_ERROR();
		if (e) {
			char buf[128];
			ERR_error_string_n(e, buf, sizeof buf);
			snprintf(why, sizeof why, "TLS: %s", buf);
		} else {
			snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(sock_err));
		}
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			;
	}
	conn_fail(bev, why);
}

/* Set up a new connection's callbacks and timers. */
static void conn_setup(struct bufferevent *bev)
{
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	evbuffer_add_cb(bufferevent_get_output(bev), on_output, NULL);
	long ms = server.cfg.route_dead_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	/* The dead timer: the peer PINGs every dead_timeout/3, so silence this long means it
	 * is gone (or stopped); the same bound covers connect and handshake. */
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_redial(evutil_socket_t fd, short what, void *arg)
{
	if (L.bev || server.stopping)
		return;
	SSL *ssl = tls_new(true);
	struct bufferevent *bev =
		ssl ? bufferevent_openssl_socket_new(server.base, -1, ssl,
						     BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE)
		    : NULL;
	if (!bev) {
		if (ssl)
			SSL_free(ssl);
		schedule_redial();
		return;
	}
	L.bev = bev;
	L.outgoing = true;
	L.hello_in = L.up = false;
	conn_setup(bev);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&L.peer_sa, L.peer_salen) < 0) {
		link_drop("connect failed");
		return;
	}
	int one = 1;
	setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	SSL *ssl = tls_new(false);
	struct bufferevent *bev =
		ssl ? bufferevent_openssl_socket_new(server.base, fd, ssl,
						     BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE)
		    : NULL;
	if (!bev) {
		if (ssl)
			SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	pending_drop("superseded by a newer connection");
	L.pending = bev;
	conn_setup(bev);
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
	if (L.up)
		route_link_send(ROUTE_PING, NULL, 0, NULL, 0);
}

int route_link_start(void)
{
	const struct duet_config *cfg = &server.cfg;
	if (!cfg->route_listen[0] && !cfg->route_peer_address[0])
		return 0;
	if (!cfg->peer_tls_ca[0] || !cfg->peer_tls_cert[0] || !cfg->peer_tls_key[0] ||
	    !cfg->peer_node_name[0]) {
		log_warnx("config: [route] needs [peer] tls_ca, tls_cert, tls_key and node_name");
		return -1;
	}
	L.ctx = tls_ctx_new(cfg);
	if (!L.ctx)
		return -1;
	/* With both keys set, node 1 dials and node 2 only accepts: one connection, no race. */
	L.dial = cfg->route_peer_address[0] && (!cfg->route_listen[0] || cfg->node_id == 1);
	if (L.dial) {
		L.peer_salen = sizeof L.peer_sa;
		if (evutil_parse_sockaddr_port(cfg->route_peer_address,
					       (struct sockaddr *)&L.peer_sa, &L.peer_salen) < 0) {
			log_warnx("config: [route] peer_address %s is not a numeric host:port",
				  cfg->route_peer_address);
			return -1;
		}
	}
	if (cfg->route_listen[0]) {
		struct sockaddr_storage ss;
		int len = sizeof ss;
		if (evutil_parse_sockaddr_port(cfg->route_listen, (struct sockaddr *)&ss, &len) < 0) {
			log_warnx("config: [route] listen %s is not a numeric host:port",
				  cfg->route_listen);
			return -1;
		}
		L.listener = evconnlistener_new_bind(server.base, on_accept, NULL,
						     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
							     LEV_OPT_CLOSE_ON_EXEC,
						     16, (struct sockaddr *)&ss, len);
		if (!L.listener) {
			log_warn("route: listen %s", cfg->route_listen);
			return -1;
		}
		log_info("route: listening for the peer engine on %s", cfg->route_listen);
	}
	L.redial = event_new(server.base, -1, 0, on_redial, NULL);
	L.ping = event_new(server.base, -1, EV_PERSIST, on_ping, NULL);
	if (!L.redial || !L.ping)
		return -1;
	long ms = cfg->route_dead_timeout_ms / 3;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(L.ping, &tv);
	L.configured = true;
	L.backoff_ms = BACKOFF_MIN_MS;
	if (L.dial) {
		struct timeval now = {0, 0};
		event_add(L.redial, &now);
	}
	return 0;
}
