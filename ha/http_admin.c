/* The HTTP admin's server: listening (and retrying the default address), HTTPS, access
 * rules, routing to ha/http_api.c's table, and the answers every handler shares.  See
 * http_admin.h for the rules. */
#include "ha/http_admin.h"

#include "ha/http_api.h"
#include "ha/srm.h"
#include "lib/json_out.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define HTTP_TIMEOUT_S 10
#define HTTP_RETRY_BIND_S 5
#define HTTP_TOKEN_MIN 16   /* characters: a token shorter than this is a configuration error */
#define HTTP_TOKEN_MAX 1024
#define HTTP_GUARD_MS 1000  /* how often the descriptor guard counts srmd's open files */

TAILQ_HEAD(http_pending_list, http_pending);

struct http_admin {
	struct srm *srm;
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl;
	unsigned char token_hash[32];
	int has_token;
	char host[CFG_NAME];
	int port;
	int is_default;        /* listening on CFG_HTTP_LISTEN_DEFAULT: a busy port only warns */
	int bound_port;        /* 0 while not bound */
	int bind_warned;
	struct event *ev_retry;
	struct http_pending_list pending;
	/* Descriptor guard: evhttp (libevent 2.1) has no connection cap, so accepting pauses
	 * while srmd has half its RLIMIT_NOFILE open; the peer link, the engine and the
	 * database keep the other half. */
	struct evhttp_bound_socket *bound;
	struct event *ev_guard;
	long fds_open;         /* at the last count */
	long accepted;         /* connections accepted since */
	int paused;
};

struct srm *http_admin_srm(const struct http_admin *h) { return h->srm; }
int http_admin_port(const struct http_admin *h) { return h ? h->bound_port : 0; }

/* ---- answers ---- */

static const char *reason_phrase(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

void http_reply(struct evhttp_request *req, int code, const char *content_type,
		struct evbuffer *body)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	if (content_type)
		evhttp_add_header(hdr, "Content-Type", content_type);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hdr, "X-Frame-Options", "DENY");
	evhttp_add_header(hdr, "Referrer-Policy", "no-referrer");
	evhttp_send_reply(req, code, reason_phrase(code), body);
}

void http_json_string(struct evbuffer *out, const char *s)
{
	json_out_string(out, s);
}

void http_reply_error(struct evhttp_request *req, int code, const char *error,
		      const char *message)
{
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add_printf(b, "{\"ok\":false,\"error\":");
		http_json_string(b, error);
		evbuffer_add_printf(b, ",\"message\":");
		http_json_string(b, message);
		evbuffer_add_printf(b, "}\n");
	}
	http_reply(req, code, "application/json", b);
	if (b)
		evbuffer_free(b);
}

/* ---- pending answers ---- */

void http_pending_add(struct http_admin *h, struct http_pending *p,
		      struct evhttp_request *req, void (*cancel)(struct http_pending *p))
{
	p->h = h;
	p->req = req;
	p->cancel = cancel;
	TAILQ_INSERT_TAIL(&h->pending, p, entry);
}

void http_pending_done(struct http_pending *p)
{
	TAILQ_REMOVE(&p->h->pending, p, entry);
}

/* ---- access ---- */

static int token_hash(const char *tok, size_t len, unsigned char out[32])
{
	unsigned int n = 0;
	return EVP_Digest(tok, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* The token file: one line; surrounding white space is not part of the token. */
static int token_load(struct http_admin *h, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "[http] token_file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		log_warnx("http: %s can be read by other users (chmod 600 it)", path);
	char buf[HTTP_TOKEN_MAX + 2];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *s = buf;
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t len = strcspn(s, " \t\r\n");
	int rc = 0;
	if (n > HTTP_TOKEN_MAX) {
		snprintf(err, errlen, "[http] token_file %s: longer than %d bytes", path,
			 HTTP_TOKEN_MAX);
		rc = -1;
	} else if (len < HTTP_TOKEN_MIN) {
		snprintf(err, errlen, "[http] token_file %s: the token must have at least %d "
			 "characters", path, HTTP_TOKEN_MIN);
		rc = -1;
	} else if (token_hash(s, len, h->token_hash) < 0) {
		snprintf(err, errlen, "[http] token_file: SHA-256 failed");
		rc = -1;
	}
	explicit_bzero(buf, sizeof buf);
	h->has_token = rc == 0;
	return rc;
}

enum token_seen { TOKEN_NONE, TOKEN_BAD, TOKEN_OK };

static enum token_seen token_check(const struct http_admin *h, struct evhttp_request *req)
{
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Authorization");
	if (!auth)
		return TOKEN_NONE;
	if (strncasecmp(auth, "Bearer ", 7) != 0 || !h->has_token)
		return TOKEN_BAD;
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	size_t len = strcspn(tok, " \t");
	unsigned char got[32];
	/* Hashes compared in constant time: no timing hint of a matching prefix. */
	if (len == 0 || token_hash(tok, len, got) < 0 ||
	    CRYPTO_memcmp(got, h->token_hash, sizeof got) != 0)
		return TOKEN_BAD;
	return TOKEN_OK;
}

static int addr_loopback(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
	       strncmp(a, "::ffff:127.", 11) == 0;
}

/* The Host header names a loopback host: a page of another site that a DNS name rebound to
 * 127.0.0.1 names its own host, and gets no token-less read. */
static int host_loopback(struct evhttp_request *req)
{
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	if (!host)
		return 0;
	char name[64];
	size_t n;
	if (host[0] == '[') {
		n = strcspn(host + 1, "]");
		if (host[1 + n] != ']' || n >= sizeof name)
			return 0;
		memcpy(name, host + 1, n);
	} else {
		n = strcspn(host, ":");
		if (n >= sizeof name)
			return 0;
		memcpy(name, host, n);
	}
	name[n] = '\0';
	if (strcasecmp(name, "localhost") == 0)
		return 1;
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, name, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static void reply_unauthorized(struct evhttp_request *req, int bad, const char *message)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			  bad ? "Bearer realm=\"duet\", error=\"invalid_token\""
			      : "Bearer realm=\"duet\"");
	http_reply_error(req, 401, bad ? "invalid-token" : "token-required", message);
}

/* 0 when the request may go on; otherwise it has been answered. */
static int access_check(struct http_admin *h, struct evhttp_request *req,
			const struct http_route *r, const char *peer, const char *origin,
			const char *path)
{
	enum token_seen t = token_check(h, req);
	if (t == TOKEN_OK)
		return 0;
	if (t == TOKEN_BAD) {
		log_info("http: %s %s: wrong token", origin, path);
		reply_unauthorized(req, 1, "the bearer token is not valid");
		return -1;
	}
	if (r->access == HTTP_READ && addr_loopback(peer) && host_loopback(req))
		return 0;
	if (r->access == HTTP_WRITE && !h->has_token) {
		http_reply_error(req, 403, "writes-disabled",
				 "no [http] token_file is configured: the API is read-only");
		return -1;
	}
	reply_unauthorized(req, 0, r->access == HTTP_WRITE
					   ? "this action needs Authorization: Bearer <token>"
					   : "reads from this address need a bearer token");
	return -1;
}

/* ---- routing ---- */

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_admin *h = arg;
	char *peer = NULL;
	ev_uint16_t pport = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &pport);
	char origin[96];
	snprintf(origin, sizeof origin, "%.60s:%u", peer ? peer : "?", (unsigned)pport);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!uri || !path) {
		http_reply_error(req, 400, "bad-request", "the request URI cannot be parsed");
		return;
	}
	if (!*path)
		path = "/";
	const char *query = evhttp_uri_get_query(uri);
	int method = (int)evhttp_request_get_command(req);
	const struct http_route *found = NULL;
	int path_known = 0;
	for (const struct http_route *r = http_routes; r->path; r++) {
		if (strcmp(r->path, path) != 0)
			continue;
		path_known = 1;
		if (method == r->method || (method == EVHTTP_REQ_HEAD && r->method == EVHTTP_REQ_GET))
			found = r;
	}
	if (!path_known) {
		http_reply_error(req, 404, "not-found", "no such resource");
		return;
	}
	if (!found) {
		char allow[32] = "";
		for (const struct http_route *r = http_routes; r->path; r++)
			if (strcmp(r->path, path) == 0)
				snprintf(allow, sizeof allow, "%s",
					 r->method == EVHTTP_REQ_GET ? "GET, HEAD" : "POST");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		http_reply_error(req, 405, "method-not-allowed",
				 "this resource does not take that method");
		return;
	}
	if (access_check(h, req, found, peer ? peer : "", origin, path) < 0)
		return;
	found->fn(h, req, query ? query : "", origin);
}

static int listen_parse(struct http_admin *h, const char *listen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof ss;
	const char *colon = strrchr(listen, ':');
	if (evutil_parse_sockaddr_port(listen, (struct sockaddr *)&ss, &sslen) < 0 || !colon) {
		snprintf(err, errlen, "[http] listen %s: not host:port (IPv6 as [addr]:port)",
			 listen);
		return -1;
	}
	size_t n = (size_t)(colon - listen);
	const char *host = listen;
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	snprintf(h->host, sizeof h->host, "%.*s", (int)n, host);
	h->port = atoi(colon + 1);
	return 0;
}

static int bound_port_of(struct evhttp_bound_socket *bs)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* ---- the descriptor guard ---- */

static long fds_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static long fds_allowed(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 1L << 20;
	return (long)(rl.rlim_cur / 2);
}

static void guard_set(struct http_admin *h, int pause)
{
	if (!h->bound || pause == h->paused)
		return;
	struct evconnlistener *l = evhttp_bound_socket_get_listener(h->bound);
	if (pause) {
		evconnlistener_disable(l);
		log_warnx("http: srmd has %ld descriptors open (limit %ld for the admin): not "
			  "accepting admin connections for now", h->fds_open + h->accepted,
			  fds_allowed());
	} else {
		evconnlistener_enable(l);
		log_info("http: accepting admin connections again (%ld descriptors open)",
			 h->fds_open);
	}
	h->paused = pause;
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	struct http_admin *h = arg;
	long n = fds_count();
	if (n < 0)
		return;
	h->fds_open = n;
	h->accepted = 0;
	guard_set(h, n >= fds_allowed());
}

/* Every accepted connection passes here (evhttp_set_bevcb) before evhttp sees it. */
static struct bufferevent *bev_new(struct event_base *base, void *arg)
{
	struct http_admin *h = arg;
	if (h->fds_open + ++h->accepted >= fds_allowed())
		guard_set(h, 1);
	if (!h->ssl)
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	SSL *ssl = SSL_new(h->ssl);
	if (!ssl)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	/* Browsers and curl often close without close_notify; that is no error here. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* ---- listening ---- */

static int try_bind(struct http_admin *h)
{
	struct evhttp_bound_socket *bs =
		evhttp_bind_socket_with_handle(h->http, h->host, (ev_uint16_t)h->port);
	if (!bs)
		return -1;
	h->bound = bs;
	h->fds_open = fds_count();
	h->accepted = 0;
	struct timeval tv = {HTTP_GUARD_MS / 1000, (HTTP_GUARD_MS % 1000) * 1000};
	event_add(h->ev_guard, &tv);
	h->bound_port = bound_port_of(bs);
	log_info("http: admin listening on %s%s%s:%d (%s)", strchr(h->host, ':') ? "[" : "",
		 h->host, strchr(h->host, ':') ? "]" : "", h->bound_port,
		 h->ssl ? "https" : "http");
	return 0;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct http_admin *h = arg;
	if (try_bind(h) == 0)
		return;
	struct timeval tv = {HTTP_RETRY_BIND_S, 0};
	evtimer_add(h->ev_retry, &tv);
}

static int tls_setup(struct http_admin *h, const struct duet_config *cfg, char *err,
		     size_t errlen)
{
	h->ssl = SSL_CTX_new(TLS_server_method());
	if (!h->ssl) {
		snprintf(err, errlen, "[http] cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(h->ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(h->ssl, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(h->ssl, cfg->http_tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(h->ssl, cfg->http_tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(h->ssl) != 1) {
		char e[256];
		ERR_error_string_n(ERR_get_error(), e, sizeof e);
		snprintf(err, errlen, "[http] tls_cert %s / tls_key %s: %s", cfg->http_tls_cert,
			 cfg->http_tls_key, e);
		return -1;
	}
	return 0;
}

int http_admin_start(struct srm *srm, char *err, size_t errlen)
{
	const struct duet_config *cfg = &srm->cfg;
	srm->http = NULL;
	if (!cfg->http_listen[0]) {
		log_info("http: admin off ([http] listen is empty)");
		return 0;
	}
	struct http_admin *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->srm = srm;
	h->base = srm->base;
	TAILQ_INIT(&h->pending);
	h->is_default = strcmp(cfg->http_listen, CFG_HTTP_LISTEN_DEFAULT) == 0;
	if (listen_parse(h, cfg->http_listen, err, errlen) < 0 ||
	    (cfg->http_token_file[0] && token_load(h, cfg->http_token_file, err, errlen) < 0))
		goto fail;
	h->http = evhttp_new(srm->base);
	h->ev_retry = evtimer_new(srm->base, on_retry, h);
	h->ev_guard = event_new(srm->base, -1, EV_PERSIST, on_guard, h);
	if (!h->http || !h->ev_retry || !h->ev_guard) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, HTTP_MAX_BODY);
	evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
	/* A body past the bound is read and dropped (within the timeout) before the close, so
	 * the client sees its 413 instead of a reset. */
	evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
	/* Every method reaches on_request, which answers 405 itself (evhttp would say 501). */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(h->http, "application/json");
	evhttp_set_gencb(h->http, on_request, h);
	evhttp_set_bevcb(h->http, bev_new, h);
	if (cfg->http_tls_cert[0] && tls_setup(h, cfg, err, errlen) < 0)
		goto fail;
	if (!h->has_token)
		log_info("http: no [http] token_file: the API is read-only");
	if (try_bind(h) < 0) {
		int e = errno;
		if (!h->is_default) {
			snprintf(err, errlen, "[http] listen %s: %s", cfg->http_listen,
				 strerror(e));
			goto fail;
		}
		/* Another srmd on this host may hold the default port: the node runs without
		 * its admin until the port is free. */
		log_warnx("http: cannot listen on the default %s (%s); retrying every %d s",
			  cfg->http_listen, strerror(e), HTTP_RETRY_BIND_S);
		struct timeval tv = {HTTP_RETRY_BIND_S, 0};
		evtimer_add(h->ev_retry, &tv);
	}
	srm->http = h;
	return 0;
fail:
	http_admin_free(h);
	return -1;
}

void http_admin_free(struct http_admin *h)
{
	if (!h)
		return;
	struct http_pending *p;
	while ((p = TAILQ_FIRST(&h->pending))) {
		struct evhttp_request *req = p->req;
		TAILQ_REMOVE(&h->pending, p, entry);
		p->cancel(p);
		/* Answered before evhttp_free: it frees the request with its connection. */
		http_reply_error(req, 503, "shutting-down", "srmd is stopping");
	}
	if (h->ev_retry)
		event_free(h->ev_retry);
	if (h->ev_guard)
		event_free(h->ev_guard);
	if (h->http)
		evhttp_free(h->http);
	if (h->ssl)
		SSL_CTX_free(h->ssl);
	explicit_bzero(h->token_hash, sizeof h->token_hash);
	free(h);
}
