/* The tcp peer link's pieces, shared by its files (not for srmd: use peer_link.h).
 * peer_link.c: configuration, creation and teardown; peer_link_conn.c: one connection (TLS,
 * events, close and reaping); peer_link_dial.c: dialing with backoff, listening;
 * peer_link_send.c: frames out; peer_link_recv.c: frames in, HELLO and choosing the session;
 * peer_link_detect.c: failure detector events to callbacks; peer_link_goodbye.c: goodbye. */
#ifndef DUET_PEER_LINK_INTERNAL_H
#define DUET_PEER_LINK_INTERNAL_H

#include "heartbeat/peer_link.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "heartbeat/detector.h"

#define BACKOFF_MIN_MS 100u

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

/* ---- peer_link_conn.c ---- */

const char *peer_conn_dir(const struct peer_conn *c);
/* Mark c dead and disable it; the reaper frees it later.  Losing the session redials. */
void peer_conn_close(struct peer_conn *c);
void peer_conn_destroy(struct peer_conn *c);
void peer_link_reap_cb(evutil_socket_t fd, short what, void *arg);
int peer_link_pending_count(const struct peer_link *link);
/* A TLS connection on fd (-1: to be connected), in the link's list; NULL on failure. */
struct peer_conn *peer_conn_new(struct peer_link *link, evutil_socket_t fd, bool outgoing);
/* Close c; if it was our dial attempt, dial again after the backoff. */
void peer_conn_attempt_failed(struct peer_conn *c);
/* TLS is up: check the certificate, send HELLO. */
void peer_conn_tls_up(struct peer_conn *c);
void peer_conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* ---- peer_link_dial.c ---- */

void peer_link_dial_schedule(struct peer_link *link, uint64_t delay_ms);
void peer_link_dial_cb(evutil_socket_t fd, short what, void *arg);
/* The session connection closed: redial (at once, or after a grace for the higher id). */
void peer_link_session_lost(struct peer_link *link);
int peer_link_listen(struct peer_link *link);

/* ---- peer_link_send.c ---- */

int peer_conn_send(struct peer_conn *c, const struct frame *f);
void peer_conn_send_hello(struct peer_conn *c);
void peer_link_send_heartbeat(struct peer_link *link);
void peer_link_hb_cb(evutil_socket_t fd, short what, void *arg);

/* ---- peer_link_recv.c ---- */

void peer_conn_read_cb(struct bufferevent *bev, void *arg);

/* ---- peer_link_detect.c ---- */

/* Turn a detector event into log lines, stats and the user's callbacks. */
void peer_link_report(struct peer_link *link, enum detector_event ev, enum peer_down_reason reason,
		 int goodbye_reason);
void peer_link_dead_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ---- peer_link_goodbye.c ---- */

/* The lingering connection is done: close it and report on_closed. */
void peer_conn_linger_done(struct peer_conn *c);

#endif
