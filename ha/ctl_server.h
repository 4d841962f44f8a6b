/* srmd's control socket for srmctl (protocol: docs/srmctl-protocol.md).  A unix stream
 * socket, one request per connection: a TAB-separated line in, "ok"/"error" plus body lines
 * and a "." line out.  Commands live in tables registered by other files (ctl_users.c,
 * ctl_status.c, ...) and may answer later, from database or engine callbacks. */
#ifndef DUET_CTL_SERVER_H
#define DUET_CTL_SERVER_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct ctl_server;
struct ctl_conn;

/* argv holds the arguments after the command words; valid only during the call (copy what
 * an asynchronous command needs later).  The command must eventually call ctl_reply_ok()
 * or ctl_reply_error() exactly once. */
typedef void (*ctl_exec_fn)(struct ctl_conn *c, int argc, char **argv);

struct ctl_command {
	const char *name;  /* command words: "user add", "status" */
	const char *args;  /* argument synopsis for usage errors: "JID PASSWORD" */
	int min_args, max_args;
	int json;          /* accepts --json */
	int local;         /* accepts --local (pair: change this node only) */
	ctl_exec_fn exec;
};

#define CTL_PROTOCOL_VERSION "1"
#define CTL_MAX_REQUEST 8192 /* bytes in a request line */
#define CTL_MAX_FIELDS 16

/* Listen on path (mode 0600).  A stale socket file is removed; a live one (another srmd
 * answers on it) is an error.  ctx is handed to the commands through ctl_conn_ctx(). */
struct ctl_server *ctl_server_new(struct event_base *base, const char *path, void *ctx,
				  char *err, size_t errlen);
/* Register a table ended by an entry with name NULL (kept by pointer).  0 or -1. */
int ctl_server_add_commands(struct ctl_server *s, const struct ctl_command *table);
/* Closes every connection; pending commands get their cancel hook (see below).  Unlinks the
 * socket file. */
void ctl_server_free(struct ctl_server *s);

/* --- running a command without a socket (the HTTP admin, ha/http_api.c) --- */

/* status is "ok" or "error CODE MESSAGE"; body is the command's output (len bytes, also
 * NUL-terminated).  Both are valid only during the call. */
typedef void (*ctl_run_done_fn)(void *arg, const char *status, const char *body, size_t len);
/* A request that answers through done instead of a socket; uid/pid are srmd's own, origin
 * names the caller in the log ("http 127.0.0.1:40312").  NULL when out of memory. */
struct ctl_conn *ctl_run_new(struct ctl_server *s, const char *origin, ctl_run_done_fn done,
			     void *arg);
/* Run one request line in the protocol's form ("1\tstatus", fields separated by TAB; no
 * newline; modified in place).  done runs exactly once, maybe before this returns; the
 * handle is invalid after it. */
void ctl_run_start(struct ctl_conn *c, char *line);
/* The caller goes away: done will not be called; the command finishes on its own. */
void ctl_run_abandon(struct ctl_conn *c);

/* --- for commands --- */
void *ctl_conn_ctx(const struct ctl_conn *c);
int ctl_conn_json(const struct ctl_conn *c);       /* --json was given */
int ctl_conn_local(const struct ctl_conn *c);      /* --local was given */
uid_t ctl_conn_uid(const struct ctl_conn *c);
pid_t ctl_conn_pid(const struct ctl_conn *c);
/* Called, instead of any reply, if the server is freed while the command is still pending:
 * it must cancel its database or engine requests and free its state. */
void ctl_conn_set_cancel(struct ctl_conn *c, void (*cancel)(void *arg), void *arg);

/* A request body (bulk imports): the request line is followed by lines in the response's
 * form (dot-stuffed, ended by a "." line).  A command calls ctl_conn_read_body from its exec;
 * fn then gets each line (unstuffed, without LF; valid during the call), CTL_BODY_TOO_LONG
 * for a line over max_line bytes (dropped), then CTL_BODY_END, or CTL_BODY_GONE when the
 * client went away or timed out first (the command then answers into the void).  Replying
 * before the end stops the body.  While paused nothing is read (the client waits). */
enum ctl_body_event { CTL_BODY_LINE, CTL_BODY_TOO_LONG, CTL_BODY_END, CTL_BODY_GONE };
typedef void (*ctl_body_fn)(void *arg, enum ctl_body_event ev, const char *line, size_t len);
void ctl_conn_read_body(struct ctl_conn *c, size_t max_line, ctl_body_fn fn, void *arg);
/* Resuming may deliver buffered lines before it returns. */
void ctl_conn_body_pause(struct ctl_conn *c, int pause);

/* Append text to the response body (may contain several lines; the server escapes lines
 * starting with "."). */
void ctl_body_printf(struct ctl_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void ctl_body_json_string(struct ctl_conn *c, const char *s);
/* Finish the command: "ok" + body, or "error CODE MESSAGE" (the body is kept: it may
 * explain).  code is one word; the message is put on one line. */
void ctl_reply_ok(struct ctl_conn *c);
void ctl_reply_error(struct ctl_conn *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
