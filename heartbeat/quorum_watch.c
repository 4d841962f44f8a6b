/* Corosync's quorum on a libevent loop: see quorum_watch.h. */
#include "heartbeat/quorum_watch.h"

#include <corosync/corotypes.h>
#include <corosync/quorum.h>
#include <corosync/votequorum.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "lib/clock.h"
#include "lib/log.h"

#define FAIL_LOG_MS 10000u /* connection failures: one warning per this period */

struct quorum_watch {
	struct event_base *base;
	enum quorum_require req;
	struct quorum_watch_callbacks cbs;
	void *arg;
	quorum_handle_t qh;
	bool connected;
	votequorum_handle_t vh;
	bool vq_connected, vq_warned;
	struct event *ev_fd, *ev_retry;
	uint32_t retry_ms;
	uint64_t last_fail_log_ms;
	bool logged_state, logged_quorate, logged_required;
	struct quorum_view view;
};

const char *quorum_require_name(enum quorum_require r)
{
	switch (r) {
	case QUORUM_REQUIRE_YES:
		return "yes";
	case QUORUM_REQUIRE_NO:
		return "no";
	default:
		return "auto";
	}
}

int quorum_require_parse(const char *s)
{
	if (strcmp(s, "auto") == 0)
		return QUORUM_REQUIRE_AUTO;
	if (strcmp(s, "yes") == 0)
		return QUORUM_REQUIRE_YES;
	if (strcmp(s, "no") == 0)
		return QUORUM_REQUIRE_NO;
	return -1;
}

bool quorum_watch_required(const struct quorum_watch *q)
{
	switch (q->req) {
	case QUORUM_REQUIRE_YES:
		return true;
	case QUORUM_REQUIRE_NO:
		return false;
	default:
		/* Before corosync ever answered nothing says there is no third vote. */
		return !q->view.third_vote_seen || q->view.third_vote;
	}
}

bool quorum_watch_lost(const struct quorum_watch *q)
{
	return quorum_watch_required(q) && !(q->view.known && q->view.quorate);
}

bool quorum_watch_has_node(const struct quorum_watch *q, uint32_t nodeid)
{
	for (size_t i = 0; i < q->view.n_nodes; i++)
		if (q->view.nodes[i] == nodeid)
			return true;
	return false;
}

const struct quorum_view *quorum_watch_view(const struct quorum_watch *q)
{
	return &q->view;
}

/* ---- votequorum: is there a third vote? ---- */

static void vq_disconnect(struct quorum_watch *q)
{
	if (q->vq_connected)
		votequorum_finalize(q->vh);
	q->vq_connected = false;
}

static void vq_refresh(struct quorum_watch *q)
{
	static votequorum_callbacks_t none;
	struct votequorum_info info;
	cs_error_t e;

	if (!q->vq_connected) {
		if (votequorum_initialize(&q->vh, &none) != CS_OK)
			return;
		q->vq_connected = true;
	}
	memset(&info, 0, sizeof info);
	/* Node id 0 asks about this node. */
	e = votequorum_getinfo(q->vh, 0, &info);
	if (e != CS_OK) {
		if (!q->vq_warned)
			log_warnx("peer: corosync's votequorum does not answer (error %d): whether "
				  "quorum is required stays unknown", (int)e);
		q->vq_warned = true;
		vq_disconnect(q);
		return;
	}
	q->view.expected_votes = info.node_expected_votes;
	q->view.total_votes = info.total_votes;
	q->view.quorum_votes = info.quorum;
	q->view.device_votes = info.qdevice_votes;
	q->view.device_registered = (info.flags & VOTEQUORUM_INFO_QDEVICE_REGISTERED) != 0;
	q->view.two_node = (info.flags & VOTEQUORUM_INFO_TWONODE) != 0;
	/* two_node keeps both halves quorate; a device or a third node breaks the tie. */
	q->view.third_vote = !q->view.two_node &&
			     (info.node_expected_votes > 2 || info.qdevice_votes > 0);
	q->view.third_vote_seen = true;
}

/* ---- libquorum ---- */

static void log_view(struct quorum_watch *q)
{
	const struct quorum_view *v = &q->view;
	bool req = quorum_watch_required(q);

	if (q->logged_state && q->logged_quorate == v->quorate && q->logged_required == req)
		return;
	q->logged_state = true;
	q->logged_quorate = v->quorate;
	q->logged_required = req;
	log_info("peer: corosync quorum: %s (%zu node(s), votes %u of %u expected, quorum %u%s%s); "
		 "require_quorum %s: %s", v->quorate ? "quorate" : "NOT quorate", v->n_nodes,
		 v->total_votes, v->expected_votes, v->quorum_votes,
		 v->device_votes ? ", quorum device" : "", v->two_node ? ", two_node" : "",
		 quorum_require_name(q->req), req ? "required" : "not required");
}

static void notify_cb(quorum_handle_t h, uint32_t quorate, struct quorum_ring_id ring,
		      uint32_t n, const uint32_t *nodes)
{
	const void *ctx = NULL;
	struct quorum_watch *q;

	if (quorum_context_get(h, &ctx) != CS_OK || !ctx)
		return;
	q = (struct quorum_watch *)(uintptr_t)ctx;
	q->view.known = true;
	q->view.quorate = quorate != 0;
	q->view.ring_seq = ring.seq;
	q->view.n_nodes = n < QUORUM_WATCH_MAX_NODES ? n : QUORUM_WATCH_MAX_NODES;
	if (nodes)
		memcpy(q->view.nodes, nodes, q->view.n_nodes * sizeof nodes[0]);
	else
		q->view.n_nodes = 0;
	vq_refresh(q);
	log_view(q);
	q->cbs.on_change(q->arg);
}

static void retry_schedule(struct quorum_watch *q)
{
	struct timeval tv;

	q->retry_ms = q->retry_ms ? q->retry_ms * 2 : QUORUM_WATCH_RETRY_MIN_MS;
	if (q->retry_ms > QUORUM_WATCH_RETRY_MAX_MS)
		q->retry_ms = QUORUM_WATCH_RETRY_MAX_MS;
	tv.tv_sec = (time_t)(q->retry_ms / 1000);
	tv.tv_usec = (suseconds_t)(q->retry_ms % 1000) * 1000;
	evtimer_add(q->ev_retry, &tv);
}

static void disconnect(struct quorum_watch *q)
{
	if (q->ev_fd) {
		event_free(q->ev_fd);
		q->ev_fd = NULL;
	}
	if (q->connected)
		quorum_finalize(q->qh);
	q->connected = false;
	vq_disconnect(q);
}

/* Corosync is away: the quorum is unknown until it answers again. */
static void lost(struct quorum_watch *q, const char *what, cs_error_t err)
{
	bool was_known = q->view.known;

	if (q->connected)
		log_warnx("peer: corosync quorum service lost (%s: error %d); reconnecting", what,
			  (int)err);
	disconnect(q);
	q->view.known = false;
	q->view.quorate = false;
	q->view.n_nodes = 0;
	q->logged_state = false;
	if (!evtimer_pending(q->ev_retry, NULL))
		retry_schedule(q);
	if (was_known)
		q->cbs.on_change(q->arg);
}

static void fd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct quorum_watch *q = arg;
	cs_error_t e = quorum_dispatch(q->qh, CS_DISPATCH_ALL);

	if (e != CS_OK && e != CS_ERR_TRY_AGAIN)
		lost(q, "quorum_dispatch", e);
}

static cs_error_t connect_quorum(struct quorum_watch *q)
{
	static quorum_model_v1_data_t model = {
		.model = QUORUM_MODEL_V1,
		.quorum_notify_fn = notify_cb,
	};
	uint32_t type = 0;
	int fd = -1;
	cs_error_t e;

	e = quorum_model_initialize(&q->qh, QUORUM_MODEL_V1, (quorum_model_data_t *)&model, &type,
				    q);
	if (e != CS_OK)
		return e;
	q->connected = true;
	if (type != QUORUM_SET && q->req != QUORUM_REQUIRE_NO)
		log_warnx("peer: corosync has no quorum provider (quorum { } in corosync.conf): "
			  "every partition is quorate");
	if ((e = quorum_fd_get(q->qh, &fd)) != CS_OK)
		goto fail;
	q->ev_fd = event_new(q->base, fd, EV_READ | EV_PERSIST, fd_cb, q);
	if (!q->ev_fd || event_add(q->ev_fd, NULL) != 0) {
		e = CS_ERR_NO_MEMORY;
		goto fail;
	}
	/* CURRENT: the present state comes as a first notification. */
	if ((e = quorum_trackstart(q->qh, CS_TRACK_CHANGES | CS_TRACK_CURRENT)) != CS_OK)
		goto fail;
	return CS_OK;
fail:
	disconnect(q);
	return e;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct quorum_watch *q = arg;
	uint64_t now = (uint64_t)clock_mono_ms();
	cs_error_t e;

	if (q->connected)
		return;
	e = connect_quorum(q);
	if (e == CS_OK) {
		q->retry_ms = 0;
		q->last_fail_log_ms = 0;
		return;
	}
	if (!q->last_fail_log_ms || now - q->last_fail_log_ms >= FAIL_LOG_MS) {
		q->last_fail_log_ms = now;
		log_warnx("peer: cannot reach corosync's quorum service (error %d); retrying",
			  (int)e);
	}
	retry_schedule(q);
}

/* ---- public ---- */

struct quorum_watch *quorum_watch_new(struct event_base *base, enum quorum_require req,
				      const struct quorum_watch_callbacks *cbs, void *arg)
{
	struct quorum_watch *q = calloc(1, sizeof *q);

	if (!q) {
		log_warn("peer: calloc");
		return NULL;
	}
	q->base = base;
	q->req = req;
	q->cbs = *cbs;
	q->arg = arg;
	q->ev_retry = evtimer_new(base, retry_cb, q);
	if (!q->ev_retry) {
		free(q);
		return NULL;
	}
	event_active(q->ev_retry, EV_TIMEOUT, 0);
	return q;
}

void quorum_watch_free(struct quorum_watch *q)
{
	if (!q)
		return;
	disconnect(q);
	event_free(q->ev_retry);
	free(q);
}

void quorum_watch_poll(struct quorum_watch *q)
{
	if (q->connected)
		fd_cb(-1, EV_READ, q);
}

void quorum_watch_reset(struct quorum_watch *q)
{
	if (q->connected || q->view.known)
		lost(q, "corosync connection", CS_ERR_LIBRARY);
}
