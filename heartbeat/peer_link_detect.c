/* The failure detector wired to the link: its events become log lines, stats and the user's
 * callbacks; the dead timer ticks it. */
#include "heartbeat/peer_link_internal.h"

#include <stdio.h>

#include <event2/event.h>

#include "lib/clock.h"
#include "lib/log.h"

static void link_dead_timer_arm(struct peer_link *link)
{
	uint64_t ms = detector_next_deadline(&link->det, (uint64_t)clock_mono_ms());
	struct timeval tv;

	if (ms == UINT64_MAX) {
		evtimer_del(link->dead_timer);
		return;
	}
	/* +1: libevent may fire a hair early relative to our own clock reading. */
	tv = clock_tv_ms(ms + 1);
	evtimer_add(link->dead_timer, &tv);
}

void peer_link_report(struct peer_link *link, enum detector_event ev,
			enum peer_down_reason reason, int goodbye_reason)
{
	char hex[2 * FRAME_BOOT_ID_SIZE + 1];

	switch (ev) {
	case DET_NONE:
		return;
	case DET_PEER_RESTARTED:
		log_info("peer: node %u restarted (new boot id) without saying goodbye",
			 link->peer_id);
		link->st.downs++;
		link->st.up = 0;
		if (link->cbs.on_down)
			link->cbs.on_down(link->arg, PEER_DOWN_RESTARTED, 0);
		/* It is up again with the new boot id. */
		__attribute__((fallthrough));
	case DET_PEER_UP:
		for (int i = 0; i < FRAME_BOOT_ID_SIZE; i++)
			snprintf(hex + 2 * i, 3, "%02x", link->peer_hello.boot_id[i]);
		log_info("peer: node %u up, boot id %s", link->peer_id, hex);
		link->st.ups++;
		link->st.up = 1;
		link_dead_timer_arm(link);
		if (link->cbs.on_up)
			link->cbs.on_up(link->arg, link->peer_hello.boot_id, &link->peer_hello);
		return;
	case DET_PEER_DOWN:
	case DET_PEER_GOODBYE:
		if (reason == PEER_DOWN_GOODBYE)
			log_info("peer: node %u said goodbye (%s)", link->peer_id,
				 goodbye_reason_name(goodbye_reason));
		else
			log_warnx("peer: node %u down: %s", link->peer_id,
				  peer_down_reason_name(reason));
		link->st.downs++;
		link->st.up = 0;
		evtimer_del(link->dead_timer);
		if (link->cbs.on_down)
			link->cbs.on_down(link->arg, reason, goodbye_reason);
		return;
	}
}

void peer_link_dead_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_link *link = arg;
	enum detector_event ev = detector_tick(&link->det, (uint64_t)clock_mono_ms());

	if (ev == DET_PEER_DOWN) {
		/* The connection, if any, has been silent for the whole timeout: it is stalled or
		 * half-open.  Drop it and dial afresh. */
		if (link->session)
			peer_conn_close(link->session);
		peer_link_report(link, ev, PEER_DOWN_TIMEOUT, 0);
		return;
	}
	link_dead_timer_arm(link);
}
