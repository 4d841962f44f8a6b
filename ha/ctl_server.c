/* The control socket server (see ctl_server.h, docs/srmctl-protocol.md). */
#include "ha/ctl_server.h"

#include "lib/json_out.h"
#include "lib/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_MAX_CONNS 64
#define CTL_MAX_TABLES 8
#define CTL_IO_TIMEOUT_S 10

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) entry;
	struct ctl_server *srv;
	struct bufferevent *bev;   /* NULL once the client is gone */
	struct evbuffer *body;
	uid_t uid;
	pid_t pid;
	int json;
	int local;
	int busy;                  /* a command runs and has not replied yet */
	int replied;
	void (*cancel)(void *arg);
	void *cancel_arg;
	int internal;              /* ctl_run_new: no socket, the reply goes to done */
	char origin[64];           /* ... and who asked, for the log */
	ctl_run_done_fn done;
	void *done_arg;
	ctl_body_fn body_fn;       /* the command reads a request body (ctl_conn_read_body) */
	void *body_arg;
	size_t body_max;
	int body_paused, body_skipping, body_feeding;
};
TAILQ_HEAD(ctl_conn_list, ctl_conn);

struct ctl_server {
	struct event_base *base;
	struct evconnlistener *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	void *ctx;
	const struct ctl_command *tables[CTL_MAX_TABLES];
	int ntables;
	struct ctl_conn_list conns;
	int nconns;
};

void *ctl_conn_ctx(const struct ctl_conn *c) { return c->srv->ctx; }
int ctl_conn_json(const struct ctl_conn *c) { return c->json; }
int ctl_conn_local(const struct ctl_conn *c) { return c->local; }
uid_t ctl_conn_uid(const struct ctl_conn *c) { return c->uid; }
pid_t ctl_conn_pid(const struct ctl_conn *c) { return c->pid; }

void ctl_conn_set_cancel(struct ctl_conn *c, void (*cancel)(void *arg), void *arg)
{
	c->cancel = cancel;
	c->cancel_arg = arg;
}

static void conn_free(struct ctl_conn *c)
{
	TAILQ_REMOVE(&c->srv->conns, c, entry);
	c->srv->nconns--;
	if (c->bev)
		bufferevent_free(c->bev);
	evbuffer_free(c->body);
	free(c);
}

void ctl_body_printf(struct ctl_conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(c->body, fmt, ap);
	va_end(ap);
}

void ctl_body_json_string(struct ctl_conn *c, const char *s)
{
	json_out_string(c->body, s);
}

/* Once the response is flushed, the connection is done. */
static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	if (c->replied && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

/* Status line, the body with "." lines escaped, the terminating ".". */
static void conn_send(struct ctl_conn *c, const char *status)
{
	c->busy = 0;
	c->replied = 1;
	c->cancel = NULL;
	c->body_fn = NULL; /* an early answer: the rest of the body is not read */
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ);
	if (c->internal) {
		size_t blen = evbuffer_get_length(c->body);
		evbuffer_add(c->body, "", 1);
		const char *body = (const char *)evbuffer_pullup(c->body, -1);
		if (c->done)
			c->done(c->done_arg, status, body ? body : "", body ? blen : 0);
		conn_free(c);
		return;
	}
	if (!c->bev) {
		conn_free(c);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		conn_free(c);
		return;
	}
	evbuffer_add_printf(out, "%s\n", status);
	size_t len = evbuffer_get_length(c->body);
	const char *p = len ? (const char *)evbuffer_pullup(c->body, -1) : "";
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && p[0] == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, p, n);
		evbuffer_add(out, "\n", 1);
		p += n + (nl ? 1 : 0);
	}
	evbuffer_add(out, ".\n", 2);
	bufferevent_write_buffer(c->bev, out);
	evbuffer_free(out);
	bufferevent_enable(c->bev, EV_WRITE);
}

void ctl_reply_ok(struct ctl_conn *c)
{
	if (!c->replied)
		conn_send(c, "ok");
}

void ctl_reply_error(struct ctl_conn *c, const char *code, const char *fmt, ...)
{
	if (c->replied)
		return;
	char msg[1024], status[1100];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *m = msg; *m; m++)
		if ((unsigned char)*m < 0x20 || (unsigned char)*m == 0x7f)
			*m = ' ';
	snprintf(status, sizeof status, "error %s %s", code, msg);
	if (c->internal)
		log_info("ctl: %s: error %s: %s", c->origin, code, msg);
	else
		log_info("ctl: uid %u pid %ld: error %s: %s", (unsigned)c->uid, (long)c->pid, code,
			 msg);
	conn_send(c, status);
}

/* The entry whose words are the longest prefix of fields; *nwords gets their count. */
static const struct ctl_command *command_find(const struct ctl_server *s, char **fields,
					      int nfields, int *nwords)
{
	const struct ctl_command *best = NULL;
	int best_n = 0;
	for (int t = 0; t < s->ntables; t++) {
		for (const struct ctl_command *cmd = s->tables[t]; cmd->name; cmd++) {
			int n = 0, i = 0;
			const char *w = cmd->name;
			while (*w && i < nfields) {
				size_t wl = strcspn(w, " ");
				if (strlen(fields[i]) != wl || strncmp(fields[i], w, wl) != 0)
					break;
				i++;
				w += wl;
				while (*w == ' ')
					w++;
			}
			if (*w)
				continue;
			n = i;
			if (n > best_n) {
				best = cmd;
				best_n = n;
			}
		}
	}
	*nwords = best_n;
	return best;
}

static void conn_dispatch(struct ctl_conn *c, char *line)
{
	char *fields[CTL_MAX_FIELDS];
	int nfields = 0;
	for (char *p = line;;) {
		if (nfields == CTL_MAX_FIELDS) {
			ctl_reply_error(c, "usage", "too many fields");
			return;
		}
		fields[nfields++] = p;
		char *tab = strchr(p, '\t');
		if (!tab)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	if (strcmp(fields[0], CTL_PROTOCOL_VERSION) != 0) {
		ctl_reply_error(c, "version", "unsupported protocol version (this srmd speaks %s)",
				CTL_PROTOCOL_VERSION);
		return;
	}
	int i = 1;
	for (; i < nfields && strncmp(fields[i], "--", 2) == 0; i++) {
		if (strcmp(fields[i], "--json") == 0) {
			c->json = 1;
		} else if (strcmp(fields[i], "--local") == 0) {
			c->local = 1;
		} else {
			ctl_reply_error(c, "usage", "unknown option %.40s", fields[i]);
			return;
		}
	}
	if (i == nfields || !fields[i][0]) {
		ctl_reply_error(c, "usage", "no command");
		return;
	}
	int nwords;
	const struct ctl_command *cmd = command_find(c->srv, fields + i, nfields - i, &nwords);
	if (!cmd) {
		ctl_reply_error(c, "unknown-command", "unknown command: %.40s", fields[i]);
		return;
	}
	int argc = nfields - i - nwords;
	char **argv = fields + i + nwords;
	if (argc < cmd->min_args || argc > cmd->max_args) {
		ctl_reply_error(c, "usage", "usage: %s%s%s", cmd->name, *cmd->args ? " " : "",
				cmd->args);
		return;
	}
	if (c->json && !cmd->json) {
		ctl_reply_error(c, "usage", "%s has no --json output", cmd->name);
		return;
	}
	if (c->local && !cmd->local) {
		ctl_reply_error(c, "usage", "%s has no --local option", cmd->name);
		return;
	}
	/* The HTTP admin logs its writes itself; its page polls status every second or two. */
	if (c->internal)
		log_debug("ctl: %s: %s", c->origin, cmd->name);
	else
		log_info("ctl: uid %u pid %ld: %s", (unsigned)c->uid, (long)c->pid, cmd->name);
	c->busy = 1;
	cmd->exec(c, argc, argv);
}

struct ctl_conn *ctl_run_new(struct ctl_server *s, const char *origin, ctl_run_done_fn done,
			     void *arg)
{
	struct ctl_conn *c = calloc(1, sizeof *c);
	if (!c || !(c->body = evbuffer_new())) {
		free(c);
		return NULL;
	}
	c->srv = s;
	c->uid = geteuid();
	c->pid = getpid();
	c->internal = 1;
	c->done = done;
	c->done_arg = arg;
	snprintf(c->origin, sizeof c->origin, "%s", origin);
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	s->nconns++;
	return c;
}

void ctl_run_start(struct ctl_conn *c, char *line)
{
	if (strlen(line) > CTL_MAX_REQUEST)
		ctl_reply_error(c, "too-long", "request longer than %d bytes", CTL_MAX_REQUEST);
	else
		conn_dispatch(c, line);
}

void ctl_run_abandon(struct ctl_conn *c)
{
	c->done = NULL;
}

/* The lines after the request, to the command that asked for them (ctl_conn_read_body):
 * dot-stuffed like the response, ended by ".", each at most body_max bytes (a longer one is
 * dropped as it arrives and reported as CTL_BODY_TOO_LONG). */
static void body_feed(struct ctl_conn *c)
{
	if (c->body_feeding)
		return; /* a callback resumed the body: the loop below goes on */
	c->body_feeding = 1;
	while (c->body_fn && !c->body_paused && c->bev) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > c->body_max) {
				evbuffer_drain(in, evbuffer_get_length(in));
				c->body_skipping = 1;
			}
			break;
		}
		size_t n = (size_t)eol.pos;
		if (c->body_skipping || n > c->body_max) {
			evbuffer_drain(in, n + 1);
			c->body_skipping = 0;
			c->body_fn(c->body_arg, CTL_BODY_TOO_LONG, NULL, 0);
			continue;
		}
		char *line = malloc(n + 1);
		if (!line) { /* the command gives up as if the client had gone */
			ctl_body_fn fn = c->body_fn;
			c->body_fn = NULL;
			fn(c->body_arg, CTL_BODY_GONE, NULL, 0);
			break;
		}
		evbuffer_remove(in, line, n);
		evbuffer_drain(in, 1);
		line[n] = '\0';
		if (n == 1 && line[0] == '.') {
			ctl_body_fn fn = c->body_fn;
			c->body_fn = NULL;
			bufferevent_disable(c->bev, EV_READ);
			free(line);
			fn(c->body_arg, CTL_BODY_END, NULL, 0);
			break;
		}
		int stuffed = n > 0 && line[0] == '.';
		c->body_fn(c->body_arg, CTL_BODY_LINE, line + stuffed, n - (size_t)stuffed);
		free(line);
	}
	c->body_feeding = 0;
	if (c->body_fn && c->bev) {
		if (c->body_paused)
			bufferevent_disable(c->bev, EV_READ);
		else
			bufferevent_enable(c->bev, EV_READ);
	}
}

void ctl_conn_read_body(struct ctl_conn *c, size_t max_line, ctl_body_fn fn, void *arg)
{
	c->body_fn = fn;
	c->body_arg = arg;
	c->body_max = max_line;
	if (!c->bev) { /* no socket (internal request) or the client is gone: no body */
		c->body_fn = NULL;
		fn(arg, CTL_BODY_GONE, NULL, 0);
	}
	/* conn_on_read feeds what is buffered once the request line is done with */
}

void ctl_conn_body_pause(struct ctl_conn *c, int pause)
{
	c->body_paused = pause;
	if (c->bev && c->body_fn)
		body_feed(c);
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	if (c->body_fn) {
		body_feed(c);
		return;
	}
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) > CTL_MAX_REQUEST) {
			bufferevent_disable(bev, EV_READ);
			ctl_reply_error(c, "too-long", "request longer than %d bytes",
					CTL_MAX_REQUEST);
		}
		return;
	}
	/* One request per connection. */
	bufferevent_disable(bev, EV_READ);
	if (len > CTL_MAX_REQUEST)
		ctl_reply_error(c, "too-long", "request longer than %d bytes", CTL_MAX_REQUEST);
	else if (strlen(line) != len)
		ctl_reply_error(c, "malformed", "NUL byte in request");
	else
		conn_dispatch(c, line);
	/* The line may hold a password. */
	explicit_bzero(line, len);
	free(line);
	if (c->body_fn && c->bev)
		body_feed(c);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	if (what & BEV_EVENT_TIMEOUT)
		log_info("ctl: uid %u pid %ld: timed out", (unsigned)c->uid, (long)c->pid);
	if (c->busy) {
		/* The command still runs (a database write should finish); reply into the void. */
		bufferevent_free(c->bev);
		c->bev = NULL;
		ctl_body_fn fn = c->body_fn;
		c->body_fn = NULL;
		if (fn) /* the body will not end: the command gives up */
			fn(c->body_arg, CTL_BODY_GONE, NULL, 0);
		return;
	}
	conn_free(c);
}

static void server_on_accept(struct evconnlistener *l, evutil_socket_t fd,
			     struct sockaddr *sa, int salen, void *arg)
{
	struct ctl_server *s = arg;
	struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
	socklen_t clen = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		log_warn("ctl: SO_PEERCRED");
		close(fd);
		return;
	}
	if (s->nconns >= CTL_MAX_CONNS) {
		static const char busy[] = "error busy too many control connections\n.\n";
		log_warnx("ctl: too many connections, refusing uid %u pid %ld", (unsigned)cred.uid,
			  (long)cred.pid);
		/* Best effort on a fresh socket: the short answer fits its empty buffer. */
		if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("ctl: could not tell the refused client");
		close(fd);
		return;
	}
	struct ctl_conn *c = calloc(1, sizeof *c);
	if (!c || !(c->body = evbuffer_new()) ||
	    !(c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
		log_warnx("ctl: out of memory");
		if (c && c->body)
			evbuffer_free(c->body);
		free(c);
		close(fd);
		return;
	}
	c->srv = s;
	c->uid = cred.uid;
	c->pid = cred.pid;
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	s->nconns++;
	struct timeval tv = {CTL_IO_TIMEOUT_S, 0};
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	/* The socket is 0600 already; this also guards a socket in a directory others share. */
	if (cred.uid != 0 && cred.uid != geteuid()) {
		bufferevent_disable(c->bev, EV_READ);
		c->busy = 1;
		ctl_reply_error(c, "denied", "uid %u may not use this socket", (unsigned)cred.uid);
	}
}

/* A socket file left behind by a dead srmd is removed; one that answers is not ours. */
static int socket_clear_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	int e = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another srmd is running (it answers on the socket)",
			 path);
		return -1;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -1;
	}
	log_info("ctl: removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int socket_listen(const char *path, char *err, size_t errlen)
{
	/* The run directory may not exist yet (a fresh /run): create the last component. */
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	int e = errno;
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(rc < 0 ? e : errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct ctl_server *ctl_server_new(struct event_base *base, const char *path, void *ctx,
				  char *err, size_t errlen)
{
	struct ctl_server *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (strlen(path) >= sizeof s->path || !*path) {
		snprintf(err, errlen, "control socket path too long (max %zu bytes)",
			 sizeof s->path - 1);
		free(s);
		return NULL;
	}
	snprintf(s->path, sizeof s->path, "%s", path);
	s->base = base;
	s->ctx = ctx;
	TAILQ_INIT(&s->conns);
	if (socket_clear_stale(path, err, errlen) < 0) {
		free(s);
		return NULL;
	}
	int fd = socket_listen(path, err, errlen);
	if (fd < 0) {
		free(s);
		return NULL;
	}
	s->listener = evconnlistener_new(base, server_on_accept, s,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!s->listener) {
		snprintf(err, errlen, "evconnlistener_new failed");
		close(fd);
		unlink(path);
		free(s);
		return NULL;
	}
	log_info("ctl: listening on %s", path);
	return s;
}

int ctl_server_add_commands(struct ctl_server *s, const struct ctl_command *table)
{
	if (s->ntables == CTL_MAX_TABLES)
		return -1;
	s->tables[s->ntables++] = table;
	return 0;
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	evconnlistener_free(s->listener);
	struct ctl_conn *c;
	while ((c = TAILQ_FIRST(&s->conns))) {
		if (c->busy && c->cancel)
			c->cancel(c->cancel_arg);
		conn_free(c);
	}
	unlink(s->path);
	free(s);
}
