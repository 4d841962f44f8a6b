/* srmctl's side of the control socket: one request, one response. */
#include "ha/srmctl/srmctl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SRMCTL_TIMEOUT_S 60 /* PBKDF2 at a high iteration count takes a while */

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

static int connect_srmd(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "srmctl: socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "srmctl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		fprintf(stderr, "srmctl: cannot reach srmd at %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	struct timeval tv = {SRMCTL_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

static int send_request(int fd, const struct srmctl_env *env, const char *const *fields,
			int nfields)
{
	size_t len = 2 + (env->json ? 7 : 0) + (env->local ? 8 : 0);
	for (int i = 0; i < nfields; i++)
		len += strlen(fields[i]) + 1;
	char *line = malloc(len + 1);
	if (!line)
		return -1;
	char *p = line;
	p += sprintf(p, "1");
	if (env->json)
		p += sprintf(p, "\t--json");
	if (env->local)
		p += sprintf(p, "\t--local");
	for (int i = 0; i < nfields; i++) {
		size_t n = strlen(fields[i]);
		*p++ = '\t';
		memcpy(p, fields[i], n);
		p += n;
	}
	*p++ = '\n';
	int rc = write_all(fd, line, (size_t)(p - line));
	explicit_bzero(line, len + 1); /* may hold a password */
	free(line);
	return rc;
}

/* The state machine refused the command now, or there is no pair to act on: a distinct
 * exit code so that a script can tell "not now" from a failure. */
static int error_exit_code(const char *code)
{
	if (strcmp(code, "refused") == 0 || strcmp(code, "no-peer") == 0)
		return SRMCTL_REFUSED;
	return SRMCTL_ERROR;
}

/* Read "ok"/"error ..." then body lines up to ".", printing the body on stdout. */
static int read_response(int fd, const char *path)
{
	FILE *in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return SRMCTL_UNREACHABLE;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = SRMCTL_UNREACHABLE;
	char *status = NULL;
	while ((n = getline(&line, &cap, in)) >= 0) {
		if (n == 0 || line[n - 1] != '\n')
			break; /* cut short */
		line[n - 1] = '\0';
		if (!status) {
			status = strdup(line);
			if (!status)
				break;
			continue;
		}
		if (strcmp(line, ".") == 0) {
			rc = SRMCTL_OK;
			break;
		}
		puts(line[0] == '.' ? line + 1 : line);
	}
	int read_errno = errno;
	if (rc == SRMCTL_OK && strcmp(status, "ok") == 0) {
		rc = SRMCTL_OK;
	} else if (rc == SRMCTL_OK && strncmp(status, "error ", 6) == 0) {
		char *code = status + 6;
		char *msg = strchr(code, ' ');
		if (msg)
			*msg++ = '\0';
		fprintf(stderr, "srmctl: %s (%s)\n", msg && *msg ? msg : "failed", code);
		rc = error_exit_code(code);
	} else if (rc == SRMCTL_OK) {
		fprintf(stderr, "srmctl: unexpected response from srmd: %.100s\n", status);
		rc = SRMCTL_UNREACHABLE;
	} else {
		fprintf(stderr, "srmctl: srmd at %s did not answer completely%s%s\n", path,
			ferror(in) ? ": " : "", ferror(in) ? strerror(read_errno) : "");
	}
	free(status);
	free(line);
	fclose(in);
	return rc;
}

int srmctl_request(const struct srmctl_env *env, const char *const *fields, int nfields)
{
	signal(SIGPIPE, SIG_IGN);
	int fd = connect_srmd(env->socket);
	if (fd < 0)
		return SRMCTL_UNREACHABLE;
	if (send_request(fd, env, fields, nfields) < 0) {
		fprintf(stderr, "srmctl: cannot send to srmd at %s: %s\n", env->socket,
			strerror(errno));
		close(fd);
		return SRMCTL_UNREACHABLE;
	}
	fflush(stdout);
	return read_response(fd, env->socket);
}

int srmctl_check_field(const char *what, const char *s)
{
	if (strpbrk(s, "\t\r\n")) {
		fprintf(stderr, "srmctl: %s must not contain TAB, CR or newline\n", what);
		return -1;
	}
	return 0;
}
