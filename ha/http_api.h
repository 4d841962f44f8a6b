/* Between the HTTP admin's server (ha/http_admin.c: listening, TLS, access, routing) and
 * its handlers (ha/http_api.c: the JSON API, the page, /metrics). */
#ifndef DUET_HTTP_API_H
#define DUET_HTTP_API_H

#include <stddef.h>
#include <sys/queue.h>

struct evbuffer;
struct evhttp_request;
struct http_admin;
struct srm;

#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 4096

enum http_access {
	HTTP_READ,  /* open to loopback, token elsewhere */
	HTTP_WRITE, /* token always */
};

/* An answer that comes later (the engine, the database, a control command).  The server
 * keeps these so that, when it is freed, each is cancelled and answered 503. */
struct http_pending {
	TAILQ_ENTRY(http_pending) entry;
	struct http_admin *h;
	struct evhttp_request *req;
	/* Stop the asynchronous work and free the owner (not the request). */
	void (*cancel)(struct http_pending *p);
};

/* query: the raw query string ("" when none); origin: "ADDRESS:PORT" of the client. */
typedef void (*http_handler_fn)(struct http_admin *h, struct evhttp_request *req,
				const char *query, const char *origin);

struct http_route {
	const char *path;
	int method;            /* EVHTTP_REQ_GET or EVHTTP_REQ_POST (HEAD follows GET) */
	enum http_access access;
	http_handler_fn fn;
};
extern const struct http_route http_routes[]; /* ended by path NULL */

/* ---- ha/http_admin.c ---- */
struct srm *http_admin_srm(const struct http_admin *h);
void http_pending_add(struct http_admin *h, struct http_pending *p,
		      struct evhttp_request *req, void (*cancel)(struct http_pending *p));
/* Before answering p->req: the server forgets p. */
void http_pending_done(struct http_pending *p);
/* Send code with body (may be NULL) as content_type, plus the headers every answer has. */
void http_reply(struct evhttp_request *req, int code, const char *content_type,
		struct evbuffer *body);
/* {"ok":false,"error":ERROR,"message":MESSAGE} */
void http_reply_error(struct evhttp_request *req, int code, const char *error,
		      const char *message);
/* Append s as a JSON string literal. */
void http_json_string(struct evbuffer *out, const char *s);

/* ---- ha/http_page.c ---- */
extern const char http_page_html[];
/* The Content-Security-Policy of the page: its one inline script allowed by hash. */
const char *http_page_csp(void);

#endif
