/* Transition log lines and notify scripts (see notify.h). */
#include "ha/notify.h"

#include "lib/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NOTIFY_NAME 64          /* state and reason names are shorter */
#define NOTIFY_KILL_GRACE_MS 1000 /* SIGTERM, then SIGKILL this much later */
#define NOTIFY_ENV_EXTRA 6

struct notify_job {
	char from[NOTIFY_NAME], from_reason[NOTIFY_NAME];
	char to[NOTIFY_NAME], reason[NOTIFY_NAME];
	uint64_t seq;
};

struct notify {
	struct event_base *base;
	char *script;        /* NULL: log lines only */
	long timeout_ms;
	long node_id;
	struct notify_job queue[NOTIFY_QUEUE];
	size_t qhead, qlen;
	struct notify_job current;
	pid_t pid;           /* running script, 0 if none */
	int terminated;      /* SIGTERM sent after the timeout */
	struct timespec started;
	struct event *ev_timeout;
	struct notify_counters counters;
};

static void notify_next(struct notify *n);

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)((now.tv_sec - since->tv_sec) * 1000 +
		      (now.tv_nsec - since->tv_nsec) / 1000000);
}

static void arm_ms(struct event *ev, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

/* The process environment plus DUET_* for this run; the old values of those names are left
 * out.  NULL when out of memory; free the array and the strings from *first_ours on. */
static char **env_build(const struct notify *n, const struct notify_job *j, size_t *first_ours)
{
	static const char *const names[NOTIFY_ENV_EXTRA] = {
		"DUET_OLD_STATE", "DUET_NEW_STATE", "DUET_REASON",
		"DUET_OLD_REASON", "DUET_NODE_ID", "DUET_TRANSITION"};
	char node[24], seq[24];
	snprintf(node, sizeof node, "%ld", n->node_id);
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)j->seq);
	const char *values[NOTIFY_ENV_EXTRA] = {j->from, j->to, j->reason, j->from_reason, node,
						seq};
	size_t count = 0;
	for (char **e = environ; e && *e; e++)
		count++;
	char **env = calloc(count + NOTIFY_ENV_EXTRA + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "DUET_", 5) == 0) {
			int ours = 0;
			for (int i = 0; i < NOTIFY_ENV_EXTRA; i++) {
				size_t l = strlen(names[i]);
				if (strncmp(*e, names[i], l) == 0 && (*e)[l] == '=')
					ours = 1;
			}
			if (ours)
				continue;
		}
		env[k++] = *e;
	}
	size_t first = k;
	for (int i = 0; i < NOTIFY_ENV_EXTRA; i++) {
		size_t l = strlen(names[i]) + strlen(values[i]) + 2;
		char *s = malloc(l);
		if (!s) {
			for (size_t x = first; x < k; x++)
				free(env[x]);
			free(env);
			return NULL;
		}
		snprintf(s, l, "%s=%s", names[i], values[i]);
		env[k++] = s;
	}
	env[k] = NULL;
	*first_ours = first;
	return env;
}

/* posix_spawn, not fork: srmd's address space (a sanitizer build is large) is not copied.
 * 0 or an errno. */
static int spawn_script(struct notify *n, const struct notify_job *j, pid_t *pid)
{
	size_t first = 0;
	char **env = env_build(n, j, &first);
	if (!env)
		return ENOMEM;
	char *argv[] = {n->script, (char *)j->from, (char *)j->to, (char *)j->reason, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc = posix_spawn_file_actions_init(&fa);
	if (rc == 0 && (rc = posix_spawnattr_init(&at)) != 0)
		posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		goto out;
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	/* srmd ignores SIGPIPE and catches these; the script starts with the defaults. */
	int sigs[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&dfl, sigs[i]);
	/* Its own process group, so a timeout kills what it started too; none of srmd's
	 * descriptors (peer link, engine socket, database) leak into it. */
	if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0 &&
	    (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						    POSIX_SPAWN_SETSIGDEF)) == 0 &&
	    (rc = posix_spawnattr_setpgroup(&at, 0)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&at, &dfl)) == 0)
		rc = posix_spawn(pid, n->script, &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
out:
	for (size_t i = first; env[i]; i++)
		free(env[i]);
	free(env);
	return rc;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	if (!n->pid)
		return;
	if (!n->terminated) {
		log_warnx("ha: notify %s still running after %ld ms (transition %llu): SIGTERM",
			  n->script, n->timeout_ms, (unsigned long long)n->current.seq);
		n->terminated = 1;
		kill(-n->pid, SIGTERM);
		arm_ms(n->ev_timeout, NOTIFY_KILL_GRACE_MS);
		return;
	}
	log_warnx("ha: notify %s ignored SIGTERM: SIGKILL", n->script);
	kill(-n->pid, SIGKILL);
}

static void notify_next(struct notify *n)
{
	while (!n->pid && n->qlen) {
		n->current = n->queue[n->qhead];
		n->qhead = (n->qhead + 1) % NOTIFY_QUEUE;
		n->qlen--;
		pid_t pid;
		int rc = spawn_script(n, &n->current, &pid);
		if (rc != 0) {
			n->counters.runs_failed++;
			log_warnx("ha: notify %s (transition %llu): cannot run: %s", n->script,
				  (unsigned long long)n->current.seq, strerror(rc));
			continue;
		}
		n->pid = pid;
		n->terminated = 0;
		clock_gettime(CLOCK_MONOTONIC, &n->started);
		arm_ms(n->ev_timeout, n->timeout_ms);
		log_debug("ha: notify %s started, pid %ld", n->script, (long)pid);
	}
}

void notify_reap(struct notify *n)
{
	if (!n || !n->pid)
		return;
	int st;
	pid_t r;
	do
		r = waitpid(n->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return;
	long ms = elapsed_ms(&n->started);
	unsigned long long seq = (unsigned long long)n->current.seq;
	if (r < 0) {
		n->counters.runs_failed++;
		log_warn("ha: notify %s: waitpid", n->script);
	} else if (n->terminated) {
		n->counters.runs_timeout++;
		log_warnx("ha: notify %s (transition %llu) killed after %ld ms", n->script, seq, ms);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		n->counters.runs_ok++;
		log_info("ha: notify %s (transition %llu) done in %ld ms", n->script, seq, ms);
	} else {
		n->counters.runs_failed++;
		if (WIFEXITED(st))
			log_warnx("ha: notify %s (transition %llu) exited with code %d", n->script,
				  seq, WEXITSTATUS(st));
		else
			log_warnx("ha: notify %s (transition %llu) killed by signal %d", n->script,
				  seq, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	}
	n->pid = 0;
	evtimer_del(n->ev_timeout);
	notify_next(n);
}

static void copy_name(char *dst, const char *src)
{
	snprintf(dst, NOTIFY_NAME, "%s", src ? src : "");
}

void notify_transition(struct notify *n, const char *from, const char *from_reason,
		       const char *to, const char *reason)
{
	n->counters.transitions++;
	uint64_t seq = n->counters.transitions;
	/* key=value with quoted names: one line a log search or journald can split. */
	log_info("ha: transition node=%ld seq=%llu from=\"%s\" from_reason=\"%s\" to=\"%s\" "
		 "reason=\"%s\"",
		 n->node_id, (unsigned long long)seq, from, from_reason, to, reason);
	if (!n->script)
		return;
	if (n->qlen == NOTIFY_QUEUE) {
		n->counters.runs_dropped++;
		log_warnx("ha: notify queue full: run for transition %llu dropped",
			  (unsigned long long)n->queue[n->qhead].seq);
		n->qhead = (n->qhead + 1) % NOTIFY_QUEUE;
		n->qlen--;
	}
	struct notify_job *j = &n->queue[(n->qhead + n->qlen) % NOTIFY_QUEUE];
	copy_name(j->from, from);
	copy_name(j->from_reason, from_reason);
	copy_name(j->to, to);
	copy_name(j->reason, reason);
	j->seq = seq;
	n->qlen++;
	notify_next(n);
}

void notify_counters_get(const struct notify *n, struct notify_counters *out)
{
	*out = n->counters;
}

struct notify *notify_new(struct event_base *base, const char *script, long timeout_ms,
			  long node_id)
{
	struct notify *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->base = base;
	n->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	n->node_id = node_id;
	n->ev_timeout = evtimer_new(base, on_timeout, n);
	if (!n->ev_timeout || (script && *script && !(n->script = strdup(script)))) {
		notify_free(n);
		return NULL;
	}
	if (n->script && access(n->script, X_OK) < 0)
		log_warnx("ha: notify %s: %s (every run will fail)", n->script, strerror(errno));
	return n;
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	if (n->pid)
		log_info("ha: notify %s (pid %ld) left running", n->script, (long)n->pid);
	if (n->qlen)
		log_info("ha: %zu notify run(s) dropped at exit", n->qlen);
	if (n->ev_timeout)
		event_free(n->ev_timeout);
	free(n->script);
	free(n);
}
