/* Replication between the two nodes (docs/replication-protocol.md).
 *
 * The SQL side lives in lib/schema.c (migration 2): capture triggers write every change of an
 * opted-in table into repl_outbox in the writing transaction; repl_apply() applies a batch in
 * one transaction in replica mode.  This library is the C side, used by srmd:
 *
 *   repl_wire.c    encode/decode of the APP frames (subtypes 256-260), pure code
 *   repl_outbox.c  async reads of the outbox and of the replication state, trimming, lag
 *   repl_apply.c   applying a decoded batch / snapshot chunk (one transaction each)
 *   repl_resync.c  full resync: snapshot producer
 *   repl_digest.c  per-table digest of the replicated data (srmctl digest)
 *   repl.c         the session: handshake, shipping window, acks, resend, receive queue
 *
 * Wiring in srmd (one struct repl per node, the peer is cfg.peer_id):
 *   peer_link on_up, on_reconnect  -> repl_peer_up()
 *   peer_link on_down              -> repl_peer_down()
 *   peer_link on_app, subtype 256-511 -> repl_on_app() (a -1 return is already logged)
 *   peer_link on_heartbeat         -> repl_on_peer_positions(hb->repl_pos)
 *   before each heartbeat          -> repl_positions() into hb_state.repl_pos
 *   repl send callback             -> peer_link_send_app()
 *   srmctl status / metrics        -> repl_status_get(), repl_lag_query()
 *   srmctl digest                  -> repl_digest_query()
 *   Taking Back / Falling Back / start-up gate -> repl_caught_up()
 * Everything runs on the event loop; nothing blocks except repl_node_set() (start-up). */
#ifndef DUET_REPLICATION_H
#define DUET_REPLICATION_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pg_pool;
struct repl_q; /* a query in progress: see repl_q_cancel() */

/* ---- wire format (repl_wire.c) ---- */

#define REPL_SUBTYPE_HELLO 256
#define REPL_SUBTYPE_BATCH 257
#define REPL_SUBTYPE_ACK 258
#define REPL_SUBTYPE_RESYNC_BEGIN 259
#define REPL_SUBTYPE_RESYNC_END 260
#define REPL_SUBTYPE_FIRST 256 /* the peer link's replication range */
#define REPL_SUBTYPE_LAST 511

#define REPL_VERSION_MIN 1
#define REPL_VERSION_MAX 1

#define REPL_FRAME_MAX ((1u << 20) - 2) /* one APP payload: FRAME_MAX_PAYLOAD - subtype */
#define REPL_HELLO_SIZE 48
#define REPL_ACK_SIZE 24
#define REPL_MARK_SIZE 40
#define REPL_BATCH_HEADER_SIZE 48
#define REPL_CHANGE_FIXED_SIZE 42
#define REPL_MAX_CHANGES 10000
#define REPL_MAX_TBL 63
#define REPL_MAX_PK 4096
#define REPL_MAX_DATA (768u << 10)

#define REPL_BATCH_SNAPSHOT 0x01 /* BATCH flag: a full-resync chunk */
#define REPL_ACK_SNAPSHOT 0x01   /* ACK flag: value counts chunks */

enum repl_wire_result {
	REPL_WIRE_OK = 0,
	REPL_WIRE_SHORT = -1,    /* length not what the fields say */
	REPL_WIRE_VERSION = -2,  /* unsupported version byte */
	REPL_WIRE_FIELD = -3,    /* a field out of its range */
	REPL_WIRE_ORDER = -4,    /* ids not increasing / not matching the header */
	REPL_WIRE_NOMEM = -5,
	REPL_WIRE_SPACE = -6,    /* encode: does not fit */
};
const char *repl_wire_strerror(int err);

struct repl_hello {
	uint8_t version_min, version_max;
	uint32_t node_id;        /* != 0 */
	uint32_t schema_version;
	uint64_t epoch;          /* != 0: the sender's outbox */
	uint64_t head;           /* the sender's largest outbox id */
	uint64_t peer_epoch;     /* the receiver's outbox epoch the sender follows, 0 = none */
	uint64_t applied;        /* last id of that outbox applied durably */
};

struct repl_ack {
	uint8_t version, flags; /* REPL_ACK_SNAPSHOT */
	uint32_t node_id;        /* the acker */
	uint64_t epoch;          /* the acked outbox */
	uint64_t value;          /* applied position, or chunks applied */
};

/* RESYNC_BEGIN / RESYNC_END */
struct repl_mark {
	uint8_t version;
	uint32_t origin;
	uint64_t epoch;
	uint64_t position; /* outbox id the snapshot reaches */
	uint64_t rows;     /* END: rows sent; BEGIN: 0 */
	uint64_t seen_hlc; /* HLC of the receiver's last change the sender had applied before
			      reading the snapshot (the receiver keeps its newer own writes) */
};

/* One change.  The strings are not NUL-terminated; they point into the decoded batch's own
 * copy, or into the caller's memory when encoding. */
struct repl_change {
	uint64_t id, hlc, prev_hlc;
	uint32_t origin, prev_origin;
	char op; /* 'I', 'U', 'D' */
	const char *tbl, *pk, *data;
	size_t tbl_len, pk_len, data_len; /* data_len 0 for 'D' */
};

struct repl_batch {
	uint8_t version, flags;
	uint32_t count;
	uint32_t origin;
	uint64_t epoch;
	uint64_t after; /* incremental: position followed; snapshot: chunk number from 1 */
	uint64_t last;  /* incremental: last change id; snapshot: 0 */
	uint64_t head;
	struct repl_change *changes;
	uint8_t *copy; /* owned copy of the payload the changes point into */
	size_t size;   /* payload bytes */
};

int repl_hello_encode(const struct repl_hello *h, uint8_t out[REPL_HELLO_SIZE]);
int repl_hello_decode(const uint8_t *p, size_t len, struct repl_hello *h);
int repl_ack_encode(const struct repl_ack *a, uint8_t out[REPL_ACK_SIZE]);
int repl_ack_decode(const uint8_t *p, size_t len, struct repl_ack *a);
int repl_mark_encode(const struct repl_mark *m, uint8_t out[REPL_MARK_SIZE]);
int repl_mark_decode(const uint8_t *p, size_t len, struct repl_mark *m);
/* Validates everything (docs §3) and copies the payload: *out is freed with
 * repl_batch_free().  Returns REPL_WIRE_OK or an error (then *out is NULL). */
int repl_batch_decode(const uint8_t *p, size_t len, struct repl_batch **out);
void repl_batch_free(struct repl_batch *b);
/* A change passes the same checks as on decoding (flags: the batch's). */
int repl_change_check(const struct repl_change *c, uint8_t flags, uint32_t batch_origin);

/* Builds one BATCH payload in a buffer of REPL_FRAME_MAX bytes (max_bytes may lower it). */
struct repl_builder {
	uint8_t *buf;
	size_t len, max_bytes;
	uint32_t count;
	uint8_t flags;
	uint32_t origin;
	uint64_t after, last_id;
};
int repl_builder_init(struct repl_builder *b, uint8_t flags, uint32_t origin, uint64_t epoch,
		      uint64_t after, uint64_t head, size_t max_bytes);
/* REPL_WIRE_OK, REPL_WIRE_SPACE (does not fit: finish and start another batch), or a
 * validation error (the change can never be sent). */
int repl_builder_add(struct repl_builder *b, const struct repl_change *c);
/* Writes count and last; returns the payload length (0 if the batch is empty). */
size_t repl_builder_finish(struct repl_builder *b);
void repl_builder_release(struct repl_builder *b);

/* ---- node set-up (blocking; srmd at start-up, after schema_migrate) ---- */

/* Tell the database which node it belongs to (repl_node.node_id).  0 or -1 with err set. */
int repl_node_set(PGconn *conn, uint32_t node_id, char *err, size_t errlen);

/* ---- the replication session (repl.c) ---- */

/* Sends one APP frame on the peer link: peer_link_send_app(). 0 or -1 (not sent). */
typedef int (*repl_send_fn)(void *arg, uint16_t subtype, const void *payload, size_t len);

struct repl_config {
	uint32_t node_id;        /* ours (1 or 2) */
	uint32_t peer_id;        /* the peer's */
	int poll_ms;             /* outbox poll when idle (default 5) */
	int batch_max_changes;   /* default 2000 */
	size_t batch_max_bytes;  /* default 512 KiB, at most REPL_FRAME_MAX */
	int window_batches;      /* unacknowledged batches (default 8) */
	size_t window_bytes;     /* unacknowledged bytes (default 4 MiB) */
	int64_t max_keep;        /* outbox rows kept regardless of acks (default 5,000,000) */
	int retry_ms;            /* after a database error (default 1000) */
};
void repl_config_defaults(struct repl_config *cfg);

enum repl_phase {
	REPL_OFF = 0,     /* no peer session */
	REPL_HANDSHAKE,   /* HELLO sent or being prepared, peer's not yet acted on */
	REPL_INCREMENTAL, /* shipping outbox batches */
	REPL_RESYNC,      /* shipping a full snapshot */
	REPL_STOPPED,     /* refused: version, schema or node id mismatch (logged) */
};

struct repl_status {
	enum repl_phase ship;   /* our outbox -> peer */
	int receiving_resync;   /* the peer is sending us a snapshot */
	int peer_hello;         /* the peer's HELLO of this session arrived */
	uint64_t epoch;         /* our outbox */
	uint64_t head;          /* our largest known outbox id */
	uint64_t sent, acked;   /* shipped, and acknowledged by the peer */
	uint64_t peer_epoch;    /* the peer's outbox we follow */
	uint64_t peer_head;     /* the peer's largest outbox id we know of */
	uint64_t applied;       /* our position in the peer's outbox (durable) */
	uint64_t lag_out;       /* head - acked */
	uint64_t lag_in;        /* peer_head - applied */
	int64_t lag_in_ms;      /* age of the oldest change we know of and have not applied */
	uint64_t batches_sent, changes_sent, batches_applied, changes_applied;
	uint64_t conflicts, resyncs_sent, resyncs_received, restarts, apply_errors;
};

struct repl *repl_new(struct event_base *base, struct pg_pool *pool,
		      const struct repl_config *cfg, repl_send_fn send, void *send_arg);
void repl_free(struct repl *r);
/* The peer link has a session (on_up), or replaced it (on_reconnect): send HELLO. */
void repl_peer_up(struct repl *r);
/* The peer is gone: stop shipping; an apply in progress completes. */
void repl_peer_down(struct repl *r);
/* An APP frame in 256..511.  0, or -1 if it was invalid (logged, dropped, HELLO re-sent). */
int repl_on_app(struct repl *r, uint16_t subtype, const uint8_t *payload, size_t len);
/* Heartbeat repl_pos: [0] head, [1] applied (of the peer's outbox), [2] acked, [3] epoch. */
void repl_positions(const struct repl *r, uint64_t pos[4]);
void repl_on_peer_positions(struct repl *r, const uint64_t pos[4]);
void repl_status_get(const struct repl *r, struct repl_status *st);
/* 1 when we follow the peer incrementally (no resync) and applied >= target.  target 0 means
 * "the peer's head as last announced". */
int repl_caught_up(const struct repl *r, uint64_t target);

/* ---- async queries usable without a session ---- */

struct repl_lag {
	uint64_t head, acked, entries;
	int64_t oldest_ms; /* age of the oldest unacknowledged change, 0 if none */
};
typedef void (*repl_lag_cb)(void *arg, const struct repl_lag *lag, const char *errmsg);
/* Shipper-side lag towards peer_id, from the database (lag NULL on error).  Returns NULL if
 * the query could not be queued (cb is then not called). */
struct repl_q *repl_lag_query(struct pg_pool *pool, uint32_t peer_id, repl_lag_cb cb, void *arg);
/* The callback of q will not be called; q is freed.  Only before its callback ran. */
void repl_q_cancel(struct repl_q *q);

#define REPL_DIGEST_MAX_TABLES 64
struct repl_digest_entry {
	char tbl[REPL_MAX_TBL + 1];
	uint64_t rows;
	char hex[33];
};
typedef void (*repl_digest_cb)(void *arg, const struct repl_digest_entry *e, int n,
			       const char *errmsg);
/* n < 0 on error (errmsg says why). */
struct repl_q *repl_digest_query(struct pg_pool *pool, repl_digest_cb cb, void *arg);
/* "table rows hex\n" lines, or a JSON object {"tables":[{"table":..,"rows":..,"digest":..}],
 * "digest":..} where the top digest is an md5 over every table's line.  Returns the length
 * snprintf would have written. */
int repl_digest_format(char *out, size_t cap, const struct repl_digest_entry *e, int n,
		       int json);

#endif
