/* PLACEHOLDER (see catchup.h): replication/ will replace this file.  Until replication
 * exists both databases are written by `srmctl user ...` on both nodes at once, so there
 * is no backlog: report caught-up immediately, asynchronously, as the real one will. */
#include "ha/catchup.h"

#include <event2/event.h>
#include <stdlib.h>

#include "lib/log.h"

struct catchup {
	struct event *ev;
	catchup_done_fn done;
	void *arg;
};

static void catchup_on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct catchup *c = arg;
	log_debug("catchup: no replication yet: caught up");
	c->done(c->arg);
}

struct catchup *catchup_new(struct event_base *base, catchup_done_fn done, void *arg)
{
	struct catchup *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->done = done;
	c->arg = arg;
	c->ev = evtimer_new(base, catchup_on_ready, c);
	if (!c->ev) {
		free(c);
		return NULL;
	}
	return c;
}

void catchup_free(struct catchup *c)
{
	if (!c)
		return;
	event_free(c->ev);
	free(c);
}

int catchup_wait(struct catchup *c)
{
	struct timeval now = {0, 0};
	return evtimer_add(c->ev, &now);
}

void catchup_cancel(struct catchup *c)
{
	evtimer_del(c->ev);
}
