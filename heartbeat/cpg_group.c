/* A CPG group on libevent: see cpg_group.h. */
#include "heartbeat/cpg_group.h"

#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/clock.h"
#include "lib/log.h"

#define FLUSH_RETRY_MS 5      /* corosync said "try again": retry this soon */
#define FAIL_LOG_MS 10000u    /* connection failures: one warning per this period */

struct cpg_msg {
	struct cpg_msg *next;
	size_t len;
	uint8_t data[];
};

struct cpg_group {
	struct event_base *base;
	struct cpg_name name;
	struct cpg_group_callbacks cbs;
	void *arg;
	cpg_handle_t h;
	bool connected; /* h is valid and joined (or joining) */
	bool joined;    /* our own join was confirmed by a configuration change */
	struct cpg_member self;
	struct event *ev_fd, *ev_retry, *ev_flush, *ev_lost;
	uint32_t retry_ms;
	uint64_t last_fail_log_ms;
	cs_error_t broken; /* a send failed for good: the connection is handled as lost */
	struct cpg_msg *q_head, *q_tail;
	size_t q_bytes;
};

bool cpg_member_eq(struct cpg_member a, struct cpg_member b)
{
	return a.nodeid == b.nodeid && a.pid == b.pid;
}

const char *cpg_reason_name(uint32_t reason)
{
	switch (reason) {
	case CPG_REASON_JOIN:
		return "join";
	case CPG_REASON_LEAVE:
		return "leave";
	case CPG_REASON_NODEDOWN:
		return "node down";
	case CPG_REASON_NODEUP:
		return "node up";
	case CPG_REASON_PROCDOWN:
		return "process down";
	default:
		return "undefined";
	}
}

static void queue_clear(struct cpg_group *g)
{
	while (g->q_head) {
		struct cpg_msg *m = g->q_head;
		g->q_head = m->next;
		free(m);
	}
	g->q_tail = NULL;
	g->q_bytes = 0;
}

/* ---- callbacks from libcpg (inside cpg_dispatch) ---- */

static struct cpg_group *group_of(cpg_handle_t h)
{
	void *ctx = NULL;
	if (cpg_context_get(h, &ctx) != CS_OK)
		return NULL;
	return ctx;
}

static void deliver_cb(cpg_handle_t h, const struct cpg_name *name, uint32_t nodeid,
		       uint32_t pid, void *msg, size_t len)
{
	struct cpg_group *g = group_of(h);
	struct cpg_member from = {nodeid, pid};

	if (!g || !g->joined)
		return;
	g->cbs.on_message(g->arg, from, msg, len);
}

static void confchg_cb(cpg_handle_t h, const struct cpg_name *name,
		       const struct cpg_address *members, size_t n_members,
		       const struct cpg_address *left, size_t n_left,
		       const struct cpg_address *joined, size_t n_joined)
{
	struct cpg_group *g = group_of(h);
	struct cpg_member list[CPG_MEMBERS_MAX];
	size_t n = 0;

	if (!g)
		return;
	if (!g->joined) {
		/* The first change after cpg_join is our own join: it lists everyone. */
		bool self_in = false;
		for (size_t i = 0; i < n_members && n < CPG_MEMBERS_MAX; i++) {
			list[n].nodeid = members[i].nodeid;
			list[n].pid = members[i].pid;
			if (cpg_member_eq(list[n], g->self))
				self_in = true;
			n++;
		}
		if (!self_in)
			return;
		g->joined = true;
		g->retry_ms = 0;
		g->last_fail_log_ms = 0;
		log_info("peer: joined CPG group %.*s as node %u pid %u (%zu member(s))",
			 (int)g->name.length, g->name.value, g->self.nodeid, g->self.pid, n);
		g->cbs.on_joined(g->arg, list, n);
		return;
	}
	for (size_t i = 0; i < n_left; i++) {
		struct cpg_member m = {left[i].nodeid, left[i].pid};
		if (cpg_member_eq(m, g->self)) {
			/* Only corosync removes us while we stay connected: start afresh. */
			log_warnx("peer: corosync removed us from CPG group %.*s (%s)",
				  (int)g->name.length, g->name.value, cpg_reason_name(left[i].reason));
			g->broken = CS_ERR_NOT_EXIST;
			event_active(g->ev_lost, EV_TIMEOUT, 0);
			return;
		}
		g->cbs.on_member_left(g->arg, m, left[i].reason);
	}
	for (size_t i = 0; i < n_joined; i++) {
		struct cpg_member m = {joined[i].nodeid, joined[i].pid};
		if (!cpg_member_eq(m, g->self))
			g->cbs.on_member_joined(g->arg, m);
	}
}

/* ---- connection ---- */

static void group_retry_schedule(struct cpg_group *g)
{
	struct timeval tv;

	g->retry_ms = g->retry_ms ? g->retry_ms * 2 : CPG_GROUP_RETRY_MIN_MS;
	if (g->retry_ms > CPG_GROUP_RETRY_MAX_MS)
		g->retry_ms = CPG_GROUP_RETRY_MAX_MS;
	tv = clock_tv_ms(g->retry_ms);
	evtimer_add(g->ev_retry, &tv);
}

static void group_disconnect(struct cpg_group *g)
{
	if (g->ev_fd) {
		event_free(g->ev_fd);
		g->ev_fd = NULL;
	}
	if (g->connected)
		cpg_finalize(g->h);
	g->connected = false;
	g->joined = false;
	g->broken = CS_OK;
	evtimer_del(g->ev_flush);
	queue_clear(g);
}

static void group_lost(struct cpg_group *g, const char *what, cs_error_t err)
{
	bool was_joined = g->joined;

	if (!g->connected)
		return;
	log_warnx("peer: connection to corosync lost (%s: error %d); reconnecting", what,
		  (int)err);
	group_disconnect(g);
	group_retry_schedule(g);
	if (was_joined)
		g->cbs.on_lost(g->arg);
}

static void fd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_group *g = arg;
	/* CS_DISPATCH_ALL handles everything queued and never blocks. */
	cs_error_t e = cpg_dispatch(g->h, CS_DISPATCH_ALL);

	if (e != CS_OK && e != CS_ERR_TRY_AGAIN)
		group_lost(g, "cpg_dispatch", e);
	else if (g->broken != CS_OK)
		group_lost(g, "cpg_mcast_joined", g->broken);
}

static void lost_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_group *g = arg;

	if (g->connected && g->broken != CS_OK)
		group_lost(g, "membership", g->broken);
}

static cs_error_t group_connect(struct cpg_group *g)
{
	static cpg_model_v1_data_t model = {
		.model = CPG_MODEL_V1,
		.cpg_deliver_fn = deliver_cb,
		.cpg_confchg_fn = confchg_cb,
	};
	unsigned int nodeid = 0;
	int fd = -1;
	cs_error_t e;

	e = cpg_model_initialize(&g->h, CPG_MODEL_V1, (cpg_model_data_t *)&model, g);
	if (e != CS_OK)
		return e;
	g->connected = true;
	if ((e = cpg_local_get(g->h, &nodeid)) != CS_OK || (e = cpg_fd_get(g->h, &fd)) != CS_OK)
		goto fail;
	g->self.nodeid = nodeid;
	g->self.pid = (uint32_t)getpid();
	g->ev_fd = event_new(g->base, fd, EV_READ | EV_PERSIST, fd_cb, g);
	if (!g->ev_fd || event_add(g->ev_fd, NULL) != 0) {
		e = CS_ERR_NO_MEMORY;
		goto fail;
	}
	if ((e = cpg_join(g->h, &g->name)) != CS_OK)
		goto fail;
	return CS_OK;
fail:
	group_disconnect(g);
	return e;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_group *g = arg;
	cs_error_t e;
	uint64_t now = (uint64_t)clock_mono_ms();

	if (g->connected)
		return;
	e = group_connect(g);
	if (e == CS_OK)
		return;
	if (!g->last_fail_log_ms || now - g->last_fail_log_ms >= FAIL_LOG_MS) {
		g->last_fail_log_ms = now;
		log_warnx("peer: cannot join CPG group %.*s (corosync error %d); is corosync "
			  "running? retrying", (int)g->name.length, g->name.value, (int)e);
	} else {
		log_debug("peer: cannot join CPG group (error %d)", (int)e);
	}
	group_retry_schedule(g);
}

/* ---- sending ---- */

static void group_flush(struct cpg_group *g)
{
	while (g->q_head && g->connected && g->broken == CS_OK) {
		struct cpg_msg *m = g->q_head;
		struct iovec iov = {m->data, m->len};
		cs_error_t e = cpg_mcast_joined(g->h, CPG_TYPE_AGREED, &iov, 1);

		if (e == CS_ERR_TRY_AGAIN) {
			struct timeval tv = clock_tv_ms(FLUSH_RETRY_MS);
			evtimer_add(g->ev_flush, &tv);
			return;
		}
		if (e != CS_OK) {
			/* Not from inside a callback: the lost event runs after dispatch returns. */
			g->broken = e;
			event_active(g->ev_lost, EV_TIMEOUT, 0);
			return;
		}
		g->q_head = m->next;
		if (!g->q_head)
			g->q_tail = NULL;
		g->q_bytes -= m->len;
		free(m);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	group_flush(arg);
}

int cpg_group_send(struct cpg_group *g, const void *msg, size_t len)
{
	struct cpg_msg *m;

	if (!g->connected || !g->joined || g->broken != CS_OK || len == 0 ||
	    len > CPG_GROUP_MAX_MSG || g->q_bytes + len > CPG_GROUP_MAX_QUEUE)
		return -1;
	m = malloc(sizeof *m + len);
	if (!m)
		return -1;
	m->next = NULL;
	m->len = len;
	memcpy(m->data, msg, len);
	if (g->q_tail)
		g->q_tail->next = m;
	else
		g->q_head = m;
	g->q_tail = m;
	g->q_bytes += len;
	/* Behind older queued messages, order is kept by waiting for the retry timer. */
	if (g->q_head == m)
		group_flush(g);
	return 0;
}

/* ---- public ---- */

struct cpg_group *cpg_group_new(struct event_base *base, const char *name,
				const struct cpg_group_callbacks *cbs, void *arg)
{
	size_t n = strlen(name);
	struct cpg_group *g;

	if (n == 0 || n >= CPG_MAX_NAME_LENGTH) {
		log_warnx("peer: CPG group name must have 1 to %d characters",
			  CPG_MAX_NAME_LENGTH - 1);
		return NULL;
	}
	g = calloc(1, sizeof *g);
	if (!g) {
		log_warn("peer: calloc");
		return NULL;
	}
	g->base = base;
	memcpy(g->name.value, name, n);
	g->name.length = (uint32_t)n;
	g->cbs = *cbs;
	g->arg = arg;
	g->broken = CS_OK; /* CS_OK is 1, not calloc's 0 */
	g->ev_retry = evtimer_new(base, retry_cb, g);
	g->ev_flush = evtimer_new(base, flush_cb, g);
	g->ev_lost = event_new(base, -1, 0, lost_cb, g);
	if (!g->ev_retry || !g->ev_flush || !g->ev_lost) {
		log_warnx("peer: out of memory");
		cpg_group_free(g);
		return NULL;
	}
	event_active(g->ev_retry, EV_TIMEOUT, 0);
	return g;
}

void cpg_group_free(struct cpg_group *g)
{
	if (!g)
		return;
	group_disconnect(g);
	if (g->ev_retry)
		event_free(g->ev_retry);
	if (g->ev_flush)
		event_free(g->ev_flush);
	if (g->ev_lost)
		event_free(g->ev_lost);
	free(g);
}

bool cpg_group_joined(const struct cpg_group *g)
{
	return g->connected && g->joined && g->broken == CS_OK;
}

struct cpg_member cpg_group_self(const struct cpg_group *g)
{
	return g->self;
}

void cpg_group_poll(struct cpg_group *g)
{
	if (g->connected)
		fd_cb(-1, EV_READ, g);
}
