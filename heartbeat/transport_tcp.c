/* The `tcp` transport: the peer link (peer_link.c) as it is.  Its one connection is both the
 * state machine's view of the peer and replication's path, so every up/reconnect is also a
 * data-up (reported first: replication is ready before the state machine acts) and every
 * down also a data-down. */
#include "heartbeat/transport.h"

#include <stdlib.h>

#include "lib/log.h"

struct transport_tcp {
	struct peer_link *link;
	struct peer_transport_callbacks cbs;
	void *arg;
};

static void tcp_on_up(void *arg, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
		      const struct frame_hello *hello)
{
	struct transport_tcp *t = arg;

	t->cbs.on_data_up(t->arg);
	t->cbs.on_up(t->arg, boot_id, hello);
}

static void tcp_on_down(void *arg, enum peer_down_reason reason, int goodbye_reason)
{
	struct transport_tcp *t = arg;

	t->cbs.on_data_down(t->arg);
	t->cbs.on_down(t->arg, reason, goodbye_reason);
}

static void tcp_on_reconnect(void *arg)
{
	struct transport_tcp *t = arg;

	t->cbs.on_data_up(t->arg);
	if (t->cbs.on_reconnect)
		t->cbs.on_reconnect(t->arg);
}

static void tcp_on_heartbeat(void *arg, const struct hb_state *st)
{
	struct transport_tcp *t = arg;

	t->cbs.on_heartbeat(t->arg, st);
}

static void tcp_on_app(void *arg, uint16_t subtype, const uint8_t *payload, size_t len)
{
	struct transport_tcp *t = arg;

	t->cbs.on_app(t->arg, subtype, payload, len);
}

static void tcp_on_closed(void *arg)
{
	struct transport_tcp *t = arg;

	if (t->cbs.on_closed)
		t->cbs.on_closed(t->arg);
}

static void tcp_free(void *impl)
{
	struct transport_tcp *t = impl;

	if (!t)
		return;
	peer_link_free(t->link);
	free(t);
}

static void tcp_set_local_state(void *impl, const struct hb_state *st)
{
	struct transport_tcp *t = impl;

	peer_link_set_local_state(t->link, st);
}

static int tcp_send_app(void *impl, uint16_t subtype, const void *payload, size_t len)
{
	struct transport_tcp *t = impl;

	return peer_link_send_app(t->link, subtype, payload, len);
}

static void tcp_goodbye(void *impl, int goodbye_reason)
{
	struct transport_tcp *t = impl;

	peer_link_goodbye(t->link, goodbye_reason);
}

static void tcp_stats_get(const void *impl, struct peer_link_stats *out)
{
	const struct transport_tcp *t = impl;

	peer_link_stats_get(t->link, out);
}

static const struct peer_transport_ops tcp_ops = {
	.name = "tcp",
	.free = tcp_free,
	.set_local_state = tcp_set_local_state,
	.send_app = tcp_send_app,
	.goodbye = tcp_goodbye,
	.stats_get = tcp_stats_get,
};

struct peer_transport *transport_tcp_new(struct event_base *base, const struct duet_config *cfg,
					 const struct peer_transport_callbacks *cbs, void *arg)
{
	static const struct peer_link_callbacks link_cbs = {
		.on_up = tcp_on_up,
		.on_down = tcp_on_down,
		.on_heartbeat = tcp_on_heartbeat,
		.on_app = tcp_on_app,
		.on_reconnect = tcp_on_reconnect,
		.on_closed = tcp_on_closed,
	};
	struct peer_link_config lc;
	struct transport_tcp *t = calloc(1, sizeof *t);

	if (!t) {
		log_warn("peer: calloc");
		return NULL;
	}
	t->cbs = *cbs;
	t->arg = arg;
	peer_link_config_from(&lc, cfg);
	t->link = peer_link_new(base, &lc, &link_cbs, t);
	if (!t->link) {
		free(t);
		return NULL;
	}
	return peer_transport_wrap(&tcp_ops, t);
}
