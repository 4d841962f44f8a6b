/* Engine supervision (see engine_child.h).  Ideas from OpenBSD relayd proc.c (socketpair
 * to a forked child), keepalived scheduler.c (restart backoff, no restart on a config-fault
 * exit) and nginx ngx_process_cycle.c (stop with doubling waits, then SIGKILL). */
#include "ha/engine_child.h"

#include "lib/clock.h"
#include "lib/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENGINE_MAX_LINE 65536      /* docs/engine-protocol.md */
#define ENGINE_MAX_REQUEST 1000
#define ENGINE_CONTROL_FD 3        /* the descriptor the child gets the socket on */
#define ENGINE_EXIT_CONFIG 2       /* the engine's "configuration fault" exit code */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define BACKOFF_RESET_MS 60000     /* this long healthy and the backoff starts over */
#define HUNG_INTERVALS 3           /* replies overdue by this many intervals = hung */
#define STARTUP_GRACE_MS 15000     /* presenced connects to the database before it answers */
#define STOP_FIRST_WAIT_MS 50
#define STOP_MAX_WAIT_MS 5000

struct engine_child_req {
	TAILQ_ENTRY(engine_child_req) entry;
	struct engine_child *ec;
	char name[32];             /* first word of the request: the reply starts with it */
	int64_t sent_ms;
	engine_child_reply_cb cb;  /* NULL once cancelled */
	void *arg;
};
TAILQ_HEAD(req_list, engine_child_req);

struct engine_child {
	struct event_base *base;
	char *program;
	char *config_path;
	char serve[256];
	long relogin_lower_ms, relogin_upper_ms; /* -1: not set (the engine's config rules) */
	long interval_ms;
	engine_child_change_cb change_cb;
	void *change_arg;

	enum engine_child_state state;
	pid_t pid;
	struct bufferevent *bev;   /* our end of the socketpair; NULL when closed */
	struct req_list pending;
	int64_t spawn_ms;
	int64_t eof_ms;            /* when the engine closed the socket without exiting yet */
	int64_t last_tick_ms;      /* the previous health tick: how long srmd itself was away */
	int said_hello;
	unsigned long health_seq;
	struct engine_child_req *health_req; /* outstanding health request */
	char health[32];
	int64_t healthy_since_ms;  /* 0 unless the last health answer was "ok" */
	long backoff_ms;
	unsigned restarts;
	char last_exit[64];

	struct event *ev_health;   /* persistent, every interval */
	struct event *ev_restart;
	struct event *ev_stop;
	long stop_waited_ms;
	long stop_next_ms;
	int killed;
	void (*stop_done)(void *arg);
	void *stop_arg;
};

/* Engine-supplied text goes into our log: keep it on one printable line. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
}

const char *engine_child_state_name(enum engine_child_state st)
{
	static const char *const names[] = {"idle",    "starting", "ready",
					    "backoff", "fault",    "stopping"};
	return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

static void ec_notify(struct engine_child *ec)
{
	if (ec->change_cb)
		ec->change_cb(ec->change_arg);
}

static void ec_set_state(struct engine_child *ec, enum engine_child_state st)
{
	if (ec->state == st)
		return;
	log_debug("engine: %s -> %s", engine_child_state_name(ec->state),
		  engine_child_state_name(st));
	ec->state = st;
}

static void ec_set_health(struct engine_child *ec, const char *h)
{
	if (strcmp(ec->health, h) == 0)
		return;
	if (strcmp(h, "ok") != 0 && strcmp(h, "-") != 0)
		log_warnx("engine: health %s (pid %ld)", h, (long)ec->pid);
	else if (strcmp(h, "ok") == 0 && strcmp(ec->health, "-") != 0)
		log_info("engine: health ok again (pid %ld)", (long)ec->pid);
	snprintf(ec->health, sizeof ec->health, "%s", h);
	if (strcmp(h, "ok") != 0)
		ec->healthy_since_ms = 0;
	else if (!ec->healthy_since_ms)
		ec->healthy_since_ms = clock_mono_ms();
}

/* Drop every pending request, telling their owners the engine is gone.  Each is unlinked
 * before its callback runs, so a callback may issue new requests (they fail: no socket). */
static void ec_fail_pending(struct engine_child *ec, int call)
{
	struct engine_child_req *req;
	while ((req = TAILQ_FIRST(&ec->pending))) {
		TAILQ_REMOVE(&ec->pending, req, entry);
		if (req == ec->health_req)
			ec->health_req = NULL;
		if (call && req->cb)
			req->cb(req->arg, NULL);
		free(req);
	}
}

static void ec_close_socket(struct engine_child *ec)
{
	if (ec->bev) {
		bufferevent_free(ec->bev);
		ec->bev = NULL;
	}
	ec_fail_pending(ec, 1);
}

static void ec_kill(struct engine_child *ec, const char *why)
{
	if (ec->pid <= 0)
		return;
	log_warnx("engine: %s: sending SIGKILL to pid %ld", why, (long)ec->pid);
	if (kill(ec->pid, SIGKILL) < 0 && errno != ESRCH)
		log_warn("engine: kill %ld", (long)ec->pid);
	ec->killed = 1;
}

static struct engine_child_req *ec_send(struct engine_child *ec, const char *line,
					engine_child_reply_cb cb, void *arg)
{
	size_t len = strlen(line);
	if (!ec->bev || len == 0 || len > ENGINE_MAX_REQUEST || strchr(line, '\n'))
		return NULL;
	struct engine_child_req *req = calloc(1, sizeof *req);
	if (!req)
		return NULL;
	size_t n = strcspn(line, " ");
	if (n >= sizeof req->name)
		n = sizeof req->name - 1;
	memcpy(req->name, line, n);
	req->ec = ec;
	req->sent_ms = clock_mono_ms();
	req->cb = cb;
	req->arg = arg;
	if (bufferevent_write(ec->bev, line, len) < 0 || bufferevent_write(ec->bev, "\n", 1) < 0) {
		free(req);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&ec->pending, req, entry);
	return req;
}

struct engine_child_req *engine_child_request(struct engine_child *ec, const char *line,
					      engine_child_reply_cb cb, void *arg)
{
	if (ec->state != ENGINE_STARTING && ec->state != ENGINE_READY)
		return NULL;
	return ec_send(ec, line, cb, arg);
}

void engine_child_req_cancel(struct engine_child_req *req)
{
	/* It stays queued: the engine's reply to it must still be matched and consumed. */
	if (req)
		req->cb = NULL;
}

static void on_hello_reply(void *arg, const char *reply)
{
	struct engine_child *ec = arg;
	if (!reply)
		return;
	char buf[256];
	snprintf(buf, sizeof buf, "%s", reply);
	sanitize(buf);
	if (strncmp(buf, "hello 1 ", 8) == 0 || strcmp(buf, "hello 1") == 0) {
		ec->said_hello = 1;
		log_info("engine: pid %ld speaks protocol 1 (%s)", (long)ec->pid, buf + 6);
	} else {
		/* The engine exits 2 on a version mismatch; make sure of it. */
		log_warnx("engine: handshake refused: %s", buf);
		ec_kill(ec, "handshake failed");
	}
}

static void on_serve_reply(void *arg, const char *reply)
{
	struct engine_child *ec = arg;
	if (!reply)
		return;
	if (strcmp(reply, "serve ok") != 0) {
		char buf[256];
		snprintf(buf, sizeof buf, "%s", reply);
		sanitize(buf);
		log_warnx("engine: serve %s refused: %s", ec->serve, buf);
	} else {
		log_info("engine: serving home nodes %s", ec->serve);
	}
}

static void on_health_reply(void *arg, const char *reply)
{
	struct engine_child *ec = arg;
	ec->health_req = NULL;
	if (!reply)
		return;
	char seq[32], problem[32];
	if (sscanf(reply, "health %31s %31s", seq, problem) != 2) {
		char buf[256];
		snprintf(buf, sizeof buf, "%s", reply);
		sanitize(buf);
		log_warnx("engine: bad health reply: %s", buf);
		snprintf(problem, sizeof problem, "bad-reply");
	}
	sanitize(problem);
	ec_set_health(ec, problem);
	ec_notify(ec);
}

static void on_stop_reply(void *arg, const char *reply)
{
	struct engine_child *ec = arg;
	if (reply)
		log_info("engine: pid %ld acknowledged stop", (long)ec->pid);
}

/* One line from the engine: an unsolicited ready/event, or the reply to the oldest request. */
static int ec_handle_line(struct engine_child *ec, char *line)
{
	size_t n = strcspn(line, " ");
	if (n == 5 && strncmp(line, "ready", 5) == 0) {
		if (ec->state == ENGINE_STARTING) {
			log_info("engine: pid %ld is ready", (long)ec->pid);
			ec_set_state(ec, ENGINE_READY);
			ec_notify(ec);
		}
		return 0;
	}
	if (n == 5 && strncmp(line, "event", 5) == 0) {
		sanitize(line);
		log_info("engine: %s", line);
		return 0;
	}
	struct engine_child_req *req = TAILQ_FIRST(&ec->pending);
	int is_error = n == 5 && strncmp(line, "error", 5) == 0;
	if (!req || (!is_error && (strlen(req->name) != n || strncmp(line, req->name, n) != 0))) {
		sanitize(line);
		log_warnx("engine: unexpected line: %.200s", line);
		return -1;
	}
	TAILQ_REMOVE(&ec->pending, req, entry);
	if (req->cb)
		req->cb(req->arg, line);
	free(req);
	return 0;
}

static void ec_on_read(struct bufferevent *bev, void *arg)
{
	struct engine_child *ec = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;
	while (ec->bev && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		int bad = len > ENGINE_MAX_LINE || strlen(line) != len;
		if (bad)
			log_warnx("engine: malformed line (%zu bytes)", len);
		if (bad || ec_handle_line(ec, line) < 0) {
			free(line);
			ec_close_socket(ec);
			ec_kill(ec, "protocol error");
			ec_notify(ec);
			return;
		}
		free(line);
	}
	if (ec->bev && evbuffer_get_length(in) > ENGINE_MAX_LINE) {
		ec_close_socket(ec);
		ec_kill(ec, "line longer than 65536 bytes");
		ec_notify(ec);
	}
}

static void ec_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct engine_child *ec = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (what & BEV_EVENT_ERROR)
		log_warn("engine: control socket error (pid %ld)", (long)ec->pid);
	else if (ec->state != ENGINE_STOPPING)
		log_warnx("engine: pid %ld closed the control socket", (long)ec->pid);
	ec->eof_ms = clock_mono_ms();
	ec_close_socket(ec);
	if (ec->state != ENGINE_STOPPING)
		ec_set_health(ec, "disconnected");
	ec_notify(ec);
}

/* In the child, between fork and exec: only the socket at ENGINE_CONTROL_FD survives. */
static void __attribute__((noreturn)) ec_exec(const struct engine_child *ec, int fd)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* Own process group: a terminal's ^C reaches srmd, which then stops the engine. */
	setpgid(0, 0);
	if (fd == ENGINE_CONTROL_FD) {
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
			_exit(ENGINE_EXIT_CONFIG);
	} else if (dup2(fd, ENGINE_CONTROL_FD) < 0) {
		_exit(ENGINE_EXIT_CONFIG);
	}
	if (close_range(ENGINE_CONTROL_FD + 1, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long i = ENGINE_CONTROL_FD + 1; i < (max > 0 ? max : 1024); i++)
			close((int)i);
	}
	char fdstr[16];
	snprintf(fdstr, sizeof fdstr, "%d", ENGINE_CONTROL_FD);
	char *const argv[] = {ec->program, "--config", ec->config_path, "--control-fd", fdstr,
			      NULL};
	execv(ec->program, argv);
	/* A missing or unusable program is a configuration fault: not worth restarting. */
	dprintf(2, "srmd: cannot execute engine %s: %s\n", ec->program, strerror(errno));
	_exit(ENGINE_EXIT_CONFIG);
}

static int ec_spawn(struct engine_child *ec)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("engine: socketpair");
		return -1;
	}
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		log_warn("engine: fork");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		ec_exec(ec, sv[1]);
	}
	close(sv[1]);
	evutil_make_socket_nonblocking(sv[0]);
	ec->bev = bufferevent_socket_new(ec->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (!ec->bev) {
		close(sv[0]);
		ec->pid = pid;
		ec_kill(ec, "out of memory");
		return 0; /* the exit is collected and handled like any other */
	}
	bufferevent_setcb(ec->bev, ec_on_read, NULL, ec_on_event, ec);
	bufferevent_enable(ec->bev, EV_READ | EV_WRITE);
	ec->pid = pid;
	ec->spawn_ms = clock_mono_ms();
	ec->last_tick_ms = 0; /* the next tick starts the count afresh */
	ec->eof_ms = 0;
	ec->said_hello = 0;
	ec->killed = 0;
	ec->healthy_since_ms = 0;
	snprintf(ec->health, sizeof ec->health, "-");
	ec_set_state(ec, ENGINE_STARTING);
	log_info("engine: started %s as pid %ld", ec->program, (long)pid);

	char line[300];
	ec_send(ec, "hello 1", on_hello_reply, ec);
	snprintf(line, sizeof line, "serve %s", ec->serve);
	ec_send(ec, line, on_serve_reply, ec);
	if (ec->relogin_lower_ms >= 0) {
		snprintf(line, sizeof line, "relogin %ld %ld", ec->relogin_lower_ms,
			 ec->relogin_upper_ms);
		ec_send(ec, line, NULL, NULL);
	}
	return 0;
}

static void ec_schedule_restart(struct engine_child *ec)
{
	int64_t now = clock_mono_ms();
	if (ec->healthy_since_ms && now - ec->healthy_since_ms >= BACKOFF_RESET_MS)
		ec->backoff_ms = BACKOFF_MIN_MS;
	long delay = ec->backoff_ms;
	ec->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	ec_set_state(ec, ENGINE_BACKOFF);
	log_info("engine: restarting in %ld ms", delay);
	struct timeval tv = clock_tv_ms(delay);
	evtimer_add(ec->ev_restart, &tv);
}

static void ec_on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct engine_child *ec = arg;
	if (ec->state != ENGINE_BACKOFF)
		return;
	ec->restarts++;
	log_info("engine: restart #%u", ec->restarts);
	if (ec_spawn(ec) < 0)
		ec_schedule_restart(ec);
	ec_notify(ec);
}

static void ec_describe_exit(struct engine_child *ec, int status)
{
	if (WIFEXITED(status))
		snprintf(ec->last_exit, sizeof ec->last_exit, "exited with code %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(ec->last_exit, sizeof ec->last_exit, "killed by signal %d",
			 WTERMSIG(status));
	else
		snprintf(ec->last_exit, sizeof ec->last_exit, "ended (status 0x%x)", status);
}

static void ec_on_exit(struct engine_child *ec, int status)
{
	pid_t pid = ec->pid;
	ec->pid = 0;
	ec_describe_exit(ec, status);
	ec_close_socket(ec);
	snprintf(ec->health, sizeof ec->health, "-");
	if (ec->state == ENGINE_STOPPING) {
		log_info("engine: pid %ld %s after stop", (long)pid, ec->last_exit);
		evtimer_del(ec->ev_stop);
		ec_set_state(ec, ENGINE_IDLE);
		ec->healthy_since_ms = 0;
		void (*done)(void *) = ec->stop_done;
		ec->stop_done = NULL;
		ec_notify(ec);
		if (done)
			done(ec->stop_arg);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == ENGINE_EXIT_CONFIG) {
		log_warnx("engine: pid %ld %s: configuration fault, not restarting", (long)pid,
			  ec->last_exit);
		ec_set_state(ec, ENGINE_FAULT);
		ec->healthy_since_ms = 0;
		ec_notify(ec);
		return;
	}
	log_warnx("engine: pid %ld %s unexpectedly", (long)pid, ec->last_exit);
	ec_schedule_restart(ec);
	ec->healthy_since_ms = 0;
	ec_notify(ec);
}

void engine_child_reap(struct engine_child *ec)
{
	if (ec->pid <= 0)
		return;
	int status;
	pid_t r = waitpid(ec->pid, &status, WNOHANG);
	if (r == ec->pid)
		ec_on_exit(ec, status);
	else if (r < 0 && errno == ECHILD) {
		log_warnx("engine: pid %ld vanished", (long)ec->pid);
		ec_on_exit(ec, 0);
	}
}

/* Every interval: collect a missed exit, detect a hung engine, ask for health. */
static void ec_on_health_tick(evutil_socket_t fd, short what, void *arg)
{
	struct engine_child *ec = arg;
	engine_child_reap(ec);
	if (ec->state != ENGINE_STARTING && ec->state != ENGINE_READY)
		return;
	int64_t now = clock_mono_ms();
	long limit = HUNG_INTERVALS * ec->interval_ms;
	/* srmd itself was stopped or starved (SIGSTOP, a suspended VM): the engine's answers
	 * may be waiting unread in the socket, so the time srmd was away does not count
	 * against the engine's deadlines. */
	int64_t away = ec->last_tick_ms ? now - ec->last_tick_ms - ec->interval_ms : 0;
	ec->last_tick_ms = now;
	if (away > ec->interval_ms) {
		for (struct engine_child_req *r = TAILQ_FIRST(&ec->pending); r;
		     r = TAILQ_NEXT(r, entry))
			r->sent_ms += away;
		ec->eof_ms += away;
	}
	if (!ec->bev) {
		/* Socket closed but the process lives on: give it the same bound to exit. */
		if (!ec->killed && now - ec->eof_ms > limit)
			ec_kill(ec, "still running after closing its control socket");
		return;
	}
	if (ec->killed)
		return;
	struct engine_child_req *oldest = TAILQ_FIRST(&ec->pending);
	if (oldest) {
		int64_t deadline = oldest->sent_ms + limit;
		if (!ec->said_hello && deadline < ec->spawn_ms + STARTUP_GRACE_MS)
			deadline = ec->spawn_ms + STARTUP_GRACE_MS;
		if (now > deadline) {
			char why[96];
			snprintf(why, sizeof why, "no reply to '%s' for %ld ms: hung", oldest->name,
				 (long)(now - oldest->sent_ms));
			ec_set_health(ec, "overdue");
			ec_kill(ec, why);
			ec_notify(ec);
			return;
		}
	}
	if (!ec->health_req) {
		char line[64];
		snprintf(line, sizeof line, "health %lu", ++ec->health_seq);
		ec->health_req = ec_send(ec, line, on_health_reply, ec);
	}
}

static void ec_on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
	struct engine_child *ec = arg;
	engine_child_reap(ec);
	if (ec->state != ENGINE_STOPPING)
		return;
	ec->stop_waited_ms += ec->stop_next_ms;
	if (ec->stop_waited_ms >= STOP_MAX_WAIT_MS) {
		if (!ec->killed) {
			char why[64];
			snprintf(why, sizeof why, "still running %ld ms after stop",
				 ec->stop_waited_ms);
			ec_kill(ec, why);
		}
		/* SIGKILL cannot be refused; poll until the exit is collected. */
		ec->stop_next_ms = 100;
	} else {
		log_info("engine: pid %ld still running %ld ms after stop", (long)ec->pid,
			 ec->stop_waited_ms);
		ec->stop_next_ms *= 2;
		if (ec->stop_waited_ms + ec->stop_next_ms > STOP_MAX_WAIT_MS)
			ec->stop_next_ms = STOP_MAX_WAIT_MS - ec->stop_waited_ms;
	}
	struct timeval tv = clock_tv_ms(ec->stop_next_ms);
	evtimer_add(ec->ev_stop, &tv);
}

void engine_child_stop(struct engine_child *ec, void (*done)(void *arg), void *arg)
{
	evtimer_del(ec->ev_restart);
	if (ec->pid <= 0) {
		if (ec->state != ENGINE_FAULT)
			ec_set_state(ec, ENGINE_IDLE);
		log_info("engine: not running, nothing to stop");
		ec_notify(ec);
		if (done)
			done(arg);
		return;
	}
	ec->stop_done = done;
	ec->stop_arg = arg;
	if (ec->state == ENGINE_STOPPING)
		return;
	ec_set_state(ec, ENGINE_STOPPING);
	if (ec->bev && ec_send(ec, "stop", on_stop_reply, ec)) {
		log_info("engine: asked pid %ld to stop", (long)ec->pid);
	} else {
		log_info("engine: sending SIGTERM to pid %ld (control socket closed)", (long)ec->pid);
		if (kill(ec->pid, SIGTERM) < 0 && errno != ESRCH)
			log_warn("engine: kill %ld", (long)ec->pid);
	}
	ec->stop_waited_ms = 0;
	ec->stop_next_ms = STOP_FIRST_WAIT_MS;
	struct timeval tv = clock_tv_ms(ec->stop_next_ms);
	evtimer_add(ec->ev_stop, &tv);
	ec_notify(ec);
}

int engine_child_start(struct engine_child *ec)
{
	if (ec->state != ENGINE_IDLE && ec->state != ENGINE_FAULT)
		return 0;
	ec->backoff_ms = BACKOFF_MIN_MS;
	if (ec_spawn(ec) < 0) {
		ec_schedule_restart(ec);
		ec_notify(ec);
		return -1;
	}
	ec_notify(ec);
	return 0;
}

void engine_child_restart_now(struct engine_child *ec)
{
	if (ec->state == ENGINE_BACKOFF) {
		evtimer_del(ec->ev_restart);
		ec_set_state(ec, ENGINE_IDLE);
	}
	if (ec->state != ENGINE_IDLE && ec->state != ENGINE_FAULT)
		return;
	log_info("engine: restart requested by Recovery");
	engine_child_start(ec);
}

void engine_child_set_relogin(struct engine_child *ec, long lower_ms, long upper_ms)
{
	ec->relogin_lower_ms = lower_ms;
	ec->relogin_upper_ms = upper_ms;
	if (ec->state == ENGINE_STARTING || ec->state == ENGINE_READY) {
		char line[64];
		snprintf(line, sizeof line, "relogin %ld %ld", lower_ms, upper_ms);
		ec_send(ec, line, NULL, NULL);
	}
}

int engine_child_set_serve(struct engine_child *ec, const char *serve)
{
	if (!*serve || strlen(serve) >= sizeof ec->serve || strpbrk(serve, " \t\r\n"))
		return -1;
	snprintf(ec->serve, sizeof ec->serve, "%s", serve);
	if (ec->state == ENGINE_STARTING || ec->state == ENGINE_READY) {
		char line[300];
		snprintf(line, sizeof line, "serve %s", ec->serve);
		ec_send(ec, line, on_serve_reply, ec);
	}
	return 0;
}

struct engine_child *engine_child_new(struct event_base *base, const char *program,
				      const char *config_path, long health_interval_ms,
				      engine_child_change_cb cb, void *arg)
{
	struct engine_child *ec = calloc(1, sizeof *ec);
	if (!ec)
		return NULL;
	ec->base = base;
	ec->interval_ms = health_interval_ms > 0 ? health_interval_ms : 500;
	ec->change_cb = cb;
	ec->change_arg = arg;
	ec->backoff_ms = BACKOFF_MIN_MS;
	ec->relogin_lower_ms = ec->relogin_upper_ms = -1;
	TAILQ_INIT(&ec->pending);
	snprintf(ec->serve, sizeof ec->serve, "-");
	snprintf(ec->health, sizeof ec->health, "-");
	ec->program = strdup(program);
	ec->config_path = strdup(config_path);
	ec->ev_health = event_new(base, -1, EV_PERSIST, ec_on_health_tick, ec);
	ec->ev_restart = evtimer_new(base, ec_on_restart, ec);
	ec->ev_stop = evtimer_new(base, ec_on_stop_tick, ec);
	if (!ec->program || !ec->config_path || !ec->ev_health || !ec->ev_restart ||
	    !ec->ev_stop) {
		engine_child_free(ec);
		return NULL;
	}
	struct timeval tv = clock_tv_ms(ec->interval_ms);
	event_add(ec->ev_health, &tv);
	return ec;
}

void engine_child_free(struct engine_child *ec)
{
	if (!ec)
		return;
	if (ec->pid > 0) {
		log_warnx("engine: pid %ld still running at exit: SIGKILL", (long)ec->pid);
		kill(ec->pid, SIGKILL);
		while (waitpid(ec->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (ec->bev)
		bufferevent_free(ec->bev);
	ec_fail_pending(ec, 0);
	if (ec->ev_health)
		event_free(ec->ev_health);
	if (ec->ev_restart)
		event_free(ec->ev_restart);
	if (ec->ev_stop)
		event_free(ec->ev_stop);
	free(ec->program);
	free(ec->config_path);
	free(ec);
}

enum engine_child_state engine_child_state(const struct engine_child *ec) { return ec->state; }
pid_t engine_child_pid(const struct engine_child *ec) { return ec->pid; }
const char *engine_child_health(const struct engine_child *ec) { return ec->health; }
unsigned engine_child_restarts(const struct engine_child *ec) { return ec->restarts; }
const char *engine_child_last_exit(const struct engine_child *ec) { return ec->last_exit; }
