/* The corosync transport (cpg_transport.h): the peer protocol's frames over a CPG group
 * (cpg_group.c), membership changes into peer up/down, and a tcp peer link kept as the
 * replication path. */
#include "heartbeat/cpg_transport.h"

#include <corosync/cpg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "heartbeat/cpg_group.h"
#include "heartbeat/detector.h"
#include "heartbeat/hb_echo.h"
#include "heartbeat/quorum_watch.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/log.h"

#define BAD_LOG_MS 10000u   /* invalid messages: one warning per this period */

struct cpg_transport {
	struct event_base *base;
	struct peer_transport_callbacks cbs;
	void *arg;
	uint32_t node_id, interval_ms, hang_ms, connect_timeout_ms;
	uint8_t boot_id[FRAME_BOOT_ID_SIZE];
	struct cpg_group *grp;
	struct peer_link *data; /* replication's TLS connection */
	struct detector det;

	bool have_peer;          /* a member whose HELLO we accepted is in the group */
	struct cpg_member peer;  /* ... that member */
	struct frame_hello peer_hello;
	uint8_t version;         /* negotiated with it */
	uint64_t peer_last_seq;
	uint64_t echo_time_us, echo_rx_us;

	struct hb_state local;
	uint64_t hb_seq;
	uint64_t created_us, last_rx_us, last_bad_log_ms;
	struct event *hb_timer, *dead_timer, *bye_timer, *finish_ev;
	bool stopping, bye_pending, data_closed, closed_reported, warned_data_app;
	struct peer_link_stats st;

	/* quorum ([peer] require_quorum; NULL qw when no): what pair.c was told, and the two
	 * orderings it relies on (docs/peer-protocol.md §8) */
	struct quorum_watch *qw;
	bool quorum_reported, quorum_reported_lost;
	bool quorum_stale;       /* a membership change corosync told no quorum for in time */
	bool down_pending;       /* the peer's host left: Peer Down waits for the new quorum */
	uint32_t down_nodeid;
	char down_why[96];
	bool back_pending;       /* quorum regained with the peer's host: wait for its HELLO */
	uint32_t peer_nodeid;    /* the peer's corosync node id, once seen (0 = never) */
	struct event *quorum_ev, *quorum_hold;
};

/* ---- sending ---- */

static int send_frame(struct cpg_transport *t, const struct frame *f)
{
	uint8_t buf[FRAME_HEADER_SIZE + FRAME_HEARTBEAT_SIZE + FRAME_HELLO_SIZE];
	/* HELLO always in the lowest version's framing, like on the tcp link. */
	uint8_t v = f->h.type == FRAME_HELLO || !t->version ? FRAME_VERSION_MIN : t->version;
	long n = frame_encode(f, v, buf, sizeof buf);

	if (n < 0 || !t->grp || cpg_group_send(t->grp, buf, (size_t)n) != 0)
		return -1;
	t->st.frames_tx++;
	t->st.bytes_tx += (uint64_t)n;
	return 0;
}

static void send_hello(struct cpg_transport *t)
{
	struct frame f = {.h.type = FRAME_HELLO};

	if (t->stopping)
		return;
	f.u.hello.version_min = FRAME_VERSION_MIN;
	f.u.hello.version_max = FRAME_VERSION_MAX;
	f.u.hello.node_id = t->node_id;
	memcpy(f.u.hello.boot_id, t->boot_id, FRAME_BOOT_ID_SIZE);
	f.u.hello.heartbeat_interval_ms = t->interval_ms;
	f.u.hello.dead_timeout_ms = t->hang_ms;
	if (send_frame(t, &f) != 0)
		log_warnx("peer: cannot multicast HELLO to the CPG group");
}

static void send_heartbeat(struct cpg_transport *t)
{
	struct frame f = {.h.type = FRAME_HEARTBEAT};
	uint64_t now = (uint64_t)clock_mono_us();

	if (!t->have_peer || t->stopping)
		return;
	f.u.hb.seq = ++t->hb_seq;
	f.u.hb.send_time_us = now;
	hb_echo_fill(&f.u.hb, now, t->echo_time_us, t->echo_rx_us);
	f.u.hb.st = t->local;
	if (send_frame(t, &f) == 0)
		t->st.heartbeats_tx++;
}

/* ---- reporting ---- */

static void quorum_settle(struct cpg_transport *t);

static void dead_timer_arm(struct cpg_transport *t)
{
	uint64_t ms = detector_next_deadline(&t->det, (uint64_t)clock_mono_ms());
	struct timeval tv;

	if (ms == UINT64_MAX || t->stopping) {
		evtimer_del(t->dead_timer);
		return;
	}
	tv = clock_tv_ms(ms + 1);
	evtimer_add(t->dead_timer, &tv);
}

static void report(struct cpg_transport *t, enum detector_event ev, enum peer_down_reason reason,
		   int goodbye_reason)
{
	switch (ev) {
	case DET_NONE:
		return;
	case DET_PEER_RESTARTED:
		t->st.downs++;
		t->st.up = 0;
		t->cbs.on_down(t->arg, PEER_DOWN_RESTARTED, 0);
		__attribute__((fallthrough));
	case DET_PEER_UP:
		log_info("peer: node %u up over corosync (CPG member %u/%u)", t->peer_hello.node_id,
			 t->peer.nodeid, t->peer.pid);
		t->st.ups++;
		t->st.up = 1;
		dead_timer_arm(t);
		t->cbs.on_up(t->arg, t->peer_hello.boot_id, &t->peer_hello);
		quorum_settle(t); /* a regained quorum waited for this */
		return;
	case DET_PEER_DOWN:
	case DET_PEER_GOODBYE:
		t->st.downs++;
		t->st.up = 0;
		evtimer_del(t->dead_timer);
		t->cbs.on_down(t->arg, reason, goodbye_reason);
		return;
	}
}

/* The peer is gone from the group, or we are: down now, whatever the detector thought.
 * Only a new HELLO brings it back. */
static void peer_lost(struct cpg_transport *t, const char *why)
{
	bool was_up = detector_is_up(&t->det);

	t->have_peer = false;
	if (!was_up)
		return;
	log_warnx("peer: node %u lost: %s", t->peer_hello.node_id, why);
	/* The detector's "down now" transition (it was written for protocol errors). */
	report(t, detector_on_protocol_error(&t->det, (uint64_t)clock_mono_ms()), PEER_DOWN_MEMBERSHIP, 0);
}

static void bad_message(struct cpg_transport *t, struct cpg_member from, const char *why)
{
	uint64_t now = (uint64_t)clock_mono_ms();
	bool from_peer = t->have_peer && cpg_member_eq(from, t->peer);

	if (!t->last_bad_log_ms || now - t->last_bad_log_ms >= BAD_LOG_MS) {
		t->last_bad_log_ms = now;
		log_warnx("peer: invalid CPG message from %u/%u%s: %s", from.nodeid, from.pid,
			  from_peer ? " (the peer)" : "", why);
	}
	if (!from_peer)
		return;
	/* As on the tcp link: down now, and only a new HELLO (its next join) brings it back,
	 * so a peer that keeps sending garbage does not flap. */
	t->st.protocol_errors++;
	t->have_peer = false;
	report(t, detector_on_protocol_error(&t->det, now), PEER_DOWN_PROTOCOL, 0);
}

/* ---- quorum ---- */

static void quorum_report(struct cpg_transport *t, bool lost)
{
	if (t->quorum_reported && lost == t->quorum_reported_lost)
		return;
	if (!t->quorum_reported && !lost) {
		t->quorum_reported = true; /* the state machine starts without a loss */
		return;
	}
	t->quorum_reported = true;
	t->quorum_reported_lost = lost;
	if (lost && quorum_watch_view(t->qw)->known && !t->quorum_stale)
		log_warnx("peer: quorum required and lost: this node serves nobody while it does "
			  "not see the peer");
	else if (lost)
		log_warnx("peer: quorum required and not known (corosync has not told it): this "
			  "node serves nobody while it does not see the peer");
	else
		log_info("peer: quorum regained, or not required");
	if (t->cbs.on_quorum)
		t->cbs.on_quorum(t->arg, lost);
}

static bool quorum_lost_now(const struct cpg_transport *t)
{
	return quorum_watch_lost(t->qw) || (t->quorum_stale && quorum_watch_required(t->qw));
}

/* The peer's host is in the membership the quorum was computed for. */
static bool peer_host_in_view(const struct cpg_transport *t)
{
	const struct quorum_view *v = quorum_watch_view(t->qw);
	uint32_t self = t->grp ? cpg_group_self(t->grp).nodeid : 0;

	if (t->peer_nodeid)
		return quorum_watch_has_node(t->qw, t->peer_nodeid);
	for (size_t i = 0; i < v->n_nodes; i++)
		if (v->nodes[i] != self)
			return true;
	return false;
}

static void quorum_hold_arm(struct cpg_transport *t, uint64_t ms)
{
	struct timeval tv = clock_tv_ms(ms);
	evtimer_add(t->quorum_hold, &tv);
}

/* The held Peer Down: the quorum of the membership without the peer first. */
static void down_finish(struct cpg_transport *t)
{
	t->down_pending = false;
	evtimer_del(t->quorum_hold);
	quorum_report(t, quorum_lost_now(t));
	peer_lost(t, t->down_why);
}

/* Tell pair.c what the quorum means now, in the order the state machine needs. */
static void quorum_settle(struct cpg_transport *t)
{
	bool lost;

	if (!t->qw || t->stopping)
		return;
	if (t->down_pending) {
		const struct quorum_view *v = quorum_watch_view(t->qw);
		if (!v->known || t->quorum_stale || !quorum_watch_has_node(t->qw, t->down_nodeid))
			down_finish(t);
		return;
	}
	lost = quorum_lost_now(t);
	if (lost || !t->quorum_reported_lost) {
		t->back_pending = false;
		quorum_report(t, lost);
		return;
	}
	/* Regained with the peer's host back in the membership: its srmd says HELLO within
	 * moments, and the state machine must see that Peer Up first, or it takes over users
	 * the peer serves. */
	if (quorum_watch_required(t->qw) && !detector_is_up(&t->det) && peer_host_in_view(t)) {
		if (!t->back_pending) {
			t->back_pending = true;
			quorum_hold_arm(t, t->connect_timeout_ms);
			log_info("peer: quorum regained with the peer's host; waiting up to %ums for "
				 "its srmd", t->connect_timeout_ms);
		}
		return;
	}
	t->back_pending = false;
	evtimer_del(t->quorum_hold);
	quorum_report(t, false);
}

static void quorum_on_change(void *arg)
{
	struct cpg_transport *t = arg;

	t->quorum_stale = false;
	quorum_settle(t);
}

static void quorum_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	quorum_settle(arg);
}

static void quorum_hold_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_transport *t = arg;

	if (t->down_pending) {
		log_warnx("peer: corosync told no quorum for the membership without node %u within "
			  "%ums: counted as lost", t->down_nodeid, t->hang_ms);
		t->quorum_stale = true;
		down_finish(t);
		return;
	}
	if (t->back_pending) {
		log_info("peer: the peer's srmd did not show up; quorum regained");
		t->back_pending = false;
		quorum_report(t, quorum_lost_now(t));
	}
}

/* ---- frames in ---- */

static void on_hello(struct cpg_transport *t, struct cpg_member from, const struct frame_hello *h)
{
	unsigned common = h->version_max < FRAME_VERSION_MAX ? h->version_max : FRAME_VERSION_MAX;
	unsigned floor = h->version_min > FRAME_VERSION_MIN ? h->version_min : FRAME_VERSION_MIN;
	enum detector_event ev;

	if (common < floor) {
		log_warnx("peer: CPG member %u/%u speaks protocol %u-%u, we speak %u-%u",
			  from.nodeid, from.pid, h->version_min, h->version_max, FRAME_VERSION_MIN,
			  FRAME_VERSION_MAX);
		return;
	}
	if (t->down_pending)
		down_finish(t); /* the departure this HELLO follows, first */
	if (h->node_id == t->node_id) {
		log_warnx("peer: another srmd with our node id %u is in the CPG group (member "
			  "%u/%u); check [node] id and [peer] cpg_group", t->node_id, from.nodeid,
			  from.pid);
		return;
	}
	if (t->have_peer && !cpg_member_eq(from, t->peer)) {
		log_warnx("peer: ignoring node %u (CPG member %u/%u): the group already has our "
			  "peer, node %u (member %u/%u)", h->node_id, from.nodeid, from.pid,
			  t->peer_hello.node_id, t->peer.nodeid, t->peer.pid);
		return;
	}
	if (!t->have_peer) {
		if (h->heartbeat_interval_ms != t->interval_ms || h->dead_timeout_ms != t->hang_ms)
			log_warnx("peer: node %u uses heartbeat_interval %ums / hang_timeout %ums, "
				  "we use %ums / %ums", h->node_id, h->heartbeat_interval_ms,
				  h->dead_timeout_ms, t->interval_ms, t->hang_ms);
		t->have_peer = true;
		t->peer = from;
		t->peer_nodeid = from.nodeid;
		t->peer_last_seq = 0;
		t->echo_time_us = 0;
		t->st.sessions++;
	}
	t->peer_hello = *h;
	t->version = (uint8_t)common;
	t->last_rx_us = (uint64_t)clock_mono_us();
	ev = detector_on_hello(&t->det, h->boot_id, (uint64_t)clock_mono_ms());
	send_heartbeat(t);
	report(t, ev, 0, 0);
}

static void on_heartbeat(struct cpg_transport *t, struct cpg_member from,
			 const struct frame_heartbeat *hb)
{
	uint64_t now = (uint64_t)clock_mono_us();

	/* CPG delivers a member's messages in order and whole: a step back is a broken peer. */
	if (hb->seq <= t->peer_last_seq) {
		bad_message(t, from, "heartbeat sequence went backwards");
		return;
	}
	if (t->peer_last_seq && hb->seq > t->peer_last_seq + 1)
		t->st.heartbeat_gaps += hb->seq - t->peer_last_seq - 1;
	t->peer_last_seq = hb->seq;
	t->st.heartbeats_rx++;
	t->echo_time_us = hb->send_time_us;
	t->echo_rx_us = now;
	hb_echo_rtt(&t->st, hb, t->created_us, now);
	report(t, detector_on_frame(&t->det, now / 1000u), 0, 0);
	t->cbs.on_heartbeat(t->arg, &hb->st);
}

static void group_on_message(void *arg, struct cpg_member from, const uint8_t *msg, size_t len)
{
	struct cpg_transport *t = arg;
	struct frame f;
	size_t used = 0;
	int r;

	r = frame_decode(msg, len, &f, &used);
	if (cpg_member_eq(from, cpg_group_self(t->grp))) {
		/* Our own GOODBYE came back in the agreed order: the peer has it (or will have
		 * it before it sees us leave). */
		if (t->bye_pending && r == FRAME_OK && f.h.type == FRAME_GOODBYE) {
			t->bye_pending = false;
			event_active(t->finish_ev, EV_TIMEOUT, 0);
		}
		return;
	}
	if (r != FRAME_OK || used != len) {
		bad_message(t, from, r == FRAME_OK ? "trailing bytes after the frame"
			    : r == FRAME_NEED_MORE ? "truncated frame" : frame_strerror(r));
		return;
	}
	if (f.h.type == FRAME_HELLO) {
		t->st.frames_rx++;
		t->st.bytes_rx += len;
		on_hello(t, from, &f.u.hello);
		return;
	}
	if (!t->have_peer || !cpg_member_eq(from, t->peer)) {
		log_debug("peer: %s from CPG member %u/%u before its HELLO ignored",
			  frame_type_name(f.h.type), from.nodeid, from.pid);
		return;
	}
	if (f.h.version != t->version) {
		bad_message(t, from, "frame version differs from the negotiated one");
		return;
	}
	t->st.frames_rx++;
	t->st.bytes_rx += len;
	t->last_rx_us = (uint64_t)clock_mono_us();
	switch (f.h.type) {
	case FRAME_HEARTBEAT:
		on_heartbeat(t, from, &f.u.hb);
		return;
	case FRAME_GOODBYE:
		log_info("peer: node %u said goodbye (%s)", t->peer_hello.node_id,
			 goodbye_reason_name(f.u.bye.reason));
		report(t, detector_on_goodbye(&t->det, (uint64_t)clock_mono_ms()), PEER_DOWN_GOODBYE,
		       f.u.bye.reason);
		return;
	case FRAME_APP:
		if (peer_transport_is_data(f.u.app.subtype)) {
			/* Replication has its own ordered path; a copy here would race it. */
			bad_message(t, from, "replication frame on the CPG group");
			return;
		}
		t->st.app_rx++;
		report(t, detector_on_frame(&t->det, (uint64_t)clock_mono_ms()), 0, 0);
		t->cbs.on_app(t->arg, f.u.app.subtype, f.u.app.payload, f.u.app.len);
		return;
	default:
		return;
	}
}

/* ---- membership ---- */

static void group_on_joined(void *arg, const struct cpg_member *members, size_t n)
{
	struct cpg_transport *t = arg;
	struct cpg_member self = cpg_group_self(t->grp);

	for (size_t i = 0; i < n; i++)
		if (!cpg_member_eq(members[i], self)) {
			send_hello(t); /* one multicast reaches every member */
			return;
		}
	log_info("peer: alone in the CPG group; waiting for the peer to join");
}

static void group_on_member_joined(void *arg, struct cpg_member m)
{
	struct cpg_transport *t = arg;

	log_info("peer: CPG member %u/%u joined", m.nodeid, m.pid);
	send_hello(t);
}

static void group_on_member_left(void *arg, struct cpg_member m, uint32_t reason)
{
	struct cpg_transport *t = arg;
	char why[96];

	if (!t->have_peer || !cpg_member_eq(m, t->peer)) {
		log_info("peer: CPG member %u/%u left (%s)", m.nodeid, m.pid, cpg_reason_name(reason));
		return;
	}
	/* After a GOODBYE the detector says gone and nothing more is reported: CPG delivers a
	 * member's messages before its leave. */
	snprintf(why, sizeof why, "it left the CPG group (%s) without a goodbye",
		 cpg_reason_name(reason));
	if (t->qw && quorum_watch_required(t->qw) && reason == CPG_REASON_NODEDOWN &&
	    detector_is_up(&t->det)) {
		/* Its host left our membership: whether this side may take over depends on the
		 * quorum of the new membership, which corosync tells on its own connection,
		 * sometimes after this (measured: 2-200 ms with a quorum device). */
		t->have_peer = false;
		quorum_watch_poll(t->qw);
		if (quorum_watch_view(t->qw)->known && quorum_watch_has_node(t->qw, m.nodeid)) {
			t->down_pending = true;
			t->down_nodeid = m.nodeid;
			snprintf(t->down_why, sizeof t->down_why, "%s", why);
			quorum_hold_arm(t, t->hang_ms);
			log_info("peer: node %u's host left the membership; waiting for corosync's "
				 "quorum before reporting it", t->peer_hello.node_id);
			return;
		}
	}
	quorum_settle(t);
	peer_lost(t, why);
}

static void group_on_lost(void *arg)
{
	struct cpg_transport *t = arg;

	/* Without corosync the quorum is unknown: a lost one is reported before the peer. */
	if (t->qw) {
		quorum_watch_reset(t->qw);
		if (t->down_pending)
			down_finish(t);
		quorum_settle(t);
	}
	peer_lost(t, "our own connection to corosync is gone");
	if (t->bye_pending) {
		t->bye_pending = false;
		event_active(t->finish_ev, EV_TIMEOUT, 0);
	}
}

/* ---- timers ---- */

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
	send_heartbeat(arg);
}

static void dead_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_transport *t = arg;

	if (!t->grp)
		return;
	if (t->down_pending) {
		/* Silent since its host left: the held Peer Down is due. */
		quorum_hold_cb(-1, EV_TIMEOUT, t);
		return;
	}
	/* What corosync holds for us counts: we may have been the one not scheduled. */
	cpg_group_poll(t->grp);
	if (detector_tick(&t->det, (uint64_t)clock_mono_ms()) == DET_PEER_DOWN) {
		log_warnx("peer: node %u is still a CPG member but has sent nothing for %ums "
			  "(hung?)", t->peer_hello.node_id, t->hang_ms);
		report(t, DET_PEER_DOWN, PEER_DOWN_TIMEOUT, 0);
		return;
	}
	dead_timer_arm(t);
}

static void bye_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_transport *t = arg;

	if (!t->bye_pending)
		return;
	log_warnx("peer: our goodbye did not come back through corosync within %ums; leaving",
		  t->connect_timeout_ms);
	t->bye_pending = false;
	event_active(t->finish_ev, EV_TIMEOUT, 0);
}

/* Leave the group once the goodbye is through, and report closed once the replication
 * connection is closed too.  Runs as its own event: never inside cpg_dispatch. */
static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cpg_transport *t = arg;

	if (!t->stopping)
		return;
	if (t->grp && !t->bye_pending) {
		cpg_group_free(t->grp);
		t->grp = NULL;
		log_info("peer: left the CPG group");
	}
	if (!t->grp && t->data_closed && !t->closed_reported) {
		t->closed_reported = true;
		if (t->cbs.on_closed)
			t->cbs.on_closed(t->arg);
	}
}

/* ---- the replication connection ---- */

static void data_on_up(void *arg, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
		       const struct frame_hello *hello)
{
	struct cpg_transport *t = arg;

	log_info("peer: replication connection to node %u up", hello->node_id);
	t->cbs.on_data_up(t->arg);
}

static void data_on_reconnect(void *arg)
{
	struct cpg_transport *t = arg;

	t->cbs.on_data_up(t->arg);
}

static void data_on_down(void *arg, enum peer_down_reason reason, int goodbye_reason)
{
	struct cpg_transport *t = arg;

	/* Only replication pauses: the peer's liveness is corosync's to tell. */
	log_info("peer: replication connection down (%s)", peer_down_reason_name(reason));
	t->cbs.on_data_down(t->arg);
}

static void data_on_heartbeat(void *arg, const struct hb_state *st)
{
	/* The CPG heartbeats carry the same summary; they are the ones the pair follows. */
}

static void data_on_app(void *arg, uint16_t subtype, const uint8_t *payload, size_t len)
{
	struct cpg_transport *t = arg;

	if (peer_transport_is_data(subtype)) {
		t->cbs.on_app(t->arg, subtype, payload, len);
		return;
	}
	if (!t->warned_data_app) {
		t->warned_data_app = true;
		log_warnx("peer: HA frame (subtype %u) on the replication connection ignored: does "
			  "the peer use [peer] transport = tcp? Both nodes need the same transport",
			  (unsigned)subtype);
	}
}

static void data_on_closed(void *arg)
{
	struct cpg_transport *t = arg;

	t->data_closed = true;
	event_active(t->finish_ev, EV_TIMEOUT, 0);
}

/* ---- ops ---- */

static void cpg_free(void *impl)
{
	struct cpg_transport *t = impl;

	if (!t)
		return;
	cpg_group_free(t->grp);
	peer_link_free(t->data);
	quorum_watch_free(t->qw);
	if (t->quorum_ev)
		event_free(t->quorum_ev);
	if (t->quorum_hold)
		event_free(t->quorum_hold);
	if (t->hb_timer)
		event_free(t->hb_timer);
	if (t->dead_timer)
		event_free(t->dead_timer);
	if (t->bye_timer)
		event_free(t->bye_timer);
	if (t->finish_ev)
		event_free(t->finish_ev);
	free(t);
}

static void cpg_set_local_state(void *impl, const struct hb_state *st)
{
	struct cpg_transport *t = impl;
	bool urgent = st->state != t->local.state || st->reason != t->local.reason ||
		      st->services != t->local.services;

	t->local = *st;
	peer_link_set_local_state(t->data, st);
	if (urgent)
		send_heartbeat(t);
}

static int cpg_send_app(void *impl, uint16_t subtype, const void *payload, size_t len)
{
	struct cpg_transport *t = impl;
	uint8_t *buf;
	int rc;

	if (peer_transport_is_data(subtype))
		return peer_link_send_app(t->data, subtype, payload, len);
	if (!t->have_peer || t->stopping || !t->grp)
		return -1;
	if (len > CPG_GROUP_MAX_MSG - FRAME_HEADER_SIZE - 2) {
		log_warnx("peer: APP frame (subtype %u, %zu bytes) too big for the CPG group",
			  (unsigned)subtype, len);
		return -1;
	}
	buf = malloc(FRAME_HEADER_SIZE + 2 + len);
	if (!buf)
		return -1;
	rc = frame_app_header_encode(t->version, subtype, len, buf) == FRAME_OK ? 0 : -1;
	if (rc == 0) {
		if (len)
			memcpy(buf + FRAME_HEADER_SIZE + 2, payload, len);
		rc = cpg_group_send(t->grp, buf, FRAME_HEADER_SIZE + 2 + len);
	}
	free(buf);
	if (rc == 0) {
		t->st.frames_tx++;
		t->st.app_tx++;
		t->st.bytes_tx += FRAME_HEADER_SIZE + 2 + len;
	}
	return rc;
}

static void cpg_goodbye(void *impl, int goodbye_reason)
{
	struct cpg_transport *t = impl;
	struct frame f = {.h.type = FRAME_GOODBYE};
	struct timeval tv = clock_tv_ms(t->connect_timeout_ms);

	if (t->stopping)
		return;
	f.u.bye.reason = (uint8_t)goodbye_reason;
	if (t->have_peer && t->grp && cpg_group_joined(t->grp) && send_frame(t, &f) == 0) {
		log_info("peer: saying goodbye (%s) to node %u through corosync",
			 goodbye_reason_name(goodbye_reason), t->peer_hello.node_id);
		t->bye_pending = true;
		evtimer_add(t->bye_timer, &tv);
	}
	t->stopping = true;
	evtimer_del(t->hb_timer);
	evtimer_del(t->dead_timer);
	if (t->quorum_hold)
		evtimer_del(t->quorum_hold);
	peer_link_goodbye(t->data, goodbye_reason);
	event_active(t->finish_ev, EV_TIMEOUT, 0);
}

static void cpg_stats_get(const void *impl, struct peer_link_stats *out)
{
	const struct cpg_transport *t = impl;
	struct peer_link_stats d;

	peer_link_stats_get(t->data, &d);
	*out = t->st;
	out->up = detector_is_up(&t->det);
	out->connected = t->have_peer;
	/* Connection counters are the replication connection's. */
	out->connects_ok = d.connects_ok;
	out->connects_failed = d.connects_failed;
	out->accepts = d.accepts;
	out->tls_failures = d.tls_failures;
	out->last_rx_age_ms = t->last_rx_us ? ((uint64_t)clock_mono_us() - t->last_rx_us) / 1000u : 0;
}

static const struct peer_transport_ops cpg_ops = {
	.name = "corosync",
	.free = cpg_free,
	.set_local_state = cpg_set_local_state,
	.send_app = cpg_send_app,
	.goodbye = cpg_goodbye,
	.stats_get = cpg_stats_get,
};

struct peer_transport *cpg_transport_new(struct event_base *base, const struct duet_config *cfg,
					 const struct peer_transport_callbacks *cbs, void *arg)
{
	static const struct peer_link_callbacks data_cbs = {
		.on_up = data_on_up,
		.on_down = data_on_down,
		.on_heartbeat = data_on_heartbeat,
		.on_app = data_on_app,
		.on_reconnect = data_on_reconnect,
		.on_closed = data_on_closed,
	};
	static const struct cpg_group_callbacks grp_cbs = {
		.on_joined = group_on_joined,
		.on_member_joined = group_on_member_joined,
		.on_member_left = group_on_member_left,
		.on_message = group_on_message,
		.on_lost = group_on_lost,
	};
	static const struct quorum_watch_callbacks q_cbs = {.on_change = quorum_on_change};
	static const uint8_t zero[FRAME_BOOT_ID_SIZE];
	int req;
	struct detector_config dc = {(uint32_t)cfg->peer_heartbeat_interval_ms,
				     (uint32_t)cfg->peer_hang_timeout_ms};
	struct peer_link_config lc;
	struct timeval hb = clock_tv_ms((uint64_t)cfg->peer_heartbeat_interval_ms);
	struct cpg_transport *t;

	if (detector_config_check(&dc) != 0) {
		log_warnx("peer: hang_timeout (%ums) must be at least %d heartbeat intervals (%ums)",
			  dc.dead_timeout_ms, DETECTOR_MIN_INTERVALS, dc.interval_ms);
		return NULL;
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		log_warn("peer: calloc");
		return NULL;
	}
	t->base = base;
	t->cbs = *cbs;
	t->arg = arg;
	t->node_id = (uint32_t)cfg->node_id;
	t->interval_ms = dc.interval_ms;
	t->hang_ms = dc.dead_timeout_ms;
	t->connect_timeout_ms = (uint32_t)cfg->peer_connect_timeout_ms;
	t->created_us = (uint64_t)clock_mono_us();
	while (memcmp(t->boot_id, zero, sizeof zero) == 0)
		if (RAND_bytes(t->boot_id, FRAME_BOOT_ID_SIZE) != 1) {
			log_warnx("peer: no randomness for the boot id");
			goto fail;
		}
	detector_init(&t->det, &dc, (uint64_t)clock_mono_ms());
	t->hb_timer = event_new(base, -1, EV_PERSIST, hb_cb, t);
	t->dead_timer = evtimer_new(base, dead_cb, t);
	t->bye_timer = evtimer_new(base, bye_timeout_cb, t);
	t->finish_ev = event_new(base, -1, 0, finish_cb, t);
	if (!t->hb_timer || !t->dead_timer || !t->bye_timer || !t->finish_ev) {
		log_warnx("peer: out of memory");
		goto fail;
	}
	/* Replication's path: the tcp peer link with the same boot id, its timeouts kept to
	 * itself (data_on_down only pauses replication). */
	peer_link_config_from(&lc, cfg);
	memcpy(lc.boot_id, t->boot_id, FRAME_BOOT_ID_SIZE);
	t->data = peer_link_new(base, &lc, &data_cbs, t);
	if (!t->data)
		goto fail;
	t->grp = cpg_group_new(base, cfg->peer_cpg_group, &grp_cbs, t);
	if (!t->grp)
		goto fail;
	req = quorum_require_parse(cfg->peer_require_quorum);
	if (req < 0) {
		log_warnx("peer: require_quorum must be auto, yes or no");
		goto fail;
	}
	if (req != QUORUM_REQUIRE_NO) {
		t->quorum_ev = event_new(base, -1, 0, quorum_ev_cb, t);
		t->quorum_hold = evtimer_new(base, quorum_hold_cb, t);
		t->qw = quorum_watch_new(base, (enum quorum_require)req, &q_cbs, t);
		if (!t->quorum_ev || !t->quorum_hold || !t->qw)
			goto fail;
		/* Until corosync answers the quorum is unknown: say so once the loop runs. */
		event_active(t->quorum_ev, EV_TIMEOUT, 0);
	}
	evtimer_add(t->hb_timer, &hb);
	log_info("peer: corosync transport: CPG group \"%s\", hang timeout %ums, require_quorum "
		 "%s; replication over TLS", cfg->peer_cpg_group, t->hang_ms,
		 quorum_require_name((enum quorum_require)req));
	return peer_transport_wrap(&cpg_ops, t);
fail:
	cpg_free(t);
	return NULL;
}
