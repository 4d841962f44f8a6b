/* srmd's HTTP admin ([http], docs/http-admin.md): libevent's evhttp on loopback by default,
 * optionally HTTPS (bufferevent_openssl).  Serves the JSON API and the status page
 * (ha/http_api.c, ha/http_page.c) and Prometheus /metrics (ha/metrics.c).
 *
 * Access: writes (POST) need `Authorization: Bearer <token>` with the token of
 * [http] token_file; without a token file there are no writes (403).  Reads need no token
 * from a loopback client that names a loopback host (Host header: a guard against DNS
 * rebinding), and the token from anywhere else.  Bounds: request headers 8 KiB, bodies
 * 4 KiB, 10 s I/O timeout, and no new connection while srmd has half its RLIMIT_NOFILE
 * open (evhttp in libevent 2.1 has no connection cap of its own). */
#ifndef DUET_HTTP_ADMIN_H
#define DUET_HTTP_ADMIN_H

#include <stddef.h>

struct srm;
struct http_admin;

/* Set up srm->http from srm->cfg ([http] listen empty: NULL, off).  A token file, TLS files
 * or an address that cannot be used are errors (-1, err set), except that the default
 * address being busy only warns: srmd retries binding it every few seconds. */
int http_admin_start(struct srm *srm, char *err, size_t errlen);
/* Answers requests still waiting (503) and closes every connection.  NULL is fine. */
void http_admin_free(struct http_admin *h);
/* The port listened on, 0 while not bound. */
int http_admin_port(const struct http_admin *h);

#endif
