/* How fast a planned move ends sessions (engine/release.h).  The window alone (count /
 * upper limit) can ask more of the receiving engine than it can do: at 15,000 sessions and
 * 10 s, 1,500 logins/s, on a node that takes a few hundred.  The logins it could not take
 * are refused with retry-after, come back, are refused again, and the refusals themselves
 * use the CPU the logins needed (docs/benchmarks.md, scenario 3).  So the release follows
 * the receiver, like a congestion window: it starts at the receiver's capacity (if lower
 * than the window's rate), backs off multiplicatively when the receiver refuses logins or
 * piles them up unfinished, and grows back while it keeps up, never above the window's
 * rate nor below its floor. */
#include "engine/release.h"

#define PACE_FRESH_MS 2000    /* a report older than this is no longer followed */
#define PACE_INFLIGHT_HIGH 150 /* logins in progress at the receiver: it falls behind */
#define PACE_INFLIGHT_LOW 50   /* it keeps up: grow */
#define PACE_DOWN 0.7
#define PACE_UP 1.15
#define PACE_MAX_STRETCH 6.0 /* the release ends within this many windows */
#define PACE_MIN 1.0          /* sessions/s, at least */

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

void release_pace_start(struct release_pace *p, double base_per_s)
{
	*p = (struct release_pace){.base = base_per_s, .rate = base_per_s};
	p->floor = base_per_s / PACE_MAX_STRETCH;
	if (p->floor < PACE_MIN)
		p->floor = PACE_MIN;
	if (p->floor > p->base)
		p->floor = p->base;
}

void release_pace_report(struct release_pace *p, const struct route_admit *a, int64_t now_ms)
{
	bool refusing = p->reported && a->refused > p->refused;
	if (!p->reported) {
		/* The first report: start at what the receiver says it can take. */
		if (a->capacity > 0 && (double)a->capacity < p->rate)
			p->rate = (double)a->capacity;
	} else if (refusing || a->inflight > PACE_INFLIGHT_HIGH) {
		p->rate *= PACE_DOWN;
	} else if (a->inflight < PACE_INFLIGHT_LOW) {
		p->rate = p->rate * PACE_UP + PACE_MIN;
	}
	p->rate = clamp(p->rate, p->floor, p->base);
	p->reported = true;
	p->report_ms = now_ms;
	p->refused = a->refused;
}

double release_pace_rate(const struct release_pace *p, int64_t now_ms)
{
	if (!p->reported || now_ms - p->report_ms > PACE_FRESH_MS)
		return p->base;
	return p->rate;
}
