/* What srmd's HA layer puts into the peer link's APP frames (subtypes 1-255, see
 * docs/peer-protocol.md §2 and docs/state-machine.md "Wiring"): the node's HA view (the state
 * machine's heartbeat, ordered with the transition messages on one connection), the
 * transition messages, and the forwarding of user provisioning to the peer.  Pure code: every
 * decoder checks the exact length and each field's range, so a hostile peer gets an error,
 * never a crash or an out-of-range enum. */
#ifndef DUET_HA_WIRE_H
#define DUET_HA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ha/ha_fsm.h"

enum ha_app_subtype {
	HA_APP_STATE = 1,    /* struct ha_wire_state */
	HA_APP_MSG = 2,      /* struct ha_msg */
	HA_APP_PROV_REQ = 3, /* struct ha_prov_req */
	HA_APP_PROV_RESP = 4 /* struct ha_prov_resp */
	/* 5: HA_APP_PROFILE, the re-login limits (ha/ctl_profile.h) */
};

#define HA_WIRE_VERSION 1
#define HA_WIRE_STATE_SIZE 40
#define HA_WIRE_MSG_SIZE 12

/* The state machine's view plus what `srmctl status` shows about the peer. */
struct ha_wire_state {
	struct ha_peer_info info;
	uint64_t since_unix;      /* wall clock of the last state or reason change */
	uint8_t engine_up;        /* the engine runs and is healthy */
	uint8_t db_up;            /* the database answers */
	uint32_t sessions[2];     /* sessions it serves of home node 1 and 2 (UINT32_MAX unknown) */
	uint32_t accounts[3];     /* accounts in its database: unassigned, home 1, home 2 */
};

int ha_wire_state_encode(const struct ha_wire_state *s, uint8_t *buf, size_t cap);
int ha_wire_state_decode(const uint8_t *buf, size_t len, struct ha_wire_state *s);
int ha_wire_msg_encode(const struct ha_msg *m, uint8_t *buf, size_t cap);
int ha_wire_msg_decode(const uint8_t *buf, size_t len, struct ha_msg *m);

/* User provisioning forwarded to the peer (docs/srmctl-protocol.md "On a pair"). */
enum ha_prov_op {
	HA_PROV_UPSERT = 1, /* the whole account: create it or overwrite credentials and home */
	HA_PROV_DELETE = 2,
	HA_PROV_ASSIGN = 3, /* home node only */
};
enum ha_prov_status {
	HA_PROV_OK = 0,
	HA_PROV_NOT_FOUND = 1,
	HA_PROV_DATABASE = 2,
	HA_PROV_BAD_REQUEST = 3,
};

#define HA_PROV_USER_MAX 1023
#define HA_PROV_HEX_MAX (2 + 2 * 64) /* "\x" + hex of at most 64 bytes (salt or key) */
#define HA_PROV_MSG_MAX 400

/* Credentials as bytea hex literals ("\x..."), iterations as decimal text: what the SQL
 * takes, checked again by the receiver. */
struct ha_prov_creds {
	char salt[HA_PROV_HEX_MAX + 1];
	char iter[12];
	char stored[HA_PROV_HEX_MAX + 1];
	char server[HA_PROV_HEX_MAX + 1];
};

struct ha_prov_req {
	uint32_t id;
	enum ha_prov_op op;
	uint8_t home;  /* 0 (unassigned), 1 or 2: UPSERT and ASSIGN */
	char user[HA_PROV_USER_MAX + 1]; /* normalized localpart */
	struct ha_prov_creds sha1, sha256; /* UPSERT only */
};

struct ha_prov_resp {
	uint32_t id;
	enum ha_prov_status status;
	char msg[HA_PROV_MSG_MAX + 1];
};

/* Bytes written, or -1 (buffer too small, a field out of range). */
int ha_prov_req_encode(const struct ha_prov_req *r, uint8_t *buf, size_t cap);
int ha_prov_req_decode(const uint8_t *buf, size_t len, struct ha_prov_req *r);
int ha_prov_resp_encode(const struct ha_prov_resp *r, uint8_t *buf, size_t cap);
int ha_prov_resp_decode(const uint8_t *buf, size_t len, struct ha_prov_resp *r);
#define HA_PROV_REQ_MAX (8 + 2 + HA_PROV_USER_MAX + 2 * 4 * (1 + HA_PROV_HEX_MAX))
#define HA_PROV_RESP_MAX (8 + HA_PROV_MSG_MAX)

/* A localpart as srmd stores it: 1..1023 bytes of UTF-8, no ASCII upper case, controls,
 * whitespace or "&'/:<>@.  Also used for the operator's input after lowercasing. */
int ha_localpart_valid(const char *s);

#endif
