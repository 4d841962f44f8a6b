/* One client connection (RFC 6120): TCP or direct TLS, STARTTLS, stream headers and
 * features, SASL (through conn_auth.c), resource binding, then stanzas to the router.
 * Also the bounds that protect the server: per-address counts, stanza limits (xml.c),
 * unauthenticated and idle timeouts, whitespace keepalives, slow readers.
 *
 * I/O is OpenSSL on the socket itself with read-ahead (a read takes whole socket buffers,
 * not a record header and then its body), one persistent read event, and a write event
 * only while the socket is full.  Output is written once per event-loop round: what a
 * connection's own input caused goes out at the end of its read callback, what others
 * queue for it (presence, messages, database answers) from one deferred flush event, so
 * the replies of a round make one TLS record and one write.  (A bufferevent per
 * connection cost about twice the system calls per login: a read per record header, and
 * its write event switched on and off around every reply.) */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "engine/sasl.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

enum phase {
	PH_HEADER,      /* waiting for the stream header */
	PH_QUEUED,      /* header answered, features held: in the login queue */
	PH_PRE_AUTH,    /* features sent: starttls / auth expected */
	PH_SASL,        /* SASL exchange in progress */
	PH_PRE_BIND,    /* authenticated, restarted stream: bind expected */
	PH_BINDING,     /* bind waiting for the user's data */
	PH_ESTABLISHED, /* a bound resource */
	PH_CLOSING,
};

struct conn {
	SSL *ssl; /* once TLS has started */
	struct event *rev, *wev; /* readable (while reading), writable (only while blocked) */
	struct evbuffer *out;    /* waiting to be written */
	int fd;
	int flush_slot; /* index in the deferred flush queue, -1 if not queued */
	/* Output held until the route link has written this far (route_link_queued_mark):
	 * what this client's stanzas forwarded to the peer engine is in the kernel before
	 * anything (an iq answer) confirms them.  0 = not held. */
	uint64_t route_mark;
	int route_slot; /* index in the held list, -1 if not held */
	uint64_t serial;       /* unique per connection: what a conn_hold names */
	int db_holds;          /* conn_hold_take()s not released yet: output waits */
	int64_t db_held_since; /* monotonic ms of the first of them */
	struct xml_stream *xs;
	enum phase phase;
	bool tls, header_sent, authenticated, in_read, dead, overflow, binding, prefetching;
	bool admitted; /* took a login token (at the first plaintext header, or at SASL) */
	bool in_login; /* admitted, not bound yet: counted in the storm guard's logins in flight */
	bool creds_wait; /* SASL waits for the user's row (credentials and user in one query) */
	bool handshaking, wev_on, read_wants_write;
	char ip[64];
	char stream_id[24];
	char *username;
	int home_node, mech;
	struct sasl_server *sasl;
	struct pg_req *req;
	struct resource *res;
	struct user *user; /* held while binding */
	struct login_queue_entry *queued; /* in the login queue (login_queue.c), else NULL */
	char *bind_want;   /* resource asked for while binding */
	char bind_id[128]; /* iq id of the bind request */
	/* A stream error owed once the client restarts the stream after SASL (a redirect:
	 * clients expect it on the new stream, RFC 6120 §6.4.6). */
	const char *deferred_condition;
	char deferred_text[256];
	/* Released (conn_release): its full JID, for the messages still read after the
	 * stream error; NULL otherwise. */
	char *drain_from;
	/* Monotonic milliseconds: the once-a-second sweep never fires a timeout early. */
	int64_t opened, last_read, last_write, closing_since;
	struct conn *prev, *next;
};

static void conn_io(evutil_socket_t fd, short what, void *arg);
static void conn_flush(struct conn *c);
static void output_added(struct conn *c);
static void conn_free(struct conn *c);
static void conn_begin_close(struct conn *c);
static void send_features(struct conn *c);

static void xs_open(void *arg, const char *name, const char **attrs);
static void xs_stanza(void *arg, struct xml_node *stanza);
static void xs_close(void *arg);
static void xs_error(void *arg, enum xml_stream_error err);
static const struct xml_stream_cb xs_callbacks = {xs_open, xs_stanza, xs_close, xs_error};

bool conn_tls_active(const struct conn *c) { return c->tls; }

bool conn_take_admission(struct conn *c)
{
	if (c->admitted)
		return true;
	if (login_inflight_full() || !login_admit())
		return false;
	c->admitted = c->in_login = true;
	login_inflight_add(1);
	login_admitted();
	return true;
}

void conn_set_queue_entry(struct conn *c, struct login_queue_entry *e) { c->queued = e; }

/* A login over the throttle: resource-constraint with retry-after (relogin.c). */
void conn_refuse_login(struct conn *c)
{
	server.stats.logins_throttled++;
	relogin_refuse(c);
}

/* Its turn in the login queue came: the features held back go out now. */
void conn_queue_admitted(struct conn *c)
{
	send_features(c);
	c->phase = PH_PRE_AUTH;
}

static void login_done(struct conn *c)
{
	if (c->in_login) {
		c->in_login = false;
		login_inflight_add(-1);
	}
}
const char *conn_ip(const struct conn *c) { return c->ip; }
struct resource *conn_resource(const struct conn *c) { return c->res; }
int conn_established(const struct conn *c) { return c->phase == PH_ESTABLISHED; }
struct sasl_server **conn_sasl_slot(struct conn *c) { return &c->sasl; }
struct pg_req **conn_req_slot(struct conn *c) { return &c->req; }

static struct xml_stream *new_parser(struct conn *c)
{
	struct xml_stream_limits lim = {
		.max_stanza_bytes = (size_t)server.cfg.max_stanza_size,
		.max_depth = (int)server.cfg.max_xml_depth,
		.max_attrs = 64,
		.max_header_bytes = 4096,
	};
	return xml_stream_new(&lim, &xs_callbacks, c);
}

static void per_ip_adjust(const char *ip, long delta)
{
	long n = (long)(intptr_t)strmap_get(server.per_ip, ip) + delta;
	if (n <= 0)
		strmap_del(server.per_ip, ip);
	else
		strmap_put(server.per_ip, ip, (void *)(intptr_t)n);
}

static int start_io(struct conn *c)
{
	c->out = evbuffer_new();
	c->rev = event_new(server.base, c->fd, EV_READ | EV_PERSIST, conn_io, c);
	c->wev = event_new(server.base, c->fd, EV_WRITE | EV_PERSIST, conn_io, c);
	if (!c->out || !c->rev || !c->wev || event_add(c->rev, NULL) < 0)
		return -1;
	return 0;
}

/* The server side of a TLS handshake on the connection's socket (run by conn_io). */
static int start_tls(struct conn *c)
{
	c->ssl = SSL_new(server.ssl_ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	SSL_set_accept_state(c->ssl);
	c->tls = true;
	c->handshaking = true;
	return 0;
}

static void io_release(struct conn *c)
{
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->out)
		evbuffer_free(c->out);
	c->rev = c->wev = NULL;
	c->ssl = NULL;
	c->out = NULL;
}

void conn_accept(int fd, const char *ip, bool direct_tls)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	static uint64_t serials;
	c->fd = fd;
	c->flush_slot = -1;
	c->route_slot = -1;
	c->serial = ++serials;
	snprintf(c->ip, sizeof c->ip, "%s", ip);
	c->opened = c->last_read = c->last_write = clock_mono_ms();
	c->xs = new_parser(c);
	if (!c->xs || start_io(c) < 0 || (direct_tls && start_tls(c) < 0)) {
		log_warnx("conn %s: out of memory", ip);
		xml_stream_free(c->xs);
		io_release(c);
		free(c);
		close(fd);
		return;
	}
	c->next = server.conns;
	if (server.conns)
		server.conns->prev = c;
	server.conns = c;
	server.nconns++;
	per_ip_adjust(c->ip, +1);

	long limit = server.cfg.max_conns_per_ip;
	if (limit > 0 && (long)(intptr_t)strmap_get(server.per_ip, c->ip) > limit) {
		log_info("conn %s: too many connections from this address", ip);
		conn_stream_error(c, "policy-violation", "too many connections from your address");
	} else if (server.stopping) {
		conn_stream_error(c, "system-shutdown", NULL);
	}
}

/* ---- output ---- */

/* Closing a slow reader is deferred to its own event: conn_send() is called while other
 * sessions' lists are being walked, and closing unbinds a resource. */
static struct event *reap_ev;

static void reap_overflowed(evutil_socket_t fd, short what, void *arg)
{
	for (struct conn *c = server.conns, *next; c; c = next) {
		next = c->next;
		if (c->overflow && c->phase != PH_CLOSING) {
			c->overflow = false;
			conn_stream_error(c, "policy-violation", "too slow reading");
		}
	}
}

/* ---- deferred flush ---- */

static struct conn **flushq;
static size_t nflushq, capflushq;
static struct event *flush_ev;

static void flush_queued(evutil_socket_t fd, short what, void *arg)
{
	/* Flushing may queue more (a closing connection's unavailable presence): those go
	 * out in this same pass. */
	for (size_t i = 0; i < nflushq; i++) {
		struct conn *c = flushq[i];
		flushq[i] = NULL;
		if (!c)
			continue; /* freed meanwhile */
		c->flush_slot = -1;
		conn_flush(c);
	}
	nflushq = 0;
}

/* ---- output held for the route link ---- */

static struct conn **heldq;
static size_t nheldq, capheldq;

static void hold_for_route(struct conn *c)
{
	if (c->route_slot >= 0)
		return;
	if (nheldq == capheldq) {
		size_t cap = capheldq ? 2 * capheldq : 64;
		struct conn **q = realloc(heldq, cap * sizeof *q);
		if (!q) { /* cannot wait: write now, as before this existed */
			c->route_mark = 0;
			return;
		}
		heldq = q;
		capheldq = cap;
	}
	c->route_slot = (int)nheldq;
	heldq[nheldq++] = c;
}

void conn_route_written(void)
{
	size_t kept = 0;
	/* nheldq is read each turn: a connection held while this runs is visited too. */
	for (size_t i = 0; i < nheldq; i++) {
		struct conn *c = heldq[i];
		heldq[i] = NULL;
		if (!c)
			continue; /* freed meanwhile */
		if (!route_link_written(c->route_mark)) {
			c->route_slot = (int)kept;
			heldq[kept++] = c;
			continue;
		}
		c->route_slot = -1;
		c->route_mark = 0;
		conn_flush(c); /* may free c */
	}
	nheldq = kept; /* kept <= i always: compacting never overwrote an unvisited entry */
}

/* Output was queued on c: write it at the end of this round. */
static void output_added(struct conn *c)
{
	if (c->in_read || c->flush_slot >= 0 || c->dead)
		return; /* conn_io writes it when the read callback ends, or it is queued */
	if (nflushq == capflushq) {
		size_t cap = capflushq ? 2 * capflushq : 256;
		struct conn **q = realloc(flushq, cap * sizeof *q);
		if (!q) {
			conn_flush(c);
			return;
		}
		flushq = q;
		capflushq = cap;
	}
	if (!flush_ev && !(flush_ev = event_new(server.base, -1, 0, flush_queued, NULL))) {
		conn_flush(c);
		return;
	}
	c->flush_slot = (int)nflushq;
	flushq[nflushq++] = c;
	if (nflushq == 1)
		event_active(flush_ev, EV_TIMEOUT, 0);
}

static void wev_set(struct conn *c, bool on)
{
	if (on == c->wev_on)
		return;
	if (on)
		event_add(c->wev, NULL);
	else
		event_del(c->wev);
	c->wev_on = on;
}

/* The peer went away or the link broke: nothing more can be written. */
static void io_failed(struct conn *c, const char *why)
{
	unsigned long e;
	while ((e = ERR_get_error()))
		log_debug("conn %s: tls: %s", c->ip, ERR_reason_error_string(e));
	log_debug("conn %s: closed (%s)", c->ip, why);
	conn_free(c);
}

#define TLS_CHUNK 16384 /* a full TLS record */

/* Write what is queued until done or the socket is full.  May free c: a closing
 * connection once its output is out, or a broken link. */
static void conn_flush(struct conn *c)
{
	if (c->dead || c->handshaking)
		return; /* output waits for the handshake */
	if (c->db_holds > 0)
		return; /* conn_hold_release flushes */
	if (c->route_mark) {
		if (!route_link_written(c->route_mark)) {
			hold_for_route(c);
			if (c->route_mark)
				return;
		}
		c->route_mark = 0;
	}
	struct evbuffer *out = c->out;
	while (evbuffer_get_length(out) > 0) {
		if (!c->ssl) {
			int n = evbuffer_write(out, c->fd);
			if (n > 0)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				wev_set(c, true);
				return;
			}
			io_failed(c, n < 0 ? strerror(errno) : "write failed");
			return;
		}
		size_t len = evbuffer_get_length(out);
		if (len > TLS_CHUNK)
			len = TLS_CHUNK;
		unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)len);
		if (!p) {
			io_failed(c, "out of memory");
			return;
		}
		ERR_clear_error();
		int n = SSL_write(c->ssl, p, (int)len);
		if (n > 0) {
			evbuffer_drain(out, (size_t)n);
			continue;
		}
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE) {
			wev_set(c, true);
			return;
		}
		if (e == SSL_ERROR_WANT_READ)
			return; /* the next read event retries (conn_io ends with a flush) */
		io_failed(c, "tls write");
		return;
	}
	if (!c->read_wants_write)
		wev_set(c, false);
	if (c->phase == PH_CLOSING && !c->in_read && !c->drain_from)
		conn_free(c);
}

static bool output_overflow(struct conn *c)
{
	struct evbuffer *out = c->out;
	size_t queued = evbuffer_get_length(out);
	if (queued <= (size_t)server.cfg.max_send_queue)
		return false;
	log_info("conn %s %s: send queue %zu bytes over the limit, dropping a slow client",
		 c->ip, c->res ? c->res->full : "", queued);
	/* Past its bound the queue is useless: drop it so the error goes out promptly. */
	evbuffer_drain(out, queued);
	c->overflow = true;
	if (!reap_ev)
		reap_ev = event_new(server.base, -1, 0, reap_overflowed, NULL);
	if (reap_ev)
		event_active(reap_ev, 0, 0);
	return true;
}

void conn_send_raw(struct conn *c, const char *data, size_t len)
{
	if (c->phase == PH_CLOSING || c->dead || c->overflow)
		return;
	evbuffer_add(c->out, data, len);
	c->last_write = clock_mono_ms();
	if (!output_overflow(c))
		output_added(c);
}

void conn_send(struct conn *c, const struct xml_node *stanza)
{
	if (c->phase == PH_CLOSING || c->dead || c->overflow)
		return;
	if (xml_serialize(stanza, c->out) < 0) {
		conn_stream_error(c, "resource-constraint", NULL);
		return;
	}
	c->last_write = clock_mono_ms();
	if (!output_overflow(c))
		output_added(c);
}

static void send_header(struct conn *c)
{
	if (c->header_sent)
		return;
	random_id(c->stream_id, sizeof c->stream_id);
	struct evbuffer *out = c->out;
	evbuffer_add_printf(out,
			    "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
			    "' xmlns:stream='" NS_STREAMS "' id='%s' from='",
			    c->stream_id);
	xml_escape_attr(out, server.cfg.domain);
	evbuffer_add_printf(out, "' version='1.0' xml:lang='en'>");
	c->header_sent = true;
	c->last_write = clock_mono_ms();
}

void conn_stream_error(struct conn *c, const char *condition, const char *text)
{
	conn_stream_error_app(c, condition, text, NULL);
}

void conn_stream_error_app(struct conn *c, const char *condition, const char *text,
			   const char *app_xml)
{
	if (c->phase == PH_CLOSING || c->dead)
		return;
	send_header(c);
	struct evbuffer *out = c->out;
	evbuffer_add_printf(out, "<stream:error><%s xmlns='" NS_STREAM_ERR "'", condition);
	if (text && strcmp(condition, "see-other-host") == 0) {
		evbuffer_add_printf(out, ">");
		xml_escape_text(out, text, strlen(text));
		evbuffer_add_printf(out, "</%s>", condition);
	} else {
		evbuffer_add_printf(out, "/>");
		if (text) {
			evbuffer_add_printf(out, "<text xmlns='" NS_STREAM_ERR "'>");
			xml_escape_text(out, text, strlen(text));
			evbuffer_add_printf(out, "</text>");
		}
	}
	if (app_xml) /* RFC 6120 §4.9.4: an application-specific condition, after the text */
		evbuffer_add(out, app_xml, strlen(app_xml));
	evbuffer_add_printf(out, "</stream:error></stream:stream>");
	server.stats.stream_errors++;
	log_debug("conn %s: stream error %s", c->ip, condition);
	conn_begin_close(c);
}

static void send_features(struct conn *c)
{
	struct evbuffer *out = c->out;
	evbuffer_add_printf(out, "<stream:features>");
	if (!c->authenticated) {
		bool tls_offer = !c->tls && server.ssl_ctx;
		bool tls_needed = tls_offer && server.cfg.require_starttls;
		if (tls_offer)
			evbuffer_add_printf(out, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
					    tls_needed ? "<required/>" : "");
		if (!tls_needed) {
			evbuffer_add_printf(out, "<mechanisms xmlns='" NS_SASL "'>"
						 "<mechanism>SCRAM-SHA-256</mechanism>"
						 "<mechanism>SCRAM-SHA-1</mechanism>");
			if (c->tls)
				evbuffer_add_printf(out, "<mechanism>PLAIN</mechanism>");
			evbuffer_add_printf(out, "</mechanisms>");
		}
	} else {
		evbuffer_add_printf(out,
				    "<bind xmlns='" NS_BIND "'/>"
				    "<session xmlns='" NS_SESSION "'><optional/></session>"
				    "<ver xmlns='" NS_ROSTERVER "'/>"
				    "<sub xmlns='" NS_PREAPPROVAL "'/>");
	}
	evbuffer_add_printf(out, "</stream:features>");
	c->last_write = clock_mono_ms();
	output_added(c);
}

/* ---- closing ---- */

static void conn_unlink(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		server.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Release everything tied to the session at once (presence goes out now), keep the socket
 * until the last bytes are written. */
static void conn_detach(struct conn *c)
{
	login_queue_leave(c->queued);
	auth_cleanup(c);
	if (c->binding || c->prefetching) {
		c->binding = c->prefetching = false;
		user_cancel(c->username, c);
	}
	if (c->res) {
		struct resource *r = c->res;
		c->res = NULL;
		r->conn = NULL;
		session_unbind(r);
	}
	if (c->user) {
		user_release(c->user);
		c->user = NULL;
	}
	free(c->bind_want);
	c->bind_want = NULL;
}

static void conn_begin_close(struct conn *c)
{
	if (c->phase == PH_CLOSING)
		return;
	c->phase = PH_CLOSING;
	c->closing_since = clock_mono_ms();
	c->db_holds = 0; /* nothing more to confirm; late releases find no session */
	conn_detach(c);
	if (c->rev && !c->drain_from)
		event_del(c->rev); /* nothing more is read; what is queued still goes out */
	if (evbuffer_get_length(c->out) == 0 && !c->in_read && !c->drain_from)
		conn_free(c);
	else
		output_added(c);
}

static void conn_free(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	free(c->drain_from);
	c->drain_from = NULL;
	conn_detach(c);
	conn_unlink(c);
	server.nconns--;
	per_ip_adjust(c->ip, -1);
	login_done(c);
	free(c->username);
	c->username = NULL;
	if (c->flush_slot >= 0)
		flushq[c->flush_slot] = NULL;
	c->flush_slot = -1;
	if (c->route_slot >= 0)
		heldq[c->route_slot] = NULL;
	c->route_slot = -1;
	io_release(c);
	close(c->fd);
	if (!c->in_read) { /* else conn_io frees it (the parser may be on the stack) */
		xml_stream_free(c->xs);
		free(c);
	}
}

/* ---- input ---- */

#define READ_CHUNK 16384
#define READ_ROUND_MAX (4 * READ_CHUNK) /* per event: other connections get their turn */

/* Read and parse until the socket is drained (or this round's share is used). */
static void conn_read(struct conn *c)
{
	char buf[READ_CHUNK];
	size_t total = 0;
	c->last_read = clock_mono_ms();
	while (!c->dead && (c->phase != PH_CLOSING || c->drain_from) && !c->handshaking) {
		ssize_t n;
		bool was_plain = !c->ssl;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, buf, sizeof buf);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				c->read_wants_write = e == SSL_ERROR_WANT_WRITE;
				if (e == SSL_ERROR_WANT_WRITE)
					wev_set(c, true);
				else if (e != SSL_ERROR_WANT_READ)
					io_failed(c, e == SSL_ERROR_ZERO_RETURN ? "closed by peer"
										: "tls read");
				return;
			}
			n = r;
		} else {
			n = read(c->fd, buf, sizeof buf);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return;
			if (n <= 0) {
				io_failed(c, n == 0 ? "closed by peer" : strerror(errno));
				return;
			}
		}
		if (xml_stream_feed(c->xs, buf, (size_t)n) < 0)
			return; /* the error callback closes the stream */
		if (was_plain && c->ssl)
			return; /* STARTTLS: the rest of this plain read went with the parser */
		total += (size_t)n;
		/* Drained (the event loop says when more comes): no read just to hear EAGAIN. */
		if (c->ssl ? !SSL_has_pending(c->ssl) : (size_t)n < sizeof buf)
			return;
		if (total >= READ_ROUND_MAX) {
			/* What TLS read ahead does not wake the event loop: come back for it. */
			if (c->ssl)
				event_active(c->rev, EV_READ, 0);
			return;
		}
	}
}

static void tls_handshake(struct conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		/* The client's first bytes may have come with its Finished. */
		if (SSL_has_pending(c->ssl))
			conn_read(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		wev_set(c, e == SSL_ERROR_WANT_WRITE);
	else
		io_failed(c, "tls handshake");
}

static void conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t routed_before = route_link_queued_mark();
	c->in_read = true;
	if (c->handshaking) {
		tls_handshake(c);
	} else if ((what & EV_READ) || c->read_wants_write || (c->ssl && SSL_has_pending(c->ssl))) {
		conn_read(c);
		if (!c->dead && c->handshaking) /* STARTTLS during this read */
			tls_handshake(c);
	}
	c->in_read = false;
	if (c->dead) {
		xml_stream_free(c->xs);
		free(c);
		return;
	}
	uint64_t routed = route_link_queued_mark();
	if (routed != routed_before && !route_link_written(routed) && routed > c->route_mark)
		c->route_mark = routed;
	if (nflushq == 0 && !c->route_mark) {
		conn_flush(c); /* this round's replies, in one write; may free c */
		return;
	}
	/* Behind what this read queued for other sessions (the recipients of its messages):
	 * a reply confirming them goes out after them. */
	if (c->flush_slot >= 0) {
		flushq[c->flush_slot] = NULL;
		c->flush_slot = -1;
	}
	output_added(c);
}

/* ---- STARTTLS ---- */

static void conn_starttls(struct conn *c)
{
	static const char proceed[] = "<proceed xmlns='" NS_TLS "'/>";
	struct evbuffer *out = c->out;
	evbuffer_add(out, proceed, sizeof proceed - 1);
	/* Write the plain bytes now: the TLS layer takes the socket right after. */
	while (evbuffer_get_length(out) > 0) {
		int n = evbuffer_write(out, c->fd);
		if (n >= 0 || errno == EINTR)
			continue;
		struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
		if (errno != EAGAIN || poll(&pfd, 1, 1000) != 1) {
			conn_free(c);
			return;
		}
	}
	if (start_tls(c) < 0) {
		log_warnx("conn %s: out of memory", c->ip);
		conn_free(c);
		return;
	}
	c->header_sent = false;
	c->phase = PH_HEADER;
	xml_stream_reset(c->xs);
}

/* ---- stream callbacks ---- */

static void xs_open(void *arg, const char *name, const char **attrs)
{
	struct conn *c = arg;
	const char *to = NULL, *version = NULL;
	for (int i = 0; attrs && attrs[i]; i += 2) {
		if (!strcmp(attrs[i], "to"))
			to = attrs[i + 1];
		else if (!strcmp(attrs[i], "version"))
			version = attrs[i + 1];
	}
	if (c->phase != PH_HEADER) {
		conn_stream_error(c, "not-well-formed", NULL);
		return;
	}
	if (!to || strcasecmp(to, server.cfg.domain) != 0) {
		conn_stream_error(c, "host-unknown", NULL);
		return;
	}
	if (!version || strncmp(version, "1.", 2) != 0) {
		conn_stream_error(c, "unsupported-version", NULL);
		return;
	}
	send_header(c);
	if (c->deferred_condition) {
		conn_stream_error(c, c->deferred_condition, c->deferred_text);
		return;
	}
	/* Over the login throttle: queued, or refused before STARTTLS, when it costs almost
	 * nothing. */
	if (!c->tls && !c->authenticated && !conn_take_admission(c)) {
		if (login_queue_enter(c))
			c->phase = PH_QUEUED;
		else
			conn_refuse_login(c);
		return;
	}
	send_features(c);
	c->phase = c->authenticated ? PH_PRE_BIND : PH_PRE_AUTH;
}

/* No more reading on a released connection: it closes once its output is written. */
static void drain_end(struct conn *c)
{
	free(c->drain_from);
	c->drain_from = NULL;
	if (c->rev)
		event_del(c->rev);
	if (!c->in_read && !c->dead)
		output_added(c);
}

static void xs_close(void *arg)
{
	struct conn *c = arg;
	if (c->phase == PH_CLOSING) { /* the client's answer to our closing tag */
		drain_end(c);
		return;
	}
	send_header(c);
	evbuffer_add(c->out, "</stream:stream>", 16);
	conn_begin_close(c);
}

static void xs_error(void *arg, enum xml_stream_error err)
{
	struct conn *c = arg;
	if (c->phase == PH_CLOSING) {
		drain_end(c);
		return;
	}
	conn_stream_error(c, xml_stream_error_condition(err), NULL);
}

static void bind_finish(void *arg, struct user *u);

static void handle_bind(struct conn *c, struct xml_node *iq)
{
	struct xml_node *bind = xml_find_child(iq, "bind", NS_BIND);
	const char *type = xml_get_attr(iq, "type");
	if (!bind || !type || strcmp(type, "set") != 0) {
		struct xml_node *err = stanza_error_reply(iq, "cancel", "not-allowed", NULL);
		if (err)
			conn_send(c, err);
		xml_free(err);
		return;
	}
	c->bind_want = xml_child_text(bind, "resource");
	const char *id = xml_get_attr(iq, "id");
	snprintf(c->bind_id, sizeof c->bind_id, "%s", id ? id : "");
	c->phase = PH_BINDING;
	c->binding = true;
	user_with(c->username, bind_finish, c);
}

static void send_bind_error(struct conn *c, const char *type, const char *condition)
{
	struct xml_node *iq = xml_elem_new("iq");
	xml_set_attr(iq, "type", "error");
	xml_set_attr(iq, "id", c->bind_id);
	struct xml_node *e = xml_new_child(iq, "error");
	xml_set_attr(e, "type", type);
	xml_new_child_ns(e, condition, NS_STANZA_ERR);
	conn_send(c, iq);
	xml_free(iq);
}

/* The user's data is in memory: create the resource.  c may have closed meanwhile: the
 * waiter list holds c, and conn_detach cancels by releasing; we check the phase. */
static void bind_finish(void *arg, struct user *u)
{
	struct conn *c = arg;
	c->binding = false;
	if (c->phase != PH_BINDING)
		return;
	if (!u) {
		conn_stream_error(c, "not-authorized", "account removed");
		return;
	}
	const char *condition = NULL;
	struct resource *r = session_bind(c, u, c->bind_want, &condition);
	free(c->bind_want);
	c->bind_want = NULL;
	if (!r) {
		c->phase = PH_PRE_BIND;
		send_bind_error(c, strcmp(condition, "resource-constraint") ? "modify" : "wait",
				condition);
		return;
	}
	c->res = r;
	c->phase = PH_ESTABLISHED;
	struct xml_node *iq = xml_elem_new("iq");
	xml_set_attr(iq, "type", "result");
	xml_set_attr(iq, "id", c->bind_id);
	struct xml_node *b = xml_new_child_ns(iq, "bind", NS_BIND);
	struct xml_node *j = xml_new_child(b, "jid");
	xml_add_text(j, r->full, strlen(r->full));
	conn_send(c, iq);
	xml_free(iq);
	server.stats.logins++;
	login_done(c);
	if (c->home_node >= 1 && c->home_node <= MAX_HOME_NODES)
		server.stats.logins_node[c->home_node]++;
}

void conn_set_home(struct conn *c, int home_node) { c->home_node = home_node; }

static void prefetched(void *arg, struct user *u)
{
	struct conn *c = arg;
	c->prefetching = false;
	if (!u || c->user == u)
		return;
	if (c->user)
		user_release(c->user);
	user_hold(u);
	c->user = u; /* released when the connection goes */
}

/* The account exists and SASL goes on for another round trip: load the user's data now,
 * so that binding finds it in memory instead of waiting for a query of its own. */
void conn_prefetch_user(struct conn *c, const char *username)
{
	if (c->prefetching || c->binding)
		return;
	char *name = strdup(username);
	if (!name)
		return;
	free(c->username);
	c->username = name;
	c->prefetching = true;
	user_with(c->username, prefetched, c);
}
int conn_wait_user(struct conn *c, const char *username)
{
	char *name = strdup(username);
	if (!name)
		return -1;
	free(c->username);
	c->username = name;
	c->creds_wait = true;
	return 0;
}

bool conn_waiting_user(const struct conn *c) { return c->creds_wait; }

void conn_cancel_wait(struct conn *c)
{
	if (!c->creds_wait)
		return;
	c->creds_wait = false;
	user_cancel(c->username, c);
}

void conn_adopt_user(struct conn *c, struct user *u)
{
	c->creds_wait = false;
	if (!u || c->user == u)
		return;
	if (c->user)
		user_release(c->user);
	user_hold(u);
	c->user = u; /* released when the connection goes */
}

void conn_set_mech(struct conn *c, int mech) { c->mech = mech; }
int conn_sasl_mech(const struct conn *c) { return c->mech; }
void conn_auth_retry(struct conn *c)
{
	if (c->phase == PH_SASL)
		c->phase = PH_PRE_AUTH;
}

void conn_auth_succeeded(struct conn *c, const char *username)
{
	free(c->username);
	c->username = strdup(username);
	if (!c->username) {
		conn_stream_error(c, "resource-constraint", NULL);
		return;
	}
	c->authenticated = true;
	if (!engine_serves(c->home_node)) {
		bool known = c->home_node >= 1 && c->home_node <= MAX_HOME_NODES;
		const char *to = known ? server.redirect[c->home_node] : "";
		c->deferred_condition = to[0] ? "see-other-host" : "reset";
		snprintf(c->deferred_text, sizeof c->deferred_text, "%s",
			 to[0] ? to : "your home node is not served right now");
	}
	c->header_sent = false;
	c->phase = PH_HEADER;
	xml_stream_reset(c->xs);
}

static void pre_auth_stanza(struct conn *c, struct xml_node *st)
{
	const char *ns = xml_get_attr(st, "xmlns");
	if (!strcmp(st->name, "starttls") && ns && !strcmp(ns, NS_TLS)) {
		if (c->tls || !server.ssl_ctx) {
			conn_stream_error(c, "policy-violation", "TLS already active");
			return;
		}
		conn_starttls(c);
		return;
	}
	if (!strcmp(st->name, "auth") && ns && !strcmp(ns, NS_SASL)) {
		if (!c->tls && server.ssl_ctx && server.cfg.require_starttls) {
			static const char refuse[] = "<failure xmlns='" NS_SASL
						     "'><encryption-required/></failure>";
			conn_send_raw(c, refuse, sizeof refuse - 1);
			return;
		}
		c->phase = PH_SASL;
		auth_start(c, st);
		return;
	}
	conn_stream_error(c, "not-authorized", NULL);
}

static void xs_stanza(void *arg, struct xml_node *st)
{
	struct conn *c = arg;
	server.stats.stanzas_in++;
	switch (c->phase) {
	case PH_QUEUED:
		/* Sent before the features it was waiting for: refused (closing leaves the
		 * queue, conn_detach). */
		conn_refuse_login(c);
		break;
	case PH_PRE_AUTH:
		pre_auth_stanza(c, st);
		break;
	case PH_SASL: {
		const char *ns = xml_get_attr(st, "xmlns");
		if (ns && !strcmp(ns, NS_SASL) && !strcmp(st->name, "response"))
			auth_response(c, st);
		else if (ns && !strcmp(ns, NS_SASL) && !strcmp(st->name, "abort"))
			auth_abort(c);
		else
			conn_stream_error(c, "not-authorized", NULL);
		break;
	}
	case PH_PRE_BIND:
		if (!strcmp(st->name, "iq"))
			handle_bind(c, st);
		else
			conn_stream_error(c, "not-authorized", "bind a resource first");
		break;
	case PH_BINDING:
		/* A pipelined stanza before the bind result: RFC 6120 lets us refuse it. */
		conn_stream_error(c, "not-authorized", "bind a resource first");
		break;
	case PH_ESTABLISHED:
		if (strcmp(st->name, "message") && strcmp(st->name, "presence") &&
		    strcmp(st->name, "iq")) {
			conn_stream_error(c, "unsupported-stanza-type", NULL);
			break;
		}
		/* The server stamps 'from' (RFC 6120 §8.1.2.1). */
		xml_set_attr(st, "from", c->res->full);
		route_from_client(c->res, st);
		return; /* ownership passed */
	case PH_CLOSING:
		/* Sent before the client saw our stream error: its messages still count. */
		if (c->drain_from && !strcmp(st->name, "message")) {
			xml_set_attr(st, "from", c->drain_from);
			message_from_released(c->drain_from, st);
			return;
		}
		break;
	default:
		break;
	}
	xml_free(st);
}

/* ---- timers ---- */

void conn_sweep(void)
{
	static int64_t last_trim;
	int compacted = 0;
	int64_t now = clock_mono_ms();
	for (struct conn *c = server.conns, *next; c; c = next) {
		next = c->next;
		if (c->phase == PH_CLOSING) {
			if (now - c->closing_since > (c->drain_from ? CONN_DRAIN_MS : 5000))
				conn_free(c);
			continue;
		}
		if (c->db_holds > 0 && now - c->db_held_since > CONN_HOLD_MAX_MS) {
			log_warnx("conn %s %s: replies held %d s for database work: sent anyway",
				  c->ip, c->res ? c->res->full : "", CONN_HOLD_MAX_MS / 1000);
			c->db_holds = 0;
			output_added(c);
		}
		if (c->phase != PH_ESTABLISHED && now - c->opened >= server.cfg.auth_timeout_ms) {
			conn_stream_error(c, "connection-timeout", "authenticate sooner");
			continue;
		}
		if (now - c->last_read >= server.cfg.idle_timeout_ms) {
			conn_stream_error(c, "connection-timeout", NULL);
			continue;
		}
		if (c->phase == PH_ESTABLISHED && now - c->last_write >= server.cfg.keepalive_ms)
			conn_send_raw(c, " ", 1);
		/* Idle sessions keep no parser: memory per connection is what bounds a node. */
		if (c->phase == PH_ESTABLISHED && now - c->last_read >= 2000)
			compacted += xml_stream_compact(c->xs);
	}
	/* Give the pages of freed parsers back to the system now and then: without this the
	 * heap keeps the high-water mark of a login wave. */
	if (compacted && now - last_trim >= 10000) {
		malloc_trim(0);
		last_trim = now;
	}
}

/* The local session that sent st, if any. */
static struct conn *sender_conn(const char *from)
{
	struct jid j;
	if (!from || jid_parse(from, &j) < 0 || !j.resource[0] || !domain_is_local(j.domain))
		return NULL;
	struct resource *r = session_find(&j);
	return r && r->conn && !r->conn->dead && r->conn->phase == PH_ESTABLISHED ? r->conn
										     : NULL;
}

void conn_hold_take(const struct xml_node *st, struct conn_hold *h)
{
	const char *from = xml_get_attr(st, "from");
	struct conn *c = sender_conn(from);
	h->serial = h->route_seq = 0;
	if (!c) {
		h->route_seq = route_rx_current(); /* from the peer engine: hold its ACK */
		if (h->route_seq)
			route_rx_wait(h->route_seq);
		return;
	}
	if (c->db_holds++ == 0)
		c->db_held_since = clock_mono_ms();
	snprintf(h->full, sizeof h->full, "%s", from);
	h->serial = c->serial;
}

void conn_hold_move(struct conn_hold *to, struct conn_hold *from)
{
	*to = *from;
	from->serial = from->route_seq = 0;
}

void conn_hold_release(struct conn_hold *h)
{
	if (h->route_seq) {
		uint64_t seq = h->route_seq;
		h->route_seq = 0;
		route_rx_done(seq);
	}
	if (!h->serial)
		return;
	struct conn *c = sender_conn(h->full);
	bool mine = c && c->serial == h->serial;
	h->serial = 0;
	if (!mine || c->db_holds <= 0)
		return; /* the session is gone, or the hold was dropped */
	/* What the work forwarded to the peer engine counts once written (route hold). */
	uint64_t m = route_link_queued_mark();
	if (!route_link_written(m) && m > c->route_mark)
		c->route_mark = m;
	if (--c->db_holds == 0)
		output_added(c);
}

void conn_release(struct conn *c, const char *condition, const char *text)
{
	if (c->phase == PH_ESTABLISHED && c->res && !c->drain_from)
		c->drain_from = strdup(c->res->full); /* without memory: no drain, as before */
	conn_stream_error(c, condition, text);
}

void conn_close_all(const char *condition)
{
	for (struct conn *c = server.conns, *next; c; c = next) {
		next = c->next;
		conn_stream_error(c, condition, NULL);
	}
}
