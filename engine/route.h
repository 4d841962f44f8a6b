/* The route link between the two engines of a pair (docs/route-protocol.md, DESIGN §5b).
 *
 *   route_link.c  one TLS connection to the peer engine: dial or accept, mutual
 *                 certificates, framing, HELLO, keepalive, dead timer, reconnect
 *   route.c       what crosses it: which engine serves a user, forwarding stanzas,
 *                 presence fan-out and probes, acknowledged messages, and the table of
 *                 remote presences that turns into 'unavailable' when the link is lost
 *
 * With no [route] listen/peer_address configured nothing here does anything: the engine
 * behaves exactly as a single node. */
#ifndef DUET_ROUTE_H
#define DUET_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/jid.h"

struct xml_node;
struct user;

/* ---- frames (route_link.c encodes the header; route.c owns the payloads) ---- */
#define ROUTE_MAGIC0 'D'
#define ROUTE_MAGIC1 'R'
/* 2: HELLO carries the sender's instance, STANZA seqs span connections; 3: ADMIT */
#define ROUTE_VERSION 3
#define ROUTE_HEADER_SIZE 8
#define ROUTE_MAX_PAYLOAD (2u << 20) /* 2 MiB */
#define ROUTE_MAX_QUEUE (16u << 20)  /* bytes queued to a peer that does not read */

enum route_frame_type {
	ROUTE_HELLO = 1,    /* "duet-route <vmin> <vmax> <node-id> <instance>" */
	ROUTE_SERVE = 2,    /* "-" or "1,2": the home nodes the sender serves now */
	ROUTE_STANZA = 3,   /* "<seq>\n<stanza>": deliver as if routed locally */
	ROUTE_PRESENCE = 4, /* "<bare> <bare>...\n<presence>": fan out to their resources */
	ROUTE_PROBE = 5,    /* "<prober-jid> <bare> <bare>...": send their presences back */
	ROUTE_ACK = 6,      /* "<seq>": every STANZA up to seq has been handled */
	ROUTE_PING = 7,     /* empty: keeps the dead timer of the other side quiet */
	ROUTE_ADMIT = 8,    /* "<capacity> <inflight> <logins> <refused>": the sender's logins */
};
#define ROUTE_FRAME_LAST ROUTE_ADMIT

/* ---- route_frame.c: the wire format, no side effects (fuzzed) ---- */
#define ROUTE_HELLO_MAX 80
#define ROUTE_MAX_NODE 8 /* = MAX_HOME_NODES in engine.h (checked in route.c) */

struct route_hello {
	unsigned vmin, vmax, node;
	uint64_t instance; /* random, nonzero, chosen at the sender's start */
};

/* 0 and the type and payload length; 1: fewer than ROUTE_HEADER_SIZE bytes; -1: bad. */
int route_frame_header(const unsigned char *h, size_t avail, enum route_frame_type *type,
		       uint32_t *len);
void route_frame_header_encode(unsigned char h[ROUTE_HEADER_SIZE], enum route_frame_type type,
			       uint32_t len);
/* A decimal number filling [s, s+len), no sign, no leading zero. */
int route_parse_u64(const char *s, size_t len, uint64_t *out);
int route_hello_parse(const char *p, size_t len, struct route_hello *out);
int route_hello_format(char *buf, size_t size, int node, uint64_t instance);
int route_serve_parse(const char *p, size_t len, bool next[ROUTE_MAX_NODE + 1]);
/* ADMIT: what the sender's login admission looks like now (engine/release_pace.c reads it
 * to pace a planned move towards the sender).  capacity: logins/s it can take (0 unknown);
 * inflight: logins admitted and not bound yet; logins, refused: totals since its start. */
struct route_admit {
	uint64_t capacity, inflight, logins, refused;
};
int route_admit_parse(const char *p, size_t len, struct route_admit *out);
int route_admit_format(char *buf, size_t size, const struct route_admit *a);
int route_seq_split(const char *p, size_t len, uint64_t *seq, const char **rest,
		    size_t *rest_len);
int route_list_split(const char *p, size_t len, bool with_body, char *list, size_t size,
		     const char **body, size_t *body_len);

/* A STANZA or PRESENCE body: exactly one message, presence or iq, parsed with the client
 * stream's limits (route.c).  NULL if it is anything else. */
struct xml_node *route_stanza_parse(const char *s, size_t len);

/* ---- route_link.c ---- */
/* Open the listener and/or start dialing, from the config.  0 (also when no route link is
 * configured), -1 on a configuration error (logged). */
int route_link_start(void);
bool route_link_configured(void);
/* Connected, authenticated, HELLO exchanged. */
bool route_link_up(void);
/* Queue one frame: header + head (may be NULL) + body (may be NULL).  0, or -1 when the
 * link is not up or the frame is too big; a peer that stopped reading is disconnected. */
int route_link_send(enum route_frame_type type, const char *head, size_t head_len,
		    const char *body, size_t body_len);
/* Close the connection (the loss is handled as any other); reconnecting follows. */
void route_link_close(const char *why);
int route_link_peer_node(void); /* from HELLO, 0 if not up */
/* Bytes given to the link since start, and whether the link has written them to the kernel
 * (or dropped the connection that held them: the unacknowledged stanzas among them are in
 * route.c's retry list).  conn.c holds a client's replies until what its stanzas put on
 * the link is written: a confirmation then survives a kill -9 of this engine. */
uint64_t route_link_queued_mark(void);
bool route_link_written(uint64_t mark);
uint64_t route_link_unwritten(void); /* bytes given to the link and not yet written */

/* ---- route.c: the ACK of a received STANZA waits for its database work (conn_hold) ---- */
uint64_t route_rx_current(void); /* the seq being delivered now, 0 outside on_stanza */
void route_rx_wait(uint64_t seq);
void route_rx_done(uint64_t seq);
uint64_t route_link_peer_instance(void); /* from HELLO, 0 if not up */

/* ---- route.c: called by route_link.c ---- */
/* This process's instance id (random, nonzero): the peer keys its duplicate filter on it. */
uint64_t route_instance(void);
void route_on_up(void);
void route_on_down(void);
/* A frame after HELLO.  -1 = malformed: the caller closes the link. */
int route_on_frame(enum route_frame_type type, const char *payload, size_t len);
void route_on_batch_end(void); /* after the frames of one read: send the ACK */

/* ---- route_admit.c: ADMIT frames, sent while the link is up ---- */
void route_admit_start(void);
void route_admit_stop(void);
int route_admit_received(const char *payload, size_t len); /* -1: malformed */

/* ---- route.c: the hooks of the rest of the engine ---- */
/* router.c: a stanza for a local-domain JID that the user's home node decides.  true:
 * route.c took it (forwarded, stored, bounced, or will deliver it once the user is
 * loaded); false: deliver locally as a single node would. */
bool route_intercept(const struct jid *to, struct xml_node *st);
/* presence.c: the inbound half of a subscription exchange for cu belongs to the peer?
 * Then p is forwarded (a copy: the caller keeps p) and true is returned. */
bool route_subscription_remote(const struct user *cu, const struct xml_node *p);
/* presence.c: might this contact (a bare JID of our domain) be served by the peer now?
 * True when the link is up and the contact is not a user loaded and served here. */
bool route_contact_remote(const char *bare);
/* Send presence p (with 'from') to the available resources of these users on the peer. */
void route_send_presence(const struct xml_node *p, const char *const *bares, size_t n);
/* Ask the peer for the presences of these users, to be sent to prober (bare or full). */
void route_send_probe(const char *prober, const char *const *bares, size_t n);
/* presence.c: u has no available resource left: forget the remote presences it saw. */
void route_forget_user(const char *bare);
/* control.c (kick: account changed, perhaps its home node): forget its cached home node. */
void route_home_forget(const char *local);
/* control.c/main.c: the set of home nodes we serve changed (announce it to the peer). */
void route_serve_changed(void);
/* For stats: "route_up=0|1 route_peer_serves=..". */
void route_stats(char *buf, size_t len);

#endif
