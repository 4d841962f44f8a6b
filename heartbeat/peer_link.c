/* The tcp peer link: listening, dialing with backoff, TLS with mutual certificates, the HELLO
 * exchange, choosing one connection when both nodes dialed, heartbeats with RTT echo, and
 * goodbye.  Failure detection itself is heartbeat/detector.c; the wire format frame.c.  This
 * file holds the configuration, creation and teardown; the other parts are in the
 * peer_link_*.c files named in peer_link_internal.h.
 *
 * Connections live in a list.  Closing one only marks it dead and disables it; a reaper
 * event frees it later, so a callback (ours or the user's) never frees a bufferevent whose
 * read loop is still running. */
#include "heartbeat/peer_link_internal.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "heartbeat/peer_tls.h"
#include "lib/clock.h"
#include "lib/config.h"
#include "lib/log.h"

static void link_closed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;

	if (link->cbs.on_closed)
		link->cbs.on_closed(link->arg);
}

/* ---- public ---- */

void peer_link_config_from(struct peer_link_config *out, const struct duet_config *cfg)
{
	memset(out, 0, sizeof *out);
	out->node_id = (uint32_t)cfg->node_id;
	out->listen = cfg->peer_listen;
	out->peer_address = cfg->peer_address;
	out->peer_name = cfg->peer_node_name;
	out->tls_ca = cfg->peer_tls_ca;
	out->tls_cert = cfg->peer_tls_cert;
	out->tls_key = cfg->peer_tls_key;
	out->heartbeat_interval_ms = (uint32_t)cfg->peer_heartbeat_interval_ms;
	out->dead_timeout_ms = (uint32_t)cfg->peer_dead_timeout_ms;
	out->connect_timeout_ms = (uint32_t)cfg->peer_connect_timeout_ms;
}

static bool str_set(const char *s)
{
	return s && s[0];
}

static int config_check(const struct peer_link_config *cfg)
{
	struct detector_config dc = {cfg->heartbeat_interval_ms, cfg->dead_timeout_ms};

	if (cfg->node_id == 0) {
		log_warnx("peer: node id must be non-zero");
		return -1;
	}
	if (!str_set(cfg->peer_name) || !str_set(cfg->tls_ca) || !str_set(cfg->tls_cert) ||
	    !str_set(cfg->tls_key)) {
		log_warnx("peer: node_name, tls_ca, tls_cert and tls_key are required");
		return -1;
	}
	if (!str_set(cfg->listen) && !str_set(cfg->peer_address)) {
		log_warnx("peer: neither listen nor peer_address is set");
		return -1;
	}
	if (detector_config_check(&dc) != 0) {
		log_warnx("peer: dead_timeout (%ums) must be at least %d heartbeat intervals (%ums)",
			  cfg->dead_timeout_ms, DETECTOR_MIN_INTERVALS, cfg->heartbeat_interval_ms);
		return -1;
	}
	if (cfg->connect_timeout_ms == 0) {
		log_warnx("peer: connect_timeout must be non-zero");
		return -1;
	}
	return 0;
}

struct peer_link *peer_link_new(struct event_base *base, const struct peer_link_config *cfg,
				const struct peer_link_callbacks *cbs, void *arg)
{
	struct peer_link *link;
	struct detector_config dc = {cfg->heartbeat_interval_ms, cfg->dead_timeout_ms};
	struct timeval hb = clock_tv_ms(cfg->heartbeat_interval_ms);
	static const uint8_t zero[FRAME_BOOT_ID_SIZE];

	if (config_check(cfg) != 0)
		return NULL;
	link = calloc(1, sizeof *link);
	if (!link) {
		log_warn("peer: calloc");
		return NULL;
	}
	link->base = base;
	link->cfg = *cfg;
	link->cbs = *cbs;
	link->arg = arg;
	link->created_us = (uint64_t)clock_mono_us();
	link->listen = strdup(str_set(cfg->listen) ? cfg->listen : "");
	link->peer_address = strdup(str_set(cfg->peer_address) ? cfg->peer_address : "");
	link->peer_name = strdup(cfg->peer_name);
	/* Only our copies are used from here on. */
	link->cfg.listen = link->listen;
	link->cfg.peer_address = link->peer_address;
	link->cfg.peer_name = link->peer_name;
	link->cfg.tls_ca = link->cfg.tls_cert = link->cfg.tls_key = NULL;
	while (memcmp(link->cfg.boot_id, zero, sizeof zero) == 0)
		if (RAND_bytes(link->cfg.boot_id, FRAME_BOOT_ID_SIZE) != 1) {
			log_warnx("peer: no randomness for the boot id");
			goto fail;
		}
	detector_init(&link->det, &dc, (uint64_t)clock_mono_ms());
	link->hb_timer = event_new(base, -1, EV_PERSIST, peer_link_hb_cb, link);
	link->dead_timer = evtimer_new(base, peer_link_dead_timer_cb, link);
	link->dial_timer = evtimer_new(base, peer_link_dial_cb, link);
	link->reap_ev = event_new(base, -1, 0, peer_link_reap_cb, link);
	link->closed_ev = event_new(base, -1, 0, link_closed_cb, link);
	if (!link->listen || !link->peer_address || !link->peer_name || !link->hb_timer ||
	    !link->dead_timer || !link->dial_timer || !link->reap_ev || !link->closed_ev) {
		log_warnx("peer: out of memory");
		goto fail;
	}
	link->ctx = peer_tls_context_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key);
	if (!link->ctx)
		goto fail;
	if (link->peer_address[0] &&
	    peer_address_resolve(link->peer_address, &link->peer_sa, &link->peer_salen) != 0) {
		log_warnx("peer: cannot parse or resolve peer_address \"%s\"", link->peer_address);
		goto fail;
	}
	if (link->listen[0] && peer_link_listen(link) != 0)
		goto fail;
	evtimer_add(link->hb_timer, &hb);
	peer_link_dial_schedule(link, 0);
	return link;
fail:
	peer_link_free(link);
	return NULL;
}

void peer_link_free(struct peer_link *link)
{
	struct peer_conn *c, *next;

	if (!link)
		return;
	for (c = link->conns; c; c = next) {
		next = c->next;
		peer_conn_destroy(c);
	}
	if (link->listener)
		evconnlistener_free(link->listener);
	if (link->hb_timer)
		event_free(link->hb_timer);
	if (link->dead_timer)
		event_free(link->dead_timer);
	if (link->dial_timer)
		event_free(link->dial_timer);
	if (link->reap_ev)
		event_free(link->reap_ev);
	if (link->closed_ev)
		event_free(link->closed_ev);
	SSL_CTX_free(link->ctx);
	free(link->listen);
	free(link->peer_address);
	free(link->peer_name);
	free(link);
}

void peer_link_stats_get(const struct peer_link *link, struct peer_link_stats *out)
{
	*out = link->st;
	out->last_rx_age_ms = link->last_rx_us ? ((uint64_t)clock_mono_us() - link->last_rx_us) / 1000u : 0;
}

const uint8_t *peer_link_boot_id(const struct peer_link *link)
{
	return link->cfg.boot_id;
}

int peer_link_listen_port(const struct peer_link *link)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (!link->listener ||
	    getsockname(evconnlistener_get_fd(link->listener), (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

const char *peer_down_reason_name(enum peer_down_reason reason)
{
	switch (reason) {
	case PEER_DOWN_TIMEOUT:
		return "timeout";
	case PEER_DOWN_GOODBYE:
		return "goodbye";
	case PEER_DOWN_PROTOCOL:
		return "protocol-error";
	case PEER_DOWN_RESTARTED:
		return "restarted";
	case PEER_DOWN_MEMBERSHIP:
		return "membership";
	}
	return "?";
}
