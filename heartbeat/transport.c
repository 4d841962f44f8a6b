/* The transport interface (transport.h): picks the implementation and forwards to it. */
#include "heartbeat/transport.h"

#include <stdlib.h>
#include <string.h>

#include "heartbeat/cpg_transport.h"
#include "lib/config.h"
#include "lib/log.h"

struct peer_transport {
	const struct peer_transport_ops *ops;
	void *impl;
};

struct peer_transport *peer_transport_wrap(const struct peer_transport_ops *ops, void *impl)
{
	struct peer_transport *t = calloc(1, sizeof *t);

	if (!t) {
		log_warn("peer: calloc");
		ops->free(impl);
		return NULL;
	}
	t->ops = ops;
	t->impl = impl;
	return t;
}

struct peer_transport *peer_transport_new(struct event_base *base, const struct duet_config *cfg,
					  const struct peer_transport_callbacks *cbs, void *arg)
{
	if (strcmp(cfg->peer_transport, "corosync") == 0)
		return cpg_transport_new(base, cfg, cbs, arg);
	if (strcmp(cfg->peer_transport, "tcp") == 0)
		return transport_tcp_new(base, cfg, cbs, arg);
	log_warnx("peer: unknown transport \"%s\"", cfg->peer_transport);
	return NULL;
}

void peer_transport_free(struct peer_transport *t)
{
	if (!t)
		return;
	t->ops->free(t->impl);
	free(t);
}

void peer_transport_set_local_state(struct peer_transport *t, const struct hb_state *st)
{
	t->ops->set_local_state(t->impl, st);
}

int peer_transport_send_app(struct peer_transport *t, uint16_t subtype, const void *payload,
			    size_t len)
{
	return t->ops->send_app(t->impl, subtype, payload, len);
}

void peer_transport_goodbye(struct peer_transport *t, int goodbye_reason)
{
	t->ops->goodbye(t->impl, goodbye_reason);
}

void peer_transport_stats_get(const struct peer_transport *t, struct peer_link_stats *out)
{
	t->ops->stats_get(t->impl, out);
}

const char *peer_transport_name(const struct peer_transport *t)
{
	return t->ops->name;
}
