/* ADMIT frames (docs/route-protocol.md): while the route link is up, this engine tells its
 * peer every ROUTE_ADMIT_MS how its login admission looks -- capacity, logins in progress,
 * logins and refusals so far -- so that a planned move towards it is paced by what it takes
 * (engine/release.h); and it hands the peer's reports to the release in progress here. */
#include <stdio.h>

#include <event2/event.h>

#include "engine/engine.h"
#include "engine/release.h"
#include "engine/route.h"

static struct event *admit_timer;

static void send_admit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (!route_link_up())
		return;
	double cap = login_capacity_per_s();
	/* Waiting in the login queue is in progress too, for the peer pacing a release. */
	long inflight = login_inflight() + login_queue_length();
	struct route_admit a = {
		.capacity = cap > 0 ? (uint64_t)cap : 0,
		.inflight = inflight > 0 ? (uint64_t)inflight : 0,
		.logins = server.stats.logins,
		.refused = server.stats.logins_throttled,
	};
	char buf[96];
	int n = route_admit_format(buf, sizeof buf, &a);
	if (n > 0)
		route_link_send(ROUTE_ADMIT, buf, (size_t)n, NULL, 0);
}

void route_admit_start(void)
{
	if (!admit_timer)
		admit_timer = event_new(server.base, -1, EV_PERSIST, send_admit, NULL);
	if (!admit_timer)
		return;
	struct timeval tv = {0, ROUTE_ADMIT_MS * 1000};
	event_add(admit_timer, &tv);
	send_admit(-1, 0, NULL);
}

void route_admit_stop(void)
{
	if (admit_timer)
		event_del(admit_timer);
}

int route_admit_received(const char *payload, size_t len)
{
	struct route_admit a;
	if (route_admit_parse(payload, len, &a) < 0)
		return -1;
	release_peer_admit(&a);
	return 0;
}
