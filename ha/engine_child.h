/* Supervision of the presence engine: srmd's child process, spoken to over a socketpair with
 * the line protocol of docs/engine-protocol.md.  Starts it (hello, serve), checks health
 * every interval, kills it when its replies are overdue, restarts it with growing backoff
 * (not after the configuration-fault exit code 2), and stops it politely then firmly.
 * All on the caller's libevent loop; the caller forwards SIGCHLD to engine_child_reap(). */
#ifndef DUET_ENGINE_CHILD_H
#define DUET_ENGINE_CHILD_H

#include <sys/types.h>

struct event_base;
struct engine_child;
struct engine_child_req;

enum engine_child_state {
	ENGINE_IDLE,     /* never started, or stopped on request */
	ENGINE_STARTING, /* running, has not said ready yet */
	ENGINE_READY,    /* running and said ready */
	ENGINE_BACKOFF,  /* exited unexpectedly; a restart is scheduled */
	ENGINE_FAULT,    /* exited with code 2 (configuration fault): not restarted */
	ENGINE_STOPPING, /* stop requested, waiting for the process to exit */
};

/* Called after every change of state or of the health answer. */
typedef void (*engine_child_change_cb)(void *arg);
/* reply is the engine's reply line (it may start with "error"), or NULL when the engine went
 * away before answering.  The request handle is invalid once this runs. */
typedef void (*engine_child_reply_cb)(void *arg, const char *reply);

/* program and config_path are copied.  No process is started yet. */
struct engine_child *engine_child_new(struct event_base *base, const char *program,
				      const char *config_path, long health_interval_ms,
				      engine_child_change_cb cb, void *arg);
/* Kills a still running engine (SIGKILL, blocking wait) and drops pending requests without
 * calling their callbacks: cancel your requests first. */
void engine_child_free(struct engine_child *ec);

/* The argument of `serve` ("1", "1,2" or "-"): sent now when connected, and after every
 * (re)start. */
int engine_child_set_serve(struct engine_child *ec, const char *serve);
/* The re-login limits the engine advertises (`relogin`), sent now and at every start. */
void engine_child_set_relogin(struct engine_child *ec, long lower_ms, long upper_ms);
/* Start the engine (state IDLE or FAULT).  0, or -1 if fork/socketpair failed. */
int engine_child_start(struct engine_child *ec);
/* Recovery: start the engine now if it is waiting for a restart (backoff), stopped or in
 * a configuration fault, with the backoff reset.  A running engine is left alone. */
void engine_child_restart_now(struct engine_child *ec);
/* Send `stop`, wait with doubling delays up to 5 s, then SIGKILL; done(arg) runs once the
 * process is gone (at once, before returning, when no process runs). */
void engine_child_stop(struct engine_child *ec, void (*done)(void *arg), void *arg);
/* Collect the engine if it exited (call on SIGCHLD; harmless otherwise). */
void engine_child_reap(struct engine_child *ec);

/* Send one request line (no newline; at most 1000 bytes).  NULL when the engine is not
 * connected (or stopping) or on allocation failure: cb is then never called. */
struct engine_child_req *engine_child_request(struct engine_child *ec, const char *line,
					      engine_child_reply_cb cb, void *arg);
/* Its callback will not be called. */
void engine_child_req_cancel(struct engine_child_req *req);

enum engine_child_state engine_child_state(const struct engine_child *ec);
const char *engine_child_state_name(enum engine_child_state st);
pid_t engine_child_pid(const struct engine_child *ec);       /* 0 when none */
/* Last health answer: "ok", "db-down", "no-listener", or our own "overdue" (hung),
 * "disconnected" (socket closed), "-" (no answer yet). */
const char *engine_child_health(const struct engine_child *ec);
unsigned engine_child_restarts(const struct engine_child *ec);
/* How the last engine process ended ("exited with code 1", "killed by signal 9"), or "". */
const char *engine_child_last_exit(const struct engine_child *ec);

#endif
