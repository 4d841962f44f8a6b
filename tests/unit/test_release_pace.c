/* The pace of a planned move (engine/release_pace.c): it follows the receiving engine's
 * ADMIT reports, and against a simulated receiver it keeps the crowd it sends within what
 * that receiver takes, where the window's own rate would swamp it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/release.h"

static struct route_admit report(uint64_t cap, uint64_t inflight, uint64_t refused)
{
	return (struct route_admit){.capacity = cap, .inflight = inflight, .refused = refused};
}

static void window_rate_without_reports(void **state)
{
	struct release_pace p;
	release_pace_start(&p, 1500);
	assert_true(release_pace_rate(&p, 0) == 1500);
	struct route_admit a = report(600, 0, 0);
	release_pace_report(&p, &a, 1000);
	assert_true(release_pace_rate(&p, 1000) == 600); /* starts at the receiver's capacity */
	assert_true(release_pace_rate(&p, 2999) == 600);
	assert_true(release_pace_rate(&p, 3001) == 1500); /* reports stopped: the window's */
}

static void capacity_above_the_window(void **state)
{
	struct release_pace p;
	release_pace_start(&p, 100);
	struct route_admit a = report(5000, 0, 0);
	release_pace_report(&p, &a, 0);
	assert_true(release_pace_rate(&p, 0) == 100);
	for (int i = 1; i < 50; i++) { /* keeps up: never above the window's rate */
		release_pace_report(&p, &a, i * 250);
		assert_true(release_pace_rate(&p, i * 250) <= 100);
	}
	assert_true(release_pace_rate(&p, 49 * 250) == 100);
}

static void refusals_slow_down_to_the_floor(void **state)
{
	struct release_pace p;
	release_pace_start(&p, 1200);
	struct route_admit a = report(0, 0, 0); /* capacity unknown: the window's rate */
	release_pace_report(&p, &a, 0);
	assert_true(release_pace_rate(&p, 0) == 1200);
	a.refused = 10;
	release_pace_report(&p, &a, 250);
	double r1 = release_pace_rate(&p, 250);
	assert_true(r1 < 1200 && r1 > 500);
	for (int i = 2; i < 40; i++) {
		a.refused += 10;
		release_pace_report(&p, &a, i * 250);
	}
	assert_true(release_pace_rate(&p, 40 * 250) == 200); /* 1200 / 6: ends within 6 windows */
	/* The same count again: no new refusal; inflight high: still slower. */
	a.inflight = 400;
	release_pace_report(&p, &a, 41 * 250);
	assert_true(release_pace_rate(&p, 41 * 250) == 200);
	/* It keeps up again: the pace grows back. */
	a.inflight = 10;
	for (int i = 42; i < 80; i++)
		release_pace_report(&p, &a, i * 250);
	assert_true(release_pace_rate(&p, 80 * 250) == 1200);
}

/* A receiver that finishes `cap` logins per second, holds at most 500 in progress and
 * refuses the rest with a retry-after of 5 s (a refusal costs it a tenth of a login), fed
 * 15,000 sessions: paced by its reports, or at the window's rate. */
#define RETRY_TICKS 20 /* 5 s in ticks of 250 ms */
static void simulate(double cap, double base, bool paced, long *refused, double *seconds)
{
	struct release_pace p;
	release_pace_start(&p, base);
	double left = 15000, inflight = 0, refusals = 0, back[RETRY_TICKS] = {0}, waiting = 0;
	int64_t t = 0;
	for (int tick = 0; left > 0 || inflight >= 1 || waiting >= 1; tick++, t += 250) {
		if (paced) {
			struct route_admit a = report((uint64_t)(cap * 0.8), (uint64_t)inflight,
						      (uint64_t)refusals);
			release_pace_report(&p, &a, t);
		}
		double rate = paced ? release_pace_rate(&p, t) : base;
		double send = rate * 0.25 < left ? rate * 0.25 : left;
		left -= send;
		double returning = back[tick % RETRY_TICKS];
		back[tick % RETRY_TICKS] = 0;
		waiting -= returning;
		inflight += send + returning;
		double budget = cap * 0.25;
		if (inflight > 500) {
			double over = inflight - 500;
			refusals += over;
			back[(tick + RETRY_TICKS - 1) % RETRY_TICKS] += over;
			waiting += over;
			inflight = 500;
			budget -= over * 0.1;
		}
		double done = budget < 0 ? 0 : budget < inflight ? budget : inflight;
		inflight -= done;
		assert_true(t < 3600 * 1000);
	}
	*refused = (long)refusals;
	*seconds = (double)t / 1000;
}

static void paced_release_spares_a_slow_receiver(void **state)
{
	long refused_paced, refused_window;
	double s_paced, s_window;
	simulate(600, 1500, true, &refused_paced, &s_paced);
	simulate(600, 1500, false, &refused_window, &s_window);
	print_message("receiver 600/s: paced %ld refusals in %.1f s; at the window's rate %ld "
		      "in %.1f s\n",
		      refused_paced, s_paced, refused_window, s_window);
	assert_true(refused_window > 15000);
	assert_true(refused_paced < refused_window / 20);
	assert_true(s_paced < s_window);
	assert_true(s_paced < 15000 / 600.0 * 1.3); /* close to what the receiver can do */
	/* A fast receiver: the window's rate, 10 s. */
	simulate(3000, 1500, true, &refused_paced, &s_paced);
	assert_int_equal(refused_paced, 0);
	assert_true(s_paced <= 10.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(window_rate_without_reports),
		cmocka_unit_test(capacity_above_the_window),
		cmocka_unit_test(refusals_slow_down_to_the_floor),
		cmocka_unit_test(paced_release_spares_a_slow_receiver),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
