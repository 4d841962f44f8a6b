/* The peer link's wire format (docs/peer-protocol.md): a fixed 12-byte header
 *   magic u32 "DUPL" | version u8 | type u8 | flags u16 (0) | length u32 (payload bytes)
 * then the payload.  Integers are big-endian.  Decoding is pure and checks every field against
 * the buffer it is given: it never reads past len, and anything malformed is an error. */
#ifndef DUET_FRAME_H
#define DUET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC 0x4455504cu /* "DUPL" */
#define FRAME_HEADER_SIZE 12
#define FRAME_MAX_PAYLOAD (1u << 20) /* 1 MiB, header excluded */
/* Protocol versions this code speaks; HELLO negotiates the highest common one. */
#define FRAME_VERSION_MIN 1
#define FRAME_VERSION_MAX 1

#define FRAME_BOOT_ID_SIZE 16
#define HB_REPL_POS_COUNT 4 /* opaque replication positions in each heartbeat */

#define FRAME_HELLO_SIZE 32
#define FRAME_HEARTBEAT_SIZE 76
#define FRAME_GOODBYE_SIZE 1
#define FRAME_APP_MIN_SIZE 2

enum frame_type {
	FRAME_HELLO = 1,
	FRAME_HEARTBEAT = 2,
	FRAME_GOODBYE = 3,
	FRAME_APP = 4,
};

enum goodbye_reason {
	GOODBYE_SHUTDOWN = 1, /* the node stops and is not expected back soon */
	GOODBYE_RESTART = 2,  /* the node restarts (srmd restart, reboot) */
};

/* Results.  FRAME_OK and FRAME_NEED_MORE are not errors; everything below 0 is. */
enum frame_result {
	FRAME_OK = 0,
	FRAME_NEED_MORE = 1,
	FRAME_ERR_MAGIC = -1,
	FRAME_ERR_VERSION = -2,
	FRAME_ERR_TYPE = -3,
	FRAME_ERR_FLAGS = -4,
	FRAME_ERR_LENGTH = -5, /* over FRAME_MAX_PAYLOAD or wrong for the type */
	FRAME_ERR_FIELD = -6,  /* a field out of its range */
	FRAME_ERR_SPACE = -7,  /* encode: output buffer too small */
};

struct frame_header {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t length;
};

struct frame_hello {
	uint16_t version_min, version_max; /* protocol versions the sender speaks */
	uint32_t node_id;                  /* non-zero */
	uint8_t boot_id[FRAME_BOOT_ID_SIZE]; /* random per srmd start, never all zero */
	uint32_t heartbeat_interval_ms;    /* sender's settings, for mismatch warnings */
	uint32_t dead_timeout_ms;
};

/* What a heartbeat says about its sender.  state, reason and the service bits belong to
 * the HA state machine (ha/), the positions to replication (replication/): opaque here. */
struct hb_state {
	uint16_t state;
	uint16_t reason;
	uint32_t services; /* critical-service status bits */
	uint32_t users_home;   /* users whose home node is the sender */
	uint32_t users_served; /* users the sender serves now */
	uint64_t repl_pos[HB_REPL_POS_COUNT];
};

struct frame_heartbeat {
	uint64_t seq;          /* per sender boot, starts at 1, increases by 1 per heartbeat */
	uint64_t send_time_us; /* sender's monotonic clock, non-zero */
	uint64_t echo_time_us; /* send_time_us of the last heartbeat received from the peer, 0 if none */
	uint32_t echo_hold_us; /* how long ago that one was received */
	struct hb_state st;
};

struct frame_goodbye {
	uint8_t reason; /* enum goodbye_reason */
};

struct frame_app {
	uint16_t subtype;       /* non-zero; meaning owned by the user of the link */
	const uint8_t *payload; /* points into the decoded buffer */
	size_t len;
};

struct frame {
	struct frame_header h;
	union {
		struct frame_hello hello;
		struct frame_heartbeat hb;
		struct frame_goodbye bye;
		struct frame_app app;
	} u;
};

/* Header only: FRAME_NEED_MORE if len < FRAME_HEADER_SIZE, else FRAME_OK or an error. */
int frame_header_decode(const uint8_t *buf, size_t len, struct frame_header *h);
/* A whole frame at the start of buf.  FRAME_OK with *consumed set, FRAME_NEED_MORE if the
 * frame is not complete yet (nothing consumed), or an error (the stream is unusable). */
int frame_decode(const uint8_t *buf, size_t len, struct frame *f, size_t *consumed);

/* Encoded size of f (header included), or 0 if f cannot be encoded. */
size_t frame_encoded_size(const struct frame *f);
/* Encode f (f->h.type selects the member; f->h.version, flags and length are set here) into
 * buf.  Returns the number of bytes written or a negative frame_result.  The same checks as
 * decoding apply, so we never send what the peer must reject. */
long frame_encode(const struct frame *f, uint8_t version, uint8_t *buf, size_t cap);
/* Header of an APP frame whose payload (payload_len bytes) the caller sends itself. */
int frame_app_header_encode(uint8_t version, uint16_t subtype, size_t payload_len,
			    uint8_t out[FRAME_HEADER_SIZE + 2]);

const char *frame_strerror(int result);
const char *frame_type_name(int type);
const char *goodbye_reason_name(int reason);

#endif
