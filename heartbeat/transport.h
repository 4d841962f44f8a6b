/* The peer transport as srmd's pair (ha/pair.c) uses it, whichever is configured with
 * [peer] transport (docs/peer-protocol.md):
 *
 *   tcp       heartbeat/peer_link.c: one TLS connection carries everything and its own
 *             heartbeats are the failure detector (transport_tcp.c adapts it);
 *   corosync  heartbeat/cpg_transport.c: corosync's membership (libcpg) is the failure
 *             detector and carries the HA frames; replication keeps its own TLS connection
 *             (the tcp peer link, used as a data path only).
 *
 * One set of callbacks for both.  "Up/down" is the peer as the state machine must see it;
 * "data up/down" is the path replication frames (APP subtypes 256-511) travel on.  With tcp
 * the two are the same connection and the data callbacks come first.  Callbacks run on the
 * event loop and may call every function here except peer_transport_free(). */
#ifndef DUET_TRANSPORT_H
#define DUET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heartbeat/frame.h"
#include "heartbeat/peer_link.h"

struct event_base;
struct duet_config;
struct peer_transport;

struct peer_transport_callbacks {
	/* The peer is up (first time, or again); the state machine's Peer Up. */
	void (*on_up)(void *arg, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
		      const struct frame_hello *hello);
	/* The peer is gone: Peer Down, or Peer Reboot for PEER_DOWN_GOODBYE. */
	void (*on_down)(void *arg, enum peer_down_reason reason, int goodbye_reason);
	/* Optional.  The peer stayed up but frames sent just before may have been lost: resend
	 * what is not acknowledged. */
	void (*on_reconnect)(void *arg);
	/* The peer's heartbeat summary (HA state, counts, replication positions), in order. */
	void (*on_heartbeat)(void *arg, const struct hb_state *st);
	/* An APP frame, from whichever path it travelled; payload valid only during the call. */
	void (*on_app)(void *arg, uint16_t subtype, const uint8_t *payload, size_t len);
	/* The replication path is (again) connected to the peer's srmd / is lost. */
	void (*on_data_up)(void *arg);
	void (*on_data_down)(void *arg);
	/* Optional.  peer_transport_goodbye() has finished. */
	void (*on_closed)(void *arg);
	/* Optional.  corosync with [peer] require_quorum: quorum is required and this node
	 * lost it (lost), or has it again.  A loss is reported before the Peer Down of the same
	 * membership change, a regained quorum after the Peer Up of a peer whose host is back
	 * (docs/peer-protocol.md §8). */
	void (*on_quorum)(void *arg, bool lost);
};

/* What each transport implements (transport_tcp.c, cpg_transport.c). */
struct peer_transport_ops {
	const char *name;
	void (*free)(void *impl);
	void (*set_local_state)(void *impl, const struct hb_state *st);
	int (*send_app)(void *impl, uint16_t subtype, const void *payload, size_t len);
	void (*goodbye)(void *impl, int goodbye_reason);
	void (*stats_get)(const void *impl, struct peer_link_stats *out);
};

/* The transport [peer] transport names, built from the node config (which must outlive it).
 * NULL on error (logged). */
struct peer_transport *peer_transport_new(struct event_base *base, const struct duet_config *cfg,
					  const struct peer_transport_callbacks *cbs, void *arg);
void peer_transport_free(struct peer_transport *t);

/* What our heartbeats carry; a change of state, reason or services is sent at once. */
void peer_transport_set_local_state(struct peer_transport *t, const struct hb_state *st);
/* An APP frame to the peer: 0, or -1 when it cannot be queued now (no peer, too big, the
 * peer does not read).  In order and at most once per path (see on_reconnect). */
int peer_transport_send_app(struct peer_transport *t, uint16_t subtype, const void *payload,
			    size_t len);
/* Say goodbye (enum goodbye_reason) on every path and close; on_closed follows. */
void peer_transport_goodbye(struct peer_transport *t, int goodbye_reason);
void peer_transport_stats_get(const struct peer_transport *t, struct peer_link_stats *out);
const char *peer_transport_name(const struct peer_transport *t);

/* For the implementations: wrap impl with its ops. */
struct peer_transport *peer_transport_wrap(const struct peer_transport_ops *ops, void *impl);

/* The APP subtypes replication owns (docs/peer-protocol.md §2): they travel on the data
 * path. */
static inline int peer_transport_is_data(uint16_t subtype)
{
	return subtype >= 256 && subtype <= 511;
}

/* Implementations, used by peer_transport_new(). */
struct peer_transport *transport_tcp_new(struct event_base *base, const struct duet_config *cfg,
					 const struct peer_transport_callbacks *cbs, void *arg);

#endif
