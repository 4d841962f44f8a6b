/* The `tcp` peer transport: srmd to srmd over TCP + mutually authenticated TLS, carrying
 * HELLO, HEARTBEAT, GOODBYE and APP frames (heartbeat/frame.h), with failure detection
 * (heartbeat/detector.h).  Protocol, connection rule and timing: docs/peer-protocol.md.
 *
 * Both nodes listen and connect.  When two authenticated connections exist, the one opened by
 * the node with the lower node id is kept (both sides apply the same rule, so they agree); the
 * higher-id node only dials while it has no connection at all.
 *
 * The process must ignore SIGPIPE (srmd does): TLS writes to a socket the peer has closed
 * would otherwise kill it.
 *
 * All callbacks run on the event loop.  They may call peer_link_send_app(),
 * peer_link_set_local_state() and peer_link_goodbye(), but never peer_link_free(). */
#ifndef DUET_PEER_LINK_H
#define DUET_PEER_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "heartbeat/frame.h"

struct event_base;
struct duet_config;
struct peer_link;

struct peer_link_config {
	uint32_t node_id;          /* ours, non-zero; the peer's must differ */
	const char *listen;        /* "host:port" or "[v6]:port"; NULL or "" = do not listen */
	const char *peer_address;  /* "host:port" to dial; NULL or "" = do not dial */
	const char *peer_name;     /* the name the peer's certificate must carry (SAN or CN) */
	const char *tls_ca;        /* PEM: the group CA, the only trust anchor */
	const char *tls_cert;      /* PEM: our certificate (chain) */
	const char *tls_key;       /* PEM: its key */
	uint32_t heartbeat_interval_ms; /* Heart Beat Interval */
	uint32_t dead_timeout_ms;       /* silence that means the peer is down */
	uint32_t connect_timeout_ms;    /* Connect Timeout: bound of one attempt and of backoff */
	uint8_t boot_id[FRAME_BOOT_ID_SIZE]; /* all zero: a random one is generated */
};

enum peer_down_reason {
	PEER_DOWN_TIMEOUT = 1,   /* no frame for dead_timeout_ms: Peer Down */
	PEER_DOWN_GOODBYE,       /* it said goodbye (see goodbye_reason): Peer Reboot */
	PEER_DOWN_PROTOCOL,      /* it sent something invalid on the established connection */
	PEER_DOWN_RESTARTED,     /* it came back with a new boot id without a goodbye
				    (crashed and restarted faster than the dead timeout) */
	PEER_DOWN_MEMBERSHIP,    /* corosync transport: the peer left the CPG group without a
				    goodbye, or we lost our own connection to corosync */
};

struct peer_link_callbacks {
	/* The peer is reachable (first time, or again).  hello->boot_id == boot_id. */
	void (*on_up)(void *arg, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
		      const struct frame_hello *hello);
	/* The peer is gone.  goodbye_reason is enum goodbye_reason for PEER_DOWN_GOODBYE, else 0.
	 * PEER_DOWN_RESTARTED is followed at once by on_up with the new boot id. */
	void (*on_down)(void *arg, enum peer_down_reason reason, int goodbye_reason);
	/* Every heartbeat, in order. */
	void (*on_heartbeat)(void *arg, const struct hb_state *st);
	/* An APP frame; payload is valid only during the call. */
	void (*on_app)(void *arg, uint16_t subtype, const uint8_t *payload, size_t len);
	/* Optional.  The connection was replaced while the peer stayed up (same boot id): APP
	 * frames sent just before may have been lost, so resend anything still unacknowledged. */
	void (*on_reconnect)(void *arg);
	/* Optional.  peer_link_goodbye() has finished: the goodbye was flushed (or could not be,
	 * within connect_timeout_ms) and every connection is closed. */
	void (*on_closed)(void *arg);
};

/* Round-trip times from heartbeat echoes, and counters, for /metrics. */
struct peer_link_stats {
	int up;                  /* detector says the peer is up */
	int connected;           /* an authenticated connection exists */
	int session_outgoing;    /* ... and we opened it */
	uint64_t rtt_samples;
	uint32_t rtt_last_us, rtt_min_us, rtt_max_us;
	uint32_t rtt_srtt_us;    /* smoothed, RFC 6298 style (alpha 1/8) */
	uint32_t rtt_rttvar_us;
	uint64_t frames_rx, frames_tx, bytes_rx, bytes_tx;
	uint64_t heartbeats_rx, heartbeats_tx;
	uint64_t heartbeat_gaps;  /* heartbeats missing from the peer's sequence */
	uint64_t app_rx, app_tx;
	uint64_t connects_ok, connects_failed; /* outgoing attempts */
	uint64_t accepts;
	uint64_t tls_failures;    /* handshake or certificate check failed */
	uint64_t protocol_errors;
	uint64_t sessions;        /* authenticated connections adopted */
	uint64_t ups, downs;
	uint64_t last_rx_age_ms;  /* since the last frame from the peer (0 if never) */
};

/* Fill a link configuration from the node config ([node] id, [peer] ...).  The strings
 * point into cfg, which must outlive the link. */
void peer_link_config_from(struct peer_link_config *out, const struct duet_config *cfg);

/* Start listening and dialing.  NULL on error (logged): bad config, unreadable TLS files,
 * address that does not parse or resolve, port in use. */
struct peer_link *peer_link_new(struct event_base *base, const struct peer_link_config *cfg,
				const struct peer_link_callbacks *cbs, void *arg);
/* Closes every connection without a goodbye (the peer will report a timeout). */
void peer_link_free(struct peer_link *link);

/* What our heartbeats carry from now on.  A change of state, reason or services is sent at
 * once; counts and positions ride on the next periodic heartbeat. */
void peer_link_set_local_state(struct peer_link *link, const struct hb_state *st);
/* Queue an APP frame on the current connection.  0, or -1 if there is no authenticated
 * connection, the payload is too big (> FRAME_MAX_PAYLOAD - 2), subtype is 0, or the peer is
 * not reading (more than PEER_LINK_MAX_QUEUE bytes queued).  Delivery is in order and at
 * most once: frames queued when a connection breaks are lost (see on_reconnect). */
int peer_link_send_app(struct peer_link *link, uint16_t subtype, const void *payload, size_t len);
#define PEER_LINK_MAX_QUEUE (8u << 20)
/* Say goodbye (enum goodbye_reason), flush it, close everything and stop dialing and
 * listening; on_closed follows (never from inside this call).  Afterwards only
 * peer_link_free() and the read-only calls are useful. */
void peer_link_goodbye(struct peer_link *link, int goodbye_reason);

void peer_link_stats_get(const struct peer_link *link, struct peer_link_stats *out);
const uint8_t *peer_link_boot_id(const struct peer_link *link);
/* The port we listen on (useful with port 0), or 0 if not listening. */
int peer_link_listen_port(const struct peer_link *link);
const char *peer_down_reason_name(enum peer_down_reason reason);

#endif
