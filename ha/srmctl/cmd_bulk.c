/* srmctl's bulk tools (docs/bulk-tools.md): contacts export|import|rename, users
 * export|import|assign|unassign|check, user unassign.  Files never cross the control socket
 * in one message: an export is fetched page by page (each answer names the cursor of the
 * next page) and written to FILE.tmp, renamed to FILE once complete; an import streams FILE
 * as the request body (dot-stuffed lines ended by ".", docs/srmctl-protocol.md "Request
 * body"), which srmd reads at its own pace.  Commands that change data are confirmed first
 * (srmctl_confirm), as the pair-changing ones are. */
#include "ha/srmctl/srmctl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BULK_TIMEOUT_S 600 /* a batch of a big import may keep srmd from reading a while */
#define CURSOR_MAX 8000

static int bulk_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "srmctl: socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		fprintf(stderr, "srmctl: cannot reach srmd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct timeval tv = {BULK_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_line(int fd, const struct srmctl_env *env, const char *const *fields, int n)
{
	char line[8192];
	size_t used = (size_t)snprintf(line, sizeof line, "1%s", env->json ? "\t--json" : "");
	for (int i = 0; i < n; i++) {
		if (strpbrk(fields[i], "\t\r\n") || used + strlen(fields[i]) + 2 >= sizeof line)
			return -1;
		used += (size_t)snprintf(line + used, sizeof line - used, "\t%s", fields[i]);
	}
	line[used++] = '\n';
	return write_all(fd, line, used);
}

/* FILE as the request body: every line that starts with "." gets one more, then ".". */
static int send_body(int fd, FILE *in)
{
	char buf[65536], out[2 * sizeof buf];
	int at_start = 1;
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			if (at_start && buf[i] == '.')
				out[o++] = '.';
			out[o++] = buf[i];
			at_start = buf[i] == '\n';
		}
		if (write_all(fd, out, o) < 0)
			return -1;
	}
	if (ferror(in))
		return -2;
	if (!at_start && write_all(fd, "\n", 1) < 0)
		return -1;
	return write_all(fd, ".\n", 2);
}

/* The response: status line, then body lines to line_fn until ".".  Returns the exit code
 * (an "error" is printed on stderr). */
static int read_response(int fd, const char *path, void (*line_fn)(void *arg, char *line),
			 void *arg)
{
	FILE *in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return SRMCTL_UNREACHABLE;
	}
	char *line = NULL, *status = NULL;
	size_t cap = 0;
	ssize_t n;
	int complete = 0;
	while ((n = getline(&line, &cap, in)) >= 0) {
		if (n == 0 || line[n - 1] != '\n')
			break;
		line[n - 1] = '\0';
		if (!status) {
			if (!(status = strdup(line)))
				break;
			continue;
		}
		if (strcmp(line, ".") == 0) {
			complete = 1;
			break;
		}
		line_fn(arg, line[0] == '.' ? line + 1 : line);
	}
	int rc;
	if (!complete) {
		fprintf(stderr, "srmctl: srmd at %s did not answer completely\n", path);
		rc = SRMCTL_UNREACHABLE;
	} else if (strcmp(status, "ok") == 0) {
		rc = SRMCTL_OK;
	} else if (strncmp(status, "error ", 6) == 0) {
		char *code = status + 6, *msg = strchr(code, ' ');
		if (msg)
			*msg++ = '\0';
		fprintf(stderr, "srmctl: %s (%s)\n", msg && *msg ? msg : "failed", code);
		rc = strcmp(code, "refused") == 0 || strcmp(code, "no-peer") == 0 ? SRMCTL_REFUSED
										  : SRMCTL_ERROR;
	} else {
		fprintf(stderr, "srmctl: unexpected response from srmd: %.100s\n", status);
		rc = SRMCTL_UNREACHABLE;
	}
	free(status);
	free(line);
	fclose(in);
	return rc;
}

static void print_line(void *arg, char *line)
{
	puts(line);
}

/* ---- exports: pages into FILE ---- */

struct page {
	FILE *out;
	int first;            /* the next line is the page's "more CURSOR" / "done" */
	char cursor[CURSOR_MAX];
	int more;
	long lines;
	int bad;
};

static void page_line(void *arg, char *line)
{
	struct page *pg = arg;
	if (pg->first) {
		pg->first = 0;
		if (strncmp(line, "more ", 5) == 0 && strlen(line + 5) < sizeof pg->cursor) {
			snprintf(pg->cursor, sizeof pg->cursor, "%s", line + 5);
			pg->more = 1;
		} else if (strcmp(line, "done") == 0) {
			pg->more = 0;
		} else {
			pg->bad = 1;
		}
		return;
	}
	if (fprintf(pg->out, "%s\n", line) < 0)
		pg->bad = 2;
	pg->lines++;
}

static int export_pages(const struct srmctl_env *env, const char *what, const char *file,
			const char *selection)
{
	if (srmctl_check_field("SELECTION", selection) < 0)
		return SRMCTL_USAGE;
	int to_stdout = strcmp(file, "-") == 0;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	struct page pg = {.out = to_stdout ? stdout : fopen(tmp, "w"), .cursor = "-"};
	if (!pg.out) {
		fprintf(stderr, "srmctl: %s: %s\n", tmp, strerror(errno));
		return SRMCTL_USAGE;
	}
	int rc;
	long pages = 0;
	struct srmctl_env plain = *env;
	plain.json = 0;
	do {
		pg.first = 1;
		pg.more = 0;
		int fd = bulk_connect(env->socket);
		if (fd < 0) {
			rc = SRMCTL_UNREACHABLE;
			break;
		}
		const char *fields[] = {what, "export", selection, pg.cursor};
		if (send_line(fd, &plain, fields, 4) < 0) {
			close(fd);
			fprintf(stderr, "srmctl: cannot send to srmd at %s\n", env->socket);
			rc = SRMCTL_UNREACHABLE;
			break;
		}
		rc = read_response(fd, env->socket, page_line, &pg);
		pages++;
		if (rc == SRMCTL_OK && pg.bad) {
			fprintf(stderr, pg.bad == 2 ? "srmctl: cannot write %s\n"
						    : "srmctl: srmd answered an export page without "
						      "its cursor line (%s)\n",
				to_stdout ? "standard output" : tmp);
			rc = SRMCTL_UNREACHABLE;
		}
	} while (rc == SRMCTL_OK && pg.more);
	if (to_stdout) {
		fflush(stdout);
		return rc;
	}
	if (fclose(pg.out) != 0 && rc == SRMCTL_OK) {
		fprintf(stderr, "srmctl: %s: %s\n", tmp, strerror(errno));
		rc = SRMCTL_ERROR;
	}
	if (rc != SRMCTL_OK) {
		unlink(tmp);
		return rc;
	}
	if (rename(tmp, file) < 0) {
		fprintf(stderr, "srmctl: rename %s: %s\n", file, strerror(errno));
		unlink(tmp);
		return SRMCTL_ERROR;
	}
	printf("%s export: %ld lines written to %s (%ld pages)\n", what, pg.lines, file, pages);
	return SRMCTL_OK;
}

/* ---- imports: FILE as the body ---- */

static int send_file(const struct srmctl_env *env, const char *file, const char *const *fields,
		     int n)
{
	FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (!in) {
		fprintf(stderr, "srmctl: %s: %s\n", file, strerror(errno));
		return SRMCTL_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	int fd = bulk_connect(env->socket);
	if (fd < 0) {
		if (in != stdin)
			fclose(in);
		return SRMCTL_UNREACHABLE;
	}
	int sent = send_line(fd, env, fields, n);
	if (sent == 0)
		sent = send_body(fd, in);
	if (sent == -2) {
		fprintf(stderr, "srmctl: reading %s: %s\n", file, strerror(errno));
		if (in != stdin)
			fclose(in);
		close(fd); /* srmd sees the body end early and discards it */
		return SRMCTL_USAGE;
	}
	if (in != stdin)
		fclose(in);
	/* A send error means srmd answered early (it stops reading then): read why. */
	fflush(stdout);
	return read_response(fd, env->socket, print_line, NULL);
}

/* Arguments without --yes / -y. */
static int plain_args(int argc, char **argv, const char **plain, int max)
{
	int n = 0;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--yes") != 0 && strcmp(argv[i], "-y") != 0) {
			if (n < max)
				plain[n] = argv[i];
			n++;
		}
	return n;
}

static const struct srmctl_cmd *cmd_named(const char *name);

static int exec_contacts_export(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return srmctl_usage_error(cmd_named("contacts export"), "expected FILE [SELECTION]");
	return export_pages(env, "contacts", argv[0], argc > 1 ? argv[1] : "all");
}

static int exec_users_export(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return srmctl_usage_error(cmd_named("users export"), "expected FILE [SELECTION]");
	return export_pages(env, "users", argv[0], argc > 1 ? argv[1] : "unassigned");
}

static int exec_contacts_import(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = cmd_named("contacts import");
	const char *p[1];
	if (plain_args(argc, argv, p, 1) != 1)
		return srmctl_usage_error(cmd, "expected FILE");
	int rc = srmctl_confirm(env, cmd, &argc, argv,
				"Import the contacts of %s into the contact lists of the users this "
				"node serves?",
				p[0]);
	if (rc)
		return rc;
	const char *fields[] = {"contacts", "import"};
	return send_file(env, argv[0], fields, 2);
}

static int exec_contacts_rename(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = cmd_named("contacts rename");
	const char *p[1];
	if (plain_args(argc, argv, p, 1) != 1)
		return srmctl_usage_error(cmd, "expected FILE");
	int rc = srmctl_confirm(env, cmd, &argc, argv,
				"Rename the contact IDs listed in %s in every contact list this "
				"node serves?",
				p[0]);
	if (rc)
		return rc;
	const char *fields[] = {"contacts", "rename"};
	return send_file(env, argv[0], fields, 2);
}

static int node_ok(const char *n)
{
	return !strcmp(n, "1") || !strcmp(n, "2") || !strcmp(n, "none");
}

static int exec_users_import(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = cmd_named("users import");
	const char *p[2];
	int n = plain_args(argc, argv, p, 2);
	if (n < 1 || n > 2)
		return srmctl_usage_error(cmd, "expected FILE [NODE]");
	if (n == 2 && !node_ok(p[1]))
		return srmctl_usage_error(cmd, "NODE must be 1, 2 or none");
	int rc = srmctl_confirm(env, cmd, &argc, argv,
				"Import the users of %s (accounts, contacts, vCards, offline "
				"messages)%s%s?",
				p[0], n == 2 ? " with home node " : " unassigned",
				n == 2 ? p[1] : "");
	if (rc)
		return rc;
	const char *fields[] = {"users", "import", argc > 1 ? argv[1] : NULL};
	return send_file(env, argv[0], fields, argc > 1 ? 3 : 2);
}

static int assign_file(const struct srmctl_env *env, const struct srmctl_cmd *cmd, int argc,
		       char **argv, const char *node)
{
	int rc = strcmp(node, "none") == 0
			 ? srmctl_confirm(env, cmd, &argc, argv,
					  "Unassign every user of %s (they cannot log in here "
					  "until assigned again)?",
					  argv[0])
			 : srmctl_confirm(env, cmd, &argc, argv,
					  "Set the home node of every user of %s to node %s?",
					  argv[0], node);
	if (rc)
		return rc;
	const char *fields[] = {"users", "assign", node};
	return send_file(env, argv[0], fields, 3);
}

static int exec_users_assign(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = cmd_named("users assign");
	const char *p[2];
	if (plain_args(argc, argv, p, 2) != 2)
		return srmctl_usage_error(cmd, "expected FILE NODE");
	if (!node_ok(p[1]))
		return srmctl_usage_error(cmd, "NODE must be 1, 2 or none");
	char node[8];
	snprintf(node, sizeof node, "%s", p[1]);
	/* NODE is not part of the file argument: keep only FILE (and --yes) in argv. */
	int k = 0;
	for (int i = 0; i < argc; i++)
		if (argv[i] != p[1])
			argv[k++] = argv[i];
	return assign_file(env, cmd, k, argv, node);
}

static int exec_users_unassign(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = cmd_named("users unassign");
	const char *p[1];
	if (plain_args(argc, argv, p, 1) != 1)
		return srmctl_usage_error(cmd, "expected FILE");
	return assign_file(env, cmd, argc, argv, "none");
}

static int exec_user_unassign(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = cmd_named("user unassign");
	const char *p[1];
	if (plain_args(argc, argv, p, 1) != 1)
		return srmctl_usage_error(cmd, "expected one JID");
	int rc = srmctl_confirm(env, cmd, &argc, argv,
				"Unassign %s%s (it cannot log in until assigned again)?", p[0],
				env->local ? " on this node only (--local)" : "");
	if (rc)
		return rc;
	if (srmctl_check_field("the JID", argv[0]) < 0)
		return SRMCTL_USAGE;
	const char *fields[] = {"user", "assign", argv[0], "none"};
	return srmctl_request(env, fields, 4);
}

static int exec_users_check(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(cmd_named("users check"), "no arguments expected");
	const char *fields[] = {"users", "check"};
	return srmctl_request(env, fields, 2);
}

const struct srmctl_cmd srmctl_bulk_cmds[] = {
	{"contacts export", "FILE [SELECTION]",
	 "contact lists as the manual's CSV (all, unassigned, 1, 2, a JID)", 0, 0,
	 exec_contacts_export},
	{"contacts import", "FILE [--json] [--yes]", "add a CSV's contacts; skipped rows, reasons",
	 1, 0, exec_contacts_import},
	{"contacts rename", "FILE [--json] [--yes]", "rename contact IDs (CSV: old ID, new ID)", 1, 0,
	 exec_contacts_rename},
	{"users export", "FILE [SELECTION]",
	 "accounts, contacts, vCards, offline (default: unassigned)", 0, 0,
	 exec_users_export},
	{"users import", "FILE [NODE] [--json] [--yes]", "create the users of an export file",
	 1, 0, exec_users_import},
	{"users assign", "FILE NODE [--json] [--yes]", "set the home node of every user in FILE", 1, 0,
	 exec_users_assign},
	{"users unassign", "FILE [--yes]", "unassign every user in FILE", 1, 0,
	 exec_users_unassign},
	{"user unassign", "JID [--yes]", "unassign one user (user assign JID none)", 0, 1,
	 exec_user_unassign},
	{"users check", "[--json]", "duplicate and invalid user IDs (runs the check now)", 1, 0,
	 exec_users_check},
	{0, 0, 0, 0, 0, 0},
};

static const struct srmctl_cmd *cmd_named(const char *name)
{
	for (const struct srmctl_cmd *c = srmctl_bulk_cmds; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return srmctl_bulk_cmds;
}
