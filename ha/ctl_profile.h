/* The Client Re-Login Lower/Upper Limits at runtime: `srmctl profile apply` and `srmctl
 * profile show` (docs/login-profiles.md), and keeping them identical on both nodes of a pair
 * (the manual requires it, inventory A.1.5).  On a pair each node announces its limits to the
 * peer whenever the peer link comes up (APP subtype HA_APP_PROFILE); `profile apply` sets
 * them here and on the peer and answers once both have them; a difference is logged and
 * shown by `profile show` as a mismatch.  The values live in memory: a restart returns to
 * the config file's [ha] relogin_lower_limit / relogin_upper_limit. */
#ifndef DUET_CTL_PROFILE_H
#define DUET_CTL_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "ha/ctl_server.h"

struct srm;
struct profile_sync;

/* APP frame subtype of the profile messages (next to ha_wire.h's 1-4). */
#define HA_APP_PROFILE 5
#define PROFILE_FRAME_SIZE 22
#define PROFILE_TIMEOUT_MS 10000
#define PROFILE_MAX_MS 86400000L /* a limit above one day is refused */

struct profile_frame {
	uint8_t kind; /* PROFILE_ANNOUNCE, _SET, _SET_OK, _SET_REFUSED */
	uint32_t id;  /* SET and its answer */
	uint64_t lower_ms, upper_ms;
};
enum { PROFILE_ANNOUNCE = 1, PROFILE_SET = 2, PROFILE_SET_OK = 3, PROFILE_SET_REFUSED = 4 };

/* Decode: -1 for a wrong length or kind (nothing to trust), -2 when the fields are read
 * but the limits are out of range (lower > upper, or above PROFILE_MAX_MS), 0 when fine. */
int profile_frame_encode(const struct profile_frame *f, uint8_t *buf, size_t cap);
int profile_frame_decode(const uint8_t *buf, size_t len, struct profile_frame *f);

/* Pair only (srm.c). */
struct profile_sync *profile_sync_new(struct srm *srm);
void profile_sync_free(struct profile_sync *ps);
/* The peer link came up (or reconnected): announce this node's limits. */
void profile_sync_peer_up(struct profile_sync *ps);
/* An HA_APP_PROFILE frame from the peer. */
void profile_sync_on_frame(struct profile_sync *ps, const uint8_t *payload, size_t len);

/* Set this node's limits now (srm->cfg and, on a pair, the state machine's window). */
void profile_apply_local(struct srm *srm, long lower_ms, long upper_ms);
/* `profile apply` after the limits are known: this node, then (unless --local) the peer;
 * answers c (ok, or the peer's failure). */
void profile_apply_values(struct ctl_conn *c, struct srm *srm, long lower_ms, long upper_ms);

/* ctl_profile_auto.c: `profile auto MODE USERS [calibrate]` (the limits derived from this
 * node's measured login capacity) and `profile apply-auto MODE USERS`. */
void cmd_profile_auto(struct ctl_conn *c, int argc, char **argv);
void cmd_profile_apply_auto(struct ctl_conn *c, int argc, char **argv);

/* For `srmctl status` (ctl_status.c): a "relogin:" line, with a profile mismatch warning
 * when the peer's limits differ; in JSON a ",\"relogin\":{...}" member. */
void profile_status_text(struct ctl_conn *c, struct srm *srm);
void profile_status_json(struct ctl_conn *c, struct srm *srm);

extern const struct ctl_command ctl_profile_commands[];

#endif
