/* Housekeeping of a replication session: the acknowledged position stored, the outbox trimmed. */
#include "replication/repl_session.h"

#include "lib/log.h"

#include <stdlib.h>

#define REPL_TRIM_EVERY_TICKS 10

static void on_stored(void *arg, int ok, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	r->store_req = NULL;
	r->store_op = NULL;
	if (ok)
		r->acked_stored = max_u64(r->acked_stored, o->value);
	else
		log_warnx("replication: storing the acknowledged position: %s", errmsg);
	free(o);
}

static void on_trimmed(void *arg, int ok, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	r->trim_req = NULL;
	r->trim_op = NULL;
	free(o);
	if (!ok)
		log_warnx("replication: trimming the outbox: %s", errmsg);
}

/* Housekeeping: persist the acked position (at most every tick), trim the outbox. */
void repl_housekeeping_tick(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	r->ticks++;
	if (r->loaded && r->acked > r->acked_stored && !r->store_req) {
		struct op *o = repl_op_new(r, 0);
		if (o) {
			o->value = r->acked;
			r->store_op = o;
			r->store_req = repl_acked_store(r->pool, r->cfg.peer_id, r->acked, on_stored,
							o);
			if (!r->store_req) {
				free(o);
				r->store_op = NULL;
			}
		}
	}
	if (r->loaded && r->ticks % REPL_TRIM_EVERY_TICKS == 0 && !r->trim_req &&
	    (r->acked > r->trimmed_at || r->ticks % (REPL_TRIM_EVERY_TICKS * 60) == 0)) {
		struct op *o = repl_op_new(r, 0);
		if (o) {
			r->trim_op = o;
			r->trim_req = repl_trim(r->pool, r->acked, r->cfg.max_keep, on_trimmed, o);
			if (!r->trim_req) {
				free(o);
				r->trim_op = NULL;
			} else {
				r->trimmed_at = r->acked;
			}
		}
	}
}
