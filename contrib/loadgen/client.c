/* One load-generator connection: TCP, stream, STARTTLS, SCRAM, bind, (session), presence,
 * roster get, then per mode: close (login), exchange timestamped messages, or idle.  Each
 * state waits for one server element; anything unexpected is a counted failure. */
#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "contrib/loadgen/failover.h"
#include "contrib/loadgen/loadgen.h"
#include "contrib/loadgen/sasl.h"
#include "contrib/loadgen/xmlin.h"

#define OUT_MAX (256 * 1024) /* a client that cannot write this much is stuck */

enum cstate {
	C_CONNECT, C_FEAT1, C_PROCEED, C_TLS_START, C_TLS, C_FEAT2, C_SASL, C_SUCCESS,
	C_RESTART, C_FEAT3, C_BIND, C_SESSION, C_ROSTER, C_ONLINE, C_DEAD
};

struct client {
	struct lg *lg;
	int user;    /* 1-based */
	int partner; /* message mode: the user we talk to */
	int fd;
	SSL *ssl;
	struct event *rev, *wev;
	int wev_on;
	enum cstate state;
	int need_session;
	uint64_t sched; /* when this login was due (ns) */
	struct xin xin;
	struct sasl_scram *sasl;
	char *out; /* bytes for the socket: TLS records once TLS is on (wire_write) */
	size_t out_len, out_cap;
	char *pt; /* TLS: plaintext for SSL_write, held while the handshake runs */
	size_t pt_len, pt_cap;
	int rd_full; /* the last read filled its buffer: the socket may hold more */
	int hello_unsent; /* the ClientHello waits in out: no server TLS data can be there */
	struct client *lprev, *lnext; /* login-in-progress list */
	int in_list;
	int was_online;
	int corked; /* inside an event: what it produces goes out in one write at its end */
	char redirect[96]; /* failover: the see-other-host target of the stream error */
	long retry_after;  /* failover: retry-after seconds of the stream error, -1 none */
};

static const char NS_SASL[] = "urn:ietf:params:xml:ns:xmpp-sasl";

static void client_free(struct client *c);
static void client_io(evutil_socket_t fd, short what, void *arg);

uint64_t lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int client_is_online(const struct client *c) { return c->state == C_ONLINE; }
const char *client_redirect(const struct client *c) { return c->redirect; }
long client_retry_after(const struct client *c) { return c->retry_after; }
void client_set_partner(struct client *c, int partner_user) { c->partner = partner_user; }

static void list_remove(struct client *c)
{
	struct lg *lg = c->lg;
	if (!c->in_list)
		return;
	if (c->lprev)
		c->lprev->lnext = c->lnext;
	else
		lg->login_head = c->lnext;
	if (c->lnext)
		c->lnext->lprev = c->lprev;
	else
		lg->login_tail = c->lprev;
	c->lprev = c->lnext = NULL;
	c->in_list = 0;
	lg->in_login--;
}

/* Record why the client failed and mark it dead; the caller frees it once it is safe
 * (never from inside the XML parser). */
static void client_fail(struct client *c, const char *reason)
{
	if (c->state == C_DEAD)
		return;
	if (c->state == C_ONLINE) {
		c->lg->dropped++;
		char r[64];
		snprintf(r, sizeof r, "dropped:%s", reason);
		failures_add(&c->lg->fail, r);
	} else {
		failures_add(&c->lg->fail, reason);
	}
	if (!c->lg->cfg.quiet && c->lg->fail.total <= 5)
		fprintf(stderr, "duet-loadgen: user %d failed: %s\n", c->user, reason);
	c->state = C_DEAD;
}

static void wev_set(struct client *c, int on)
{
	if (on == c->wev_on)
		return;
	if (on)
		event_add(c->wev, NULL);
	else
		event_del(c->wev);
	c->wev_on = on;
}

/* Append n bytes to a growing buffer of at most OUT_MAX.  0, or -1 when it is full or
 * memory is short. */
static int buf_append(char **buf, size_t *len, size_t *cap, const void *s, size_t n)
{
	if (*len + n > OUT_MAX)
		return -1;
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 512;
		while (ncap < *len + n)
			ncap *= 2;
		char *p = realloc(*buf, ncap);
		if (!p)
			return -1;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	return 0;
}

/* Idle clients keep no big buffers. */
static void buf_trim(char **buf, size_t len, size_t *cap)
{
	if (len == 0 && *cap > 4096) {
		free(*buf);
		*buf = NULL;
		*cap = 0;
	}
}

/* The TLS connection's BIO: records OpenSSL writes are appended to c->out, which
 * client_flush writes once per event, so that the client's Finished and the stream header
 * after it share one write; reads come from the socket, and tell client_read whether
 * the socket may hold more. */
static BIO_METHOD *wire_method;

static int wire_write(BIO *b, const char *s, int n)
{
	struct client *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (n < 0 || buf_append(&c->out, &c->out_len, &c->out_cap, s, (size_t)n) < 0)
		return -1; /* an error, not a retry: the client fails */
	return n;
}

static int wire_read(BIO *b, char *s, int n)
{
	struct client *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	if (c->hello_unsent) { /* SSL_connect reads right after writing its hello */
		c->hello_unsent = 0;
		BIO_set_retry_read(b);
		return -1;
	}
	ssize_t r = read(c->fd, s, (size_t)n);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			BIO_set_retry_read(b);
		return -1;
	}
	c->rd_full = r == n;
	return (int)r;
}

static long wire_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH; /* client_flush writes; nothing else is supported */
}

static BIO *wire_new(struct client *c)
{
	if (!wire_method) {
		wire_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
					   "duet-loadgen wire");
		if (!wire_method || !BIO_meth_set_write(wire_method, wire_write) ||
		    !BIO_meth_set_read(wire_method, wire_read) ||
		    !BIO_meth_set_ctrl(wire_method, wire_ctrl)) {
			BIO_meth_free(wire_method);
			wire_method = NULL;
			return NULL;
		}
	}
	BIO *b = BIO_new(wire_method);
	if (b) {
		BIO_set_data(b, c);
		BIO_set_init(b, 1);
	}
	return b;
}

void client_cleanup(void)
{
	BIO_meth_free(wire_method);
	wire_method = NULL;
}

static const char *connect_failure(int err)
{
	return err == ECONNREFUSED ? "connect-refused" : "connect";
}

/* Send what is buffered: plaintext through TLS once its handshake is done, then the socket
 * buffer in one write.  0 when done or waiting for the socket, -1 when the client failed. */
static int client_flush(struct client *c)
{
	if (c->pt_len && c->ssl && SSL_is_init_finished(c->ssl)) {
		size_t done = 0, w;
		ERR_clear_error();
		while (done < c->pt_len) { /* wire_write takes all: no partial writes */
			if (SSL_write_ex(c->ssl, c->pt + done, c->pt_len - done, &w) != 1) {
				client_fail(c, "tls-write");
				return -1;
			}
			done += w;
		}
		c->pt_len = 0;
		buf_trim(&c->pt, 0, &c->pt_cap);
	}
	size_t off = 0;
	while (off < c->out_len) {
		ssize_t n = write(c->fd, c->out + off, c->out_len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) /* also: a connection not yet up */
				break;
			client_fail(c, c->state == C_CONNECT ? connect_failure(errno) : "write");
			return -1;
		}
		off += (size_t)n;
		if (c->state == C_CONNECT)
			c->state = C_FEAT1; /* connected: the stream header is on its way */
	}
	if (off) {
		memmove(c->out, c->out + off, c->out_len - off);
		c->out_len -= off;
	}
	wev_set(c, c->out_len > 0);
	buf_trim(&c->out, c->out_len, &c->out_cap);
	return 0;
}

static int client_send(struct client *c, const char *s, size_t len)
{
	if (c->state == C_DEAD)
		return -1;
	int r = c->ssl ? buf_append(&c->pt, &c->pt_len, &c->pt_cap, s, len)
		       : buf_append(&c->out, &c->out_len, &c->out_cap, s, len);
	if (r < 0) {
		client_fail(c, "send-buffer-full");
		return -1;
	}
	return c->corked ? 0 : client_flush(c);
}

static int client_sendf(struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int client_sendf(struct client *c, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf) {
		client_fail(c, "internal-overflow");
		return -1;
	}
	return client_send(c, buf, (size_t)n);
}

static void send_stream_header(struct client *c)
{
	client_sendf(c,
		     "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' "
		     "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
		     c->lg->cfg.domain);
}

static void send_presence_roster(struct client *c)
{
	client_sendf(c, "<presence/><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>");
	c->state = C_ROSTER;
}

static void login_complete(struct client *c)
{
	uint64_t now = lg_now_ns();
	list_remove(c);
	c->state = C_ONLINE;
	c->was_online = 1;
	if (c->sasl) {
		sasl_scram_clear(c->sasl);
		free(c->sasl);
		c->sasl = NULL;
	}
	run_login_done(c->lg, c, now - c->sched);
	if (c->lg->cfg.mode == LG_FAILOVER)
		fo_on_login(c->lg, c, c->user);
}

void client_send_message(struct client *c)
{
	struct lg *lg = c->lg;
	if (c->state != C_ONLINE)
		return;
	if (client_sendf(c,
			 "<message to='%s%d@%s' type='chat'><body>%llu</body></message>",
			 lg->cfg.prefix, c->partner, lg->cfg.domain,
			 (unsigned long long)lg_now_ns()) == 0)
		lg->msgs_sent++;
}

int client_send_chat(struct client *c, int to_user, uint32_t seq)
{
	struct lg *lg = c->lg;
	if (c->state != C_ONLINE)
		return -1;
	return client_sendf(c,
			    "<message to='%s%d@%s' type='chat' id='f%u'><body>%u %llu</body>"
			    "</message><iq type='get' id='p%u' to='%s'><ping xmlns='urn:xmpp:ping'/>"
			    "</iq>",
			    lg->cfg.prefix, to_user, lg->cfg.domain, seq, seq,
			    (unsigned long long)lg_now_ns(), seq, lg->cfg.domain);
}

void client_send_disco(struct client *c)
{
	client_sendf(c, "<iq type='get' id='d' to='%s'><query "
			"xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		     c->lg->cfg.domain);
}

static void on_message(struct client *c, const struct xin_stanza *st)
{
	struct lg *lg = c->lg;
	if (strcmp(st->type, "error") == 0) {
		char r[64];
		snprintf(r, sizeof r, "message-error:%s", st->cond[0] ? st->cond : "?");
		failures_add(&lg->fail, r);
		return;
	}
	if (st->text_len == 0)
		return; /* not one of ours (e.g. a server notice) */
	char *end;
	unsigned long long sent = strtoull(st->text, &end, 10);
	uint64_t now = lg_now_ns();
	if (*end || sent == 0 || sent > now) {
		failures_add(&lg->fail, "message-bad-body");
		return;
	}
	lg->msgs_recv++;
	if (lg->measuring && sent >= lg->win_start && now <= lg->win_end) {
		lg->msgs_in_window++;
		hist_add(&lg->msg_lat, (now - sent) / 1000);
	}
	if (!lg->stopping)
		client_send_message(c);
}

static enum scram_hash pick_mech(struct client *c, unsigned offered, int *ok)
{
	enum lg_mech want = c->lg->cfg.mech;
	*ok = 1;
	if (want == LG_MECH_SHA256 || (want == LG_MECH_AUTO && (offered & XIN_MECH_SHA256))) {
		*ok = (offered & XIN_MECH_SHA256) != 0;
		return SCRAM_SHA256;
	}
	*ok = (offered & XIN_MECH_SHA1) != 0;
	return SCRAM_SHA1;
}

static void fail_cond(struct client *c, const char *what, const struct xin_stanza *st)
{
	char r[64];
	snprintf(r, sizeof r, "%s:%s", what, st->cond[0] ? st->cond : "?");
	client_fail(c, r);
}

static int is_result(const struct xin_stanza *st, const char *id)
{
	return strcmp(st->name, "iq") == 0 && strcmp(st->id, id) == 0 &&
	       strcmp(st->type, "result") == 0;
}

static int is_iq_error(const struct xin_stanza *st, const char *id)
{
	return strcmp(st->name, "iq") == 0 && strcmp(st->id, id) == 0 &&
	       strcmp(st->type, "error") == 0;
}

/* One server element.  Returns 1 to stop the parser (restart or death). */
static int on_stanza(struct client *c, const struct xin_stanza *st)
{
	char b64[SASL_B64_MAX];
	const char *why;

	if (strcmp(st->name, "error") == 0) {
		if (strcmp(st->cond, "see-other-host") == 0)
			snprintf(c->redirect, sizeof c->redirect, "%.*s", (int)st->text_len, st->text);
		c->retry_after = st->retry_after;
		fail_cond(c, "stream-error", st);
		return 1;
	}
	if (c->lg->cfg.mode == LG_FAILOVER && (c->state == C_ROSTER || c->state == C_ONLINE)) {
		/* offline messages may come before the roster answer */
		if (strcmp(st->name, "message") == 0) {
			fo_on_message(c->lg, c->user, st);
			return 0;
		}
		if (c->state == C_ONLINE && strcmp(st->name, "iq") == 0) {
			fo_on_iq(c->lg, c->user, st);
			return 0;
		}
	}
	switch (c->state) {
	case C_FEAT1:
		if (strcmp(st->name, "features") != 0)
			break;
		if (!st->starttls) {
			client_fail(c, "no-starttls");
			return 1;
		}
		client_sendf(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
		c->state = C_PROCEED;
		return 0;
	case C_PROCEED:
		if (strcmp(st->name, "proceed") == 0) {
			c->state = C_TLS_START;
			return 1;
		}
		client_fail(c, "starttls-refused");
		return 1;
	case C_FEAT2: {
		if (strcmp(st->name, "features") != 0)
			break;
		int ok;
		enum scram_hash h = pick_mech(c, st->mechs, &ok);
		if (!ok) {
			client_fail(c, "no-scram-mechanism");
			return 1;
		}
		c->sasl = calloc(1, sizeof *c->sasl);
		if (!c->sasl) {
			client_fail(c, "out-of-memory");
			return 1;
		}
		char user[96];
		snprintf(user, sizeof user, "%s%d", c->lg->cfg.prefix, c->user);
		if (sasl_scram_start(c->sasl, h, user, c->lg->cfg.password, b64, sizeof b64) < 0) {
			client_fail(c, "sasl-start");
			return 1;
		}
		c->lg->mech_used = scram_mech_name(h);
		client_sendf(c, "<auth xmlns='%s' mechanism='%s'>%s</auth>", NS_SASL,
			     scram_mech_name(h), b64);
		c->state = C_SASL;
		return 0;
	}
	case C_SASL:
		if (strcmp(st->name, "challenge") == 0) {
			if (sasl_scram_step(c->sasl, st->text, st->text_len, b64, sizeof b64,
					    &why) < 0) {
				client_fail(c, why);
				return 1;
			}
			client_sendf(c, "<response xmlns='%s'>%s</response>", NS_SASL, b64);
			c->state = C_SUCCESS;
			return 0;
		}
		if (strcmp(st->name, "failure") == 0) {
			fail_cond(c, "sasl-failure", st);
			return 1;
		}
		break;
	case C_SUCCESS:
		if (strcmp(st->name, "success") == 0 || strcmp(st->name, "challenge") == 0) {
			if (sasl_scram_finish(c->sasl, st->text, st->text_len) < 0) {
				client_fail(c, "sasl-bad-server-signature");
				return 1;
			}
			if (strcmp(st->name, "challenge") == 0) { /* additional data as a challenge */
				client_sendf(c, "<response xmlns='%s'/>", NS_SASL);
				return 0;
			}
			c->state = C_RESTART;
			return 1;
		}
		if (strcmp(st->name, "failure") == 0) {
			fail_cond(c, "sasl-failure", st);
			return 1;
		}
		break;
	case C_FEAT3:
		if (strcmp(st->name, "features") != 0)
			break;
		if (!st->bind) {
			client_fail(c, "no-bind");
			return 1;
		}
		c->need_session = st->session && !st->session_optional;
		client_sendf(c, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
				"</iq>");
		c->state = C_BIND;
		return 0;
	case C_BIND:
		if (is_result(st, "b")) {
			if (c->need_session) {
				client_sendf(c, "<iq type='set' id='s'><session "
						"xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
				c->state = C_SESSION;
			} else {
				send_presence_roster(c);
			}
			return 0;
		}
		if (is_iq_error(st, "b")) {
			fail_cond(c, "bind-error", st);
			return 1;
		}
		break;
	case C_SESSION:
		if (is_result(st, "s")) {
			send_presence_roster(c);
			return 0;
		}
		if (is_iq_error(st, "s")) {
			fail_cond(c, "session-error", st);
			return 1;
		}
		break;
	case C_ROSTER:
		if (is_result(st, "r")) {
			login_complete(c);
			return 0;
		}
		if (is_iq_error(st, "r")) {
			fail_cond(c, "roster-error", st);
			return 1;
		}
		break;
	case C_ONLINE:
		if (strcmp(st->name, "message") == 0)
			on_message(c, st);
		return 0;
	default:
		break;
	}
	return 0; /* other elements (presence, pushes) are ignored */
}

static int on_xml(void *arg, enum xin_event ev, const struct xin_stanza *st)
{
	struct client *c = arg;
	if (c->state == C_DEAD)
		return 1;
	if (ev == XIN_STREAM_CLOSE) {
		client_fail(c, "stream-closed-by-server");
		return 1;
	}
	if (ev == XIN_STREAM_OPEN)
		return 0;
	return on_stanza(c, st) || c->state == C_DEAD;
}

/* Data TLS already holds, or a socket that may hold more than the last read took. */
static int more_to_read(const struct client *c)
{
	return c->rd_full || (c->ssl && SSL_has_pending(c->ssl));
}

static void client_read(struct client *c);

static void tls_step(struct client *c)
{
	ERR_clear_error();
	int r = SSL_connect(c->ssl);
	if (r == 1) {
		c->state = C_FEAT2;
		if (xin_reset(&c->xin) < 0) {
			client_fail(c, "xml-reset");
			return;
		}
		send_stream_header(c); /* goes out with our Finished, at the end of the event */
		if (more_to_read(c))
			client_read(c);
		return;
	}
	/* The wire BIO takes every write: only a read can be missing. */
	if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
		client_fail(c, "tls-handshake");
}

static void tls_start(struct client *c)
{
	BIO *b;
	c->ssl = SSL_new(c->lg->tls);
	if (!c->ssl || !(b = wire_new(c))) {
		client_fail(c, "tls-setup");
		return;
	}
	SSL_set_bio(c->ssl, b, b);
	SSL_set_tlsext_host_name(c->ssl, c->lg->cfg.domain);
	c->state = C_TLS;
	c->rd_full = 0;
	c->hello_unsent = 1;
	tls_step(c);
	c->hello_unsent = 0;
}

/* After a feed: carry out transitions the parser asked for.  0 to keep reading. */
static int after_feed(struct client *c)
{
	if (c->state == C_TLS_START) {
		tls_start(c);
		return 1;
	}
	if (c->state == C_RESTART) {
		if (xin_reset(&c->xin) < 0) {
			client_fail(c, "xml-reset");
			return 1;
		}
		c->state = C_FEAT3;
		send_stream_header(c);
		return c->state == C_DEAD;
	}
	if (c->state == C_ONLINE && c->lg->cfg.mode == LG_LOGIN) {
		client_send(c, "</stream:stream>", 16);
		client_flush(c); /* now: the client is freed next */
		c->state = C_DEAD; /* a clean end, not a failure */
		return 1;
	}
	return c->state == C_DEAD;
}

static void client_read(struct client *c)
{
	char buf[16384];
	for (;;) {
		ssize_t n;
		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, buf, sizeof buf);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					return;
				client_fail(c, e == SSL_ERROR_ZERO_RETURN ? "closed-by-server"
									  : "tls-read");
				return;
			}
			n = r;
		} else {
			n = read(c->fd, buf, sizeof buf);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				client_fail(c, n == 0 ? "closed-by-server" : "read");
				return;
			}
			c->rd_full = (size_t)n == sizeof buf;
		}
		if (xin_feed(&c->xin, buf, (size_t)n) < 0) {
			client_fail(c, c->xin.err ? c->xin.err : "xml");
			return;
		}
		if (after_feed(c))
			return;
		/* A read that did not fill its buffer emptied the socket, and the level-triggered
		 * read event reports whatever comes next: reading again would only get EAGAIN. */
		if (!more_to_read(c))
			return;
	}
}

static void client_io(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	(void)fd;

	c->corked = 1;
	if (c->state == C_CONNECT) { /* the connection was not up when the client started */
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
			client_fail(c, connect_failure(err));
		/* else the flush below sends the stream header */
	} else if (c->state == C_TLS) {
		tls_step(c);
	} else if ((what & EV_READ) && c->state != C_DEAD) {
		client_read(c);
	}
	c->corked = 0;
	if (c->state != C_DEAD && (c->out_len || c->pt_len))
		client_flush(c);
	if (c->state == C_DEAD)
		client_free(c);
}

struct client *client_start(struct lg *lg, int user, uint64_t sched_ns)
{
	return client_start_at(lg, user, sched_ns, (struct sockaddr *)&lg->addr, lg->addrlen);
}

struct client *client_start_at(struct lg *lg, int user, uint64_t sched_ns,
			       const struct sockaddr *sa, socklen_t salen)
{
	struct client *c = calloc(1, sizeof *c);
	if (!c) {
		failures_add(&lg->fail, "out-of-memory");
		return NULL;
	}
	c->lg = lg;
	c->user = user;
	c->sched = sched_ns;
	c->retry_after = -1;
	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		failures_add(&lg->fail, errno == EMFILE ? "socket-emfile" : "socket");
		free(c);
		return NULL;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (xin_init(&c->xin, on_xml, c) < 0) {
		failures_add(&lg->fail, "out-of-memory");
		close(c->fd);
		free(c);
		return NULL;
	}
	c->rev = event_new(lg->base, c->fd, EV_READ | EV_PERSIST, client_io, c);
	c->wev = event_new(lg->base, c->fd, EV_WRITE | EV_PERSIST, client_io, c);
	lg->open_conns++;
	/* into the login list (arrival order = deadline order) */
	c->in_list = 1;
	c->lprev = lg->login_tail;
	if (lg->login_tail)
		lg->login_tail->lnext = c;
	else
		lg->login_head = c;
	lg->login_tail = c;
	lg->in_login++;
	if (!c->rev || !c->wev) {
		client_fail(c, "out-of-memory");
		client_free(c);
		return NULL;
	}
	c->state = C_CONNECT;
	if (connect(c->fd, sa, salen) < 0 && errno != EINPROGRESS) {
		client_fail(c, errno == EADDRNOTAVAIL ? "connect-no-port" : "connect");
		client_free(c);
		return NULL;
	}
	event_add(c->rev, NULL);
	/* On loopback the connection is up when connect() returns: the stream header goes out
	 * at once, without waiting to be told the socket is writable.  A refused connection
	 * fails here and is freed by its event (the socket reports the hang-up), so that the
	 * caller sees it gone the same way as a later failure. */
	send_stream_header(c);
	return c;
}

static void client_free(struct client *c)
{
	struct lg *lg = c->lg;
	int was_online = c->was_online;
	list_remove(c);
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	xin_free(&c->xin);
	if (c->sasl)
		sasl_scram_clear(c->sasl);
	free(c->sasl);
	free(c->out);
	free(c->pt);
	lg->open_conns--;
	if (lg->cfg.mode == LG_FAILOVER)
		fo_on_gone(lg, c, c->user, was_online);
	run_client_gone(lg, c, c->user, was_online);
	free(c);
}

void client_close(struct client *c)
{
	c->corked = 0;
	if (c->state == C_ONLINE) {
		client_send(c, "</stream:stream>", 16);
		c->state = C_DEAD;
	}
	client_free(c);
}

void client_sweep_timeouts(struct lg *lg, uint64_t now)
{
	uint64_t limit = (uint64_t)(lg->cfg.login_timeout * 1e9);
	while (lg->login_head && now - lg->login_head->sched > limit) {
		struct client *c = lg->login_head;
		static const char *const names[] = {
			"connect", "features", "proceed", "tls", "tls", "features", "sasl",
			"sasl-success", "restart", "features", "bind", "session", "roster",
			"online", "dead"};
		char r[64];
		snprintf(r, sizeof r, "timeout:%s", names[c->state]);
		client_fail(c, r);
		client_free(c);
	}
}
