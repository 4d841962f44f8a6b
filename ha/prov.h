/* User provisioning on a pair: srmctl's user add/del/passwd/assign change this node's
 * database, then are forwarded to the peer as an HA_APP_PROV_REQ frame; the peer applies them
 * idempotently to its own database and answers HA_APP_PROV_RESP, so the command answers once
 * both nodes have the change and the peer's engine ends affected sessions.  The users table
 * also replicates; the two writes converge by last-writer-wins (docs/replication-protocol.md
 * §9 "Provisioning").  docs/srmctl-protocol.md "On a pair". */
#ifndef DUET_PROV_H
#define DUET_PROV_H

#include <stddef.h>
#include <stdint.h>

#include "ha/ha_wire.h"

struct srm;
struct prov;
struct prov_call;

#define PROV_TIMEOUT_MS 10000

/* status is the peer's answer, or HA_PROV_DATABASE with msg "..." when it did not answer
 * (timeout, link lost).  The handle is invalid once this runs. */
typedef void (*prov_done_fn)(void *arg, enum ha_prov_status status, const char *msg);

struct prov *prov_new(struct srm *srm);
/* Pending calls are dropped without their callbacks (cancel them first). */
void prov_free(struct prov *pv);

/* Send req (its id is assigned here) to the peer.  NULL if it cannot be sent (no session,
 * encoding) with why set; done is then never called. */
struct prov_call *prov_forward(struct prov *pv, struct ha_prov_req *req, prov_done_fn done,
			       void *arg, char *why, size_t whylen);
void prov_call_cancel(struct prov_call *call);

/* Incoming frames from the peer link. */
void prov_on_request(struct prov *pv, const uint8_t *payload, size_t len);
void prov_on_response(struct prov *pv, const uint8_t *payload, size_t len);

#endif
