/* Tests for ha/notify.c on a real event loop with real scripts: arguments and DUET_*
 * environment, runs one at a time in transition order, a script that ignores SIGTERM is
 * killed after the timeout and the next run goes on, a missing script counts as failed,
 * a full queue drops the oldest waiting run, and no script leaves the log-only mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "ha/notify.h"

struct loop {
	struct event_base *base;
	struct event *sigchld;
	struct notify *n;
	char dir[64];
};

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	notify_reap(l->n);
}

static void write_script(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	fclose(f);
	assert_int_equal(chmod(path, 0700), 0);
}

static void loop_open(struct loop *l, const char *body, long timeout_ms)
{
	memset(l, 0, sizeof *l);
	snprintf(l->dir, sizeof l->dir, "/tmp/dnotify.XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	char script[128];
	snprintf(script, sizeof script, "%s/hook", l->dir);
	if (body)
		write_script(script, body);
	l->base = event_base_new();
	assert_non_null(l->base);
	l->n = notify_new(l->base, script, timeout_ms, 2);
	assert_non_null(l->n);
	l->sigchld = evsignal_new(l->base, SIGCHLD, on_sigchld, l);
	assert_int_equal(evsignal_add(l->sigchld, NULL), 0);
	assert_int_equal(setenv("DUET_TEST_OUT", l->dir, 1), 0);
	/* An old DUET_REASON in our environment must not reach the script. */
	assert_int_equal(setenv("DUET_REASON", "stale", 1), 0);
}

static void loop_close(struct loop *l)
{
	notify_free(l->n);
	event_free(l->sigchld);
	event_base_free(l->base);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", l->dir);
	assert_int_equal(system(cmd), 0);
}

/* Run the loop until done(counters) or the deadline (seconds). */
static int run_until(struct loop *l, int (*done)(const struct notify_counters *c, long want),
		     long want, int seconds)
{
	time_t deadline = time(NULL) + seconds;
	struct notify_counters c;
	for (;;) {
		notify_counters_get(l->n, &c);
		if (done(&c, want))
			return 1;
		if (time(NULL) > deadline)
			return 0;
		struct timeval tv = {0, 20000};
		event_base_loopexit(l->base, &tv);
		event_base_dispatch(l->base);
	}
}

static int ok_runs(const struct notify_counters *c, long want)
{
	return (long)c->runs_ok >= want;
}

static int finished_runs(const struct notify_counters *c, long want)
{
	return (long)(c->runs_ok + c->runs_failed + c->runs_timeout) >= want;
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void args_env_order(void **state)
{
	struct loop l;
	loop_open(&l, "echo \"$1|$2|$3|$DUET_OLD_STATE|$DUET_NEW_STATE|$DUET_REASON|"
		      "$DUET_OLD_REASON|$DUET_NODE_ID|$DUET_TRANSITION\" >>\"$DUET_TEST_OUT/out\"\n"
		      "sleep 0.05\n",
		  5000);
	notify_transition(l.n, "Normal", "Normal", "Failing Over", "On Admin Request");
	notify_transition(l.n, "Failing Over", "On Admin Request", "Idle", "On Admin Request");
	assert_true(run_until(&l, ok_runs, 2, 20));
	char out[128];
	snprintf(out, sizeof out, "%s/out", l.dir);
	assert_string_equal(slurp(out),
			    "Normal|Failing Over|On Admin Request|Normal|Failing Over|"
			    "On Admin Request|Normal|2|1\n"
			    "Failing Over|Idle|On Admin Request|Failing Over|Idle|On Admin Request|"
			    "On Admin Request|2|2\n");
	struct notify_counters c;
	notify_counters_get(l.n, &c);
	assert_int_equal(c.transitions, 2);
	assert_int_equal(c.runs_failed + c.runs_timeout + c.runs_dropped, 0);
	loop_close(&l);
}

static void timeout_kills_then_next(void **state)
{
	struct loop l;
	/* The first run ignores SIGTERM and hangs: SIGKILL follows a second after. */
	loop_open(&l, "echo \"$2\" >>\"$DUET_TEST_OUT/out\"\n"
		      "if [ \"$2\" = Hang ]; then trap '' TERM; sleep 30; fi\n",
		  200);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	notify_transition(l.n, "Normal", "Normal", "Hang", "x");
	notify_transition(l.n, "Hang", "x", "After", "y");
	assert_true(run_until(&l, finished_runs, 2, 20));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct notify_counters c;
	notify_counters_get(l.n, &c);
	assert_int_equal(c.runs_timeout, 1);
	assert_int_equal(c.runs_ok, 1);
	char out[128];
	snprintf(out, sizeof out, "%s/out", l.dir);
	assert_string_equal(slurp(out), "Hang\nAfter\n");
	/* 200 ms + 1 s grace, far from the script's 30 s. */
	assert_true(t1.tv_sec - t0.tv_sec < 10);
	loop_close(&l);
}

static void missing_script_fails(void **state)
{
	struct loop l;
	loop_open(&l, NULL, 1000);
	notify_transition(l.n, "Normal", "Normal", "Idle", "On Admin Request");
	struct notify_counters c;
	notify_counters_get(l.n, &c);
	assert_int_equal(c.runs_failed, 1); /* posix_spawn reports it at once */
	assert_int_equal(c.transitions, 1);
	loop_close(&l);
}

static void queue_overflow_drops_oldest(void **state)
{
	struct loop l;
	loop_open(&l, "echo \"$DUET_TRANSITION\" >>\"$DUET_TEST_OUT/out\"\n", 5000);
	int total = NOTIFY_QUEUE + 8;
	for (int i = 0; i < total; i++)
		notify_transition(l.n, "A", "r", "B", "r");
	struct notify_counters c;
	notify_counters_get(l.n, &c);
	/* One runs, NOTIFY_QUEUE wait, the rest pushed out the oldest waiting ones. */
	assert_int_equal(c.runs_dropped, total - 1 - NOTIFY_QUEUE);
	assert_true(run_until(&l, ok_runs, 1 + NOTIFY_QUEUE, 30));
	char out[128];
	snprintf(out, sizeof out, "%s/out", l.dir);
	const char *text = slurp(out);
	assert_non_null(text);
	/* The first transition ran; then the newest NOTIFY_QUEUE ones, in order. */
	char want[1024];
	int off = snprintf(want, sizeof want, "1\n");
	for (int i = total - NOTIFY_QUEUE + 1; i <= total; i++)
		off += snprintf(want + off, sizeof want - (size_t)off, "%d\n", i);
	assert_string_equal(text, want);
	loop_close(&l);
}

static void log_only_without_script(void **state)
{
	struct event_base *base = event_base_new();
	struct notify *n = notify_new(base, "", 1000, 1);
	assert_non_null(n);
	notify_transition(n, "Initializing", "Initialization", "Normal", "Normal");
	notify_reap(n);
	struct notify_counters c;
	notify_counters_get(n, &c);
	assert_int_equal(c.transitions, 1);
	assert_int_equal(c.runs_ok + c.runs_failed + c.runs_timeout + c.runs_dropped, 0);
	notify_free(n);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(args_env_order),
		cmocka_unit_test(timeout_kills_then_next),
		cmocka_unit_test(missing_script_fails),
		cmocka_unit_test(queue_overflow_drops_oldest),
		cmocka_unit_test(log_only_without_script),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
