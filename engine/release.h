/* Planned moves (docs/login-profiles.md, "Planned moves"): the sessions of a home node this
 * engine stops serving end with see-other-host (or system-shutdown), one after another,
 * spread over the re-login window -- but no faster than the engine that receives them
 * admits logins.  That engine reports its admission over the route link (ADMIT, every
 * ROUTE_ADMIT_MS); release_pace.c turns the reports into the rate of the releases.
 *
 *   release.c       the queue of sessions to end, drained by a timer at the pace's rate
 *   release_pace.c  the pace: pure, driven by reports and a clock (tests/unit) */
#ifndef DUET_RELEASE_H
#define DUET_RELEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/route.h"

#define ROUTE_ADMIT_MS 250 /* how often an engine reports its admission to its peer */

struct release_pace {
	double base;  /* sessions/s the window asks for: count / window */
	double floor; /* never slower than this: the release ends within PACE_MAX_STRETCH windows */
	double rate;  /* sessions/s now, once the receiver reported */
	bool reported;
	int64_t report_ms; /* when the last report came */
	uint64_t refused;  /* the receiver's refusals at the last report */
};

void release_pace_start(struct release_pace *p, double base_per_s);
/* A report of the receiving engine at now_ms. */
void release_pace_report(struct release_pace *p, const struct route_admit *a, int64_t now_ms);
/* Sessions per second to release now.  Without a fresh report (no route link, a peer that
 * does not report, or a release with no target engine) it is the window's own rate. */
double release_pace_rate(const struct release_pace *p, int64_t now_ms);

/* release.c */
void release_cancel(int node); /* control.c: home node served again, its sessions stay */
void release_peer_admit(const struct route_admit *a); /* route.c: an ADMIT arrived */
long release_pending(void);                           /* sessions still to release */

#endif
