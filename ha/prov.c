/* Provisioning forwarded between the two nodes of a pair (see prov.h).  The sender keeps a
 * list of calls waiting for the peer's answer, each with a timeout; the receiver applies a
 * request to its database idempotently (an upsert writes the whole account, a delete of a
 * missing account succeeds) so a repeated command converges, and ends the sessions its own
 * engine holds for a deleted account or changed credentials.  It applies it without capture
 * (schema migration 4): the originating node's captured change reaches it by replication. */
#include "ha/prov.h"

#include "ha/engine_child.h"
#include "ha/pair.h"
#include "ha/srm.h"
#include "lib/log.h"
#include "lib/pg.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

struct prov_call {
	TAILQ_ENTRY(prov_call) entry;
	struct prov *pv;
	uint32_t id;
	struct event *timeout;
	prov_done_fn done;
	void *arg;
};
TAILQ_HEAD(prov_call_list, prov_call);

struct prov_apply {
	TAILQ_ENTRY(prov_apply) entry;
	struct prov *pv;
	struct pg_req *req;
	struct ha_prov_req r;
};
TAILQ_HEAD(prov_apply_list, prov_apply);

struct prov {
	struct srm *srm;
	uint32_t next_id;
	struct prov_call_list calls;
	struct prov_apply_list applies;
};

struct prov *prov_new(struct srm *srm)
{
	struct prov *pv = calloc(1, sizeof *pv);
	if (!pv)
		return NULL;
	pv->srm = srm;
	pv->next_id = 1;
	TAILQ_INIT(&pv->calls);
	TAILQ_INIT(&pv->applies);
	return pv;
}

static void call_free(struct prov_call *call)
{
	TAILQ_REMOVE(&call->pv->calls, call, entry);
	event_free(call->timeout);
	free(call);
}

void prov_free(struct prov *pv)
{
	if (!pv)
		return;
	struct prov_call *call;
	while ((call = TAILQ_FIRST(&pv->calls)))
		call_free(call);
	struct prov_apply *ap;
	while ((ap = TAILQ_FIRST(&pv->applies))) {
		TAILQ_REMOVE(&pv->applies, ap, entry);
		pg_req_cancel(ap->req);
		free(ap);
	}
	free(pv);
}

/* ---- sending side ---- */

static void call_finish(struct prov_call *call, enum ha_prov_status st, const char *msg)
{
	prov_done_fn done = call->done;
	void *arg = call->arg;
	call_free(call);
	if (done)
		done(arg, st, msg);
}

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
	call_finish(arg, HA_PROV_DATABASE, "the peer did not answer in time");
}

struct prov_call *prov_forward(struct prov *pv, struct ha_prov_req *req, prov_done_fn done,
			       void *arg, char *why, size_t whylen)
{
	struct pair *p = pv->srm->pair;
	if (!p || !pair_peer_reachable(p)) {
		snprintf(why, whylen, "the peer is unreachable over the peer link");
		return NULL;
	}
	struct prov_call *call = calloc(1, sizeof *call);
	if (!call) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	call->timeout = evtimer_new(pv->srm->base, on_call_timeout, call);
	if (!call->timeout) {
		free(call);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	req->id = pv->next_id++;
	if (pv->next_id == 0)
		pv->next_id = 1;
	uint8_t buf[HA_PROV_REQ_MAX];
	int n = ha_prov_req_encode(req, buf, sizeof buf);
	if (n < 0 || pair_send_app(p, HA_APP_PROV_REQ, buf, (size_t)n) < 0) {
		event_free(call->timeout);
		free(call);
		snprintf(why, whylen, n < 0 ? "request cannot be encoded"
					    : "the peer link refused the request (no session)");
		return NULL;
	}
	call->pv = pv;
	call->id = req->id;
	call->done = done;
	call->arg = arg;
	TAILQ_INSERT_TAIL(&pv->calls, call, entry);
	struct timeval tv = {PROV_TIMEOUT_MS / 1000, (PROV_TIMEOUT_MS % 1000) * 1000};
	evtimer_add(call->timeout, &tv);
	return call;
}

void prov_call_cancel(struct prov_call *call)
{
	/* Keep it listed so the answer is consumed quietly; it times out like any other. */
	if (call)
		call->done = NULL;
}

void prov_on_response(struct prov *pv, const uint8_t *payload, size_t len)
{
	struct ha_prov_resp r;
	if (ha_prov_resp_decode(payload, len, &r) < 0) {
		log_warnx("prov: malformed answer from the peer ignored");
		return;
	}
	struct prov_call *call = TAILQ_FIRST(&pv->calls);
	while (call && call->id != r.id)
		call = TAILQ_NEXT(call, entry);
	if (!call) {
		log_info("prov: answer %u from the peer came after its timeout", r.id);
		return;
	}
	call_finish(call, r.status, r.msg);
}

/* ---- receiving side ---- */

static void respond(struct prov *pv, uint32_t id, enum ha_prov_status st, const char *msg)
{
	struct ha_prov_resp r;
	memset(&r, 0, sizeof r);
	r.id = id;
	r.status = st;
	snprintf(r.msg, sizeof r.msg, "%s", msg ? msg : "");
	r.msg[strcspn(r.msg, "\r\n")] = '\0';
	uint8_t buf[HA_PROV_RESP_MAX];
	int n = ha_prov_resp_encode(&r, buf, sizeof buf);
	if (n < 0 || !pv->srm->pair ||
	    pair_send_app(pv->srm->pair, HA_APP_PROV_RESP, buf, (size_t)n) < 0)
		log_warnx("prov: cannot answer request %u (peer link)", id);
}

static void kick_local(struct prov *pv, const char *user)
{
	char line[HA_PROV_USER_MAX + CFG_NAME + 16];
	snprintf(line, sizeof line, "kick %s@%s", user, pv->srm->cfg.domain);
	for (char *d = strchr(line, '@'); d && *d; d++)
		if (*d >= 'A' && *d <= 'Z')
			*d = (char)(*d - 'A' + 'a');
	/* The reply only matters to the log. */
	engine_child_request(pv->srm->engine, line, NULL, NULL);
}

static void on_apply_result(void *arg, PGresult *res, const char *errmsg)
{
	struct prov_apply *ap = arg;
	struct prov *pv = ap->pv;
	TAILQ_REMOVE(&pv->applies, ap, entry);
	const struct ha_prov_req *r = &ap->r;
	if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK &&
		     PQresultStatus(res) != PGRES_TUPLES_OK)) {
		char why[300];
		snprintf(why, sizeof why, "%s",
			 res ? PQresultErrorMessage(res) : errmsg ? errmsg : "query failed");
		why[strcspn(why, "\r\n")] = '\0';
		log_warnx("prov: %s from the peer failed: %s", r->user, why);
		respond(pv, r->id, HA_PROV_DATABASE, why);
		free(ap);
		return;
	}
	/* prov_upsert answers whether the account existed, the others how many rows changed. */
	const char *value = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	int rows = atoi(value);
	switch (r->op) {
	case HA_PROV_UPSERT: {
		int updated = strcmp(value, "t") == 0;
		log_info("user: %s %s from the peer (home node %u)", r->user,
			 updated ? "updated" : "added", (unsigned)r->home);
		if (updated)
			kick_local(pv, r->user);
		respond(pv, r->id, HA_PROV_OK, updated ? "updated" : "added");
		break;
	}
	case HA_PROV_DELETE:
		log_info("user: %s deleted from the peer%s", r->user, rows ? "" : " (was absent)");
		if (rows)
			kick_local(pv, r->user);
		respond(pv, r->id, HA_PROV_OK, rows ? "deleted" : "absent");
		break;
	case HA_PROV_ASSIGN:
		if (!rows) {
			respond(pv, r->id, HA_PROV_NOT_FOUND, "no such user on the peer");
			break;
		}
		log_info("user: %s assigned to home node %u from the peer", r->user,
			 (unsigned)r->home);
		respond(pv, r->id, HA_PROV_OK, "assigned");
		break;
	}
	free(ap);
}

void prov_on_request(struct prov *pv, const uint8_t *payload, size_t len)
{
	struct prov_apply *ap = calloc(1, sizeof *ap);
	if (!ap) {
		log_warnx("prov: out of memory");
		return;
	}
	if (ha_prov_req_decode(payload, len, &ap->r) < 0) {
		log_warnx("prov: malformed request from the peer (%zu bytes) refused", len);
		/* The id is the only field worth trusting enough to answer. */
		uint32_t id = len >= 8 ? (uint32_t)payload[4] << 24 | (uint32_t)payload[5] << 16 |
						 (uint32_t)payload[6] << 8 | payload[7]
				       : 0;
		respond(pv, id, HA_PROV_BAD_REQUEST, "malformed request");
		free(ap);
		return;
	}
	ap->pv = pv;
	const struct ha_prov_req *r = &ap->r;
	char home[8];
	snprintf(home, sizeof home, "%u", (unsigned)r->home);
	if (r->op == HA_PROV_UPSERT) {
		const char *params[] = {r->user,          home,
					r->sha1.salt,     r->sha1.iter,
					r->sha1.stored,   r->sha1.server,
					r->sha256.salt,   r->sha256.iter,
					r->sha256.stored, r->sha256.server};
		ap->req = pg_query(pv->srm->pool,
				   "SELECT prov_upsert($1, $2::int, $3::bytea, $4::int, $5::bytea,"
				   " $6::bytea, $7::bytea, $8::int, $9::bytea, $10::bytea)",
				   10, params, on_apply_result, ap);
	} else if (r->op == HA_PROV_DELETE) {
		const char *params[] = {r->user};
		ap->req = pg_query(pv->srm->pool, "SELECT prov_delete($1)", 1, params,
				   on_apply_result, ap);
	} else {
		const char *params[] = {r->user, home};
		ap->req = pg_query(pv->srm->pool,
				   "SELECT prov_assign($1, $2::int)", 2, params, on_apply_result,
				   ap);
	}
	if (!ap->req) {
		respond(pv, r->id, HA_PROV_DATABASE, "out of memory");
		free(ap);
		return;
	}
	TAILQ_INSERT_TAIL(&pv->applies, ap, entry);
}
