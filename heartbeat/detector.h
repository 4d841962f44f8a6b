/* Failure detection for the peer link, as pure code: the caller feeds what it received and the
 * time (any monotonic clock in milliseconds), and gets events back.  No I/O, no clock reads,
 * so tests drive it with a fake clock.
 *
 * Rules (docs/peer-protocol.md, "Timing"):
 *  - any valid frame is liveness, not only heartbeats;
 *  - the peer is down only after dead_timeout_ms of complete silence (never on one lost
 *    heartbeat or one broken connection), so a lossy link does not flap;
 *  - GOODBYE is a planned stop and reported as such, at once;
 *  - a HELLO with a different boot id while up means the peer restarted in between. */
#ifndef DUET_DETECTOR_H
#define DUET_DETECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "heartbeat/frame.h"

/* Our defaults: sub-second detection.  The manual's Heart Beat Interval is 60 s. */
#define DETECTOR_DEFAULT_INTERVAL_MS 100
#define DETECTOR_DEFAULT_DEAD_TIMEOUT_MS 1000
/* The dead timeout must cover at least this many heartbeat intervals. */
#define DETECTOR_MIN_INTERVALS 2

enum detector_event {
	DET_NONE = 0,
	DET_PEER_UP,        /* first contact, or contact again after down/goodbye */
	DET_PEER_DOWN,      /* dead_timeout_ms without any frame */
	DET_PEER_GOODBYE,   /* the peer said goodbye */
	DET_PEER_RESTARTED, /* new boot id while up: it went away and came back unannounced */
};

enum detector_state {
	DET_S_UNKNOWN, /* never heard of the peer */
	DET_S_UP,
	DET_S_DOWN, /* timed out; frames on a connection that survived bring it back */
	DET_S_GONE, /* said goodbye; only a new HELLO brings it back */
};

struct detector_config {
	uint32_t interval_ms;
	uint32_t dead_timeout_ms;
};

struct detector {
	struct detector_config cfg;
	enum detector_state state;
	uint64_t last_rx_ms;  /* last frame from the peer */
	uint64_t last_tx_ms;  /* last heartbeat we sent */
	bool have_boot;
	uint8_t boot_id[FRAME_BOOT_ID_SIZE];
};

/* 0, or -1 if the configuration is unusable (zero values, timeout < 2 intervals). */
int detector_config_check(const struct detector_config *cfg);
void detector_init(struct detector *d, const struct detector_config *cfg, uint64_t now_ms);

/* A HELLO arrived (a new connection is up).  DET_PEER_UP, DET_PEER_RESTARTED or DET_NONE. */
enum detector_event detector_on_hello(struct detector *d, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
				      uint64_t now_ms);
/* Any other valid frame on a connection whose HELLO was seen.  DET_PEER_UP when it ends a
 * timeout (the connection stalled, then recovered), else DET_NONE. */
enum detector_event detector_on_frame(struct detector *d, uint64_t now_ms);
/* A GOODBYE: DET_PEER_GOODBYE unless already gone. */
enum detector_event detector_on_goodbye(struct detector *d, uint64_t now_ms);
/* The connection broke on a protocol error: treated as down now (the link cannot be used). */
enum detector_event detector_on_protocol_error(struct detector *d, uint64_t now_ms);
/* Time passed: DET_PEER_DOWN once the silence reaches dead_timeout_ms. */
enum detector_event detector_tick(struct detector *d, uint64_t now_ms);

/* Heartbeats: due when interval_ms has passed since the last one we sent. */
bool detector_heartbeat_due(const struct detector *d, uint64_t now_ms);
void detector_heartbeat_sent(struct detector *d, uint64_t now_ms);
/* Milliseconds from now until the next detector_tick() can change anything (0 = now);
 * UINT64_MAX when nothing is pending (peer not up). */
uint64_t detector_next_deadline(const struct detector *d, uint64_t now_ms);

bool detector_is_up(const struct detector *d);
const char *detector_event_name(enum detector_event ev);

#endif
