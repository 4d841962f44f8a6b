/* sd_notify without libsystemd (see sd_notify.h). */
#include "ha/sd_notify.h"

#include "lib/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un notify_addr;
static socklen_t notify_len; /* 0: not under systemd */

void sd_notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	notify_len = 0;
	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) < 2 ||
	    strlen(path) >= sizeof notify_addr.sun_path) {
		unsetenv("NOTIFY_SOCKET");
		return;
	}
	memset(&notify_addr, 0, sizeof notify_addr);
	notify_addr.sun_family = AF_UNIX;
	size_t n = strlen(path);
	memcpy(notify_addr.sun_path, path, n);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0'; /* abstract: the length, not a NUL, ends it */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
				 (path[0] == '/' ? 1 : 0));
	unsetenv("NOTIFY_SOCKET");
}

void sd_notify_send(const char *msg)
{
	if (!notify_len)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_debug("sd_notify: socket: %s", strerror(errno));
		return;
	}
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
		   notify_len) < 0)
		log_debug("sd_notify: %s", strerror(errno));
	close(fd);
}

void sd_notify_status(long node_id, const char *state, const char *reason)
{
	char msg[256];
	snprintf(msg, sizeof msg, "STATUS=node %ld: %s (%s)", node_id, state, reason);
	sd_notify_send(msg);
}
