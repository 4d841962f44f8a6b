#include "ha/ha_state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ha_state_file_load(const char *path, struct ha_snapshot *snap, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[512];
	ssize_t n = read(fd, line, sizeof line - 1);
	int saved = errno;
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		return -1;
	}
	line[n] = '\0';
	if ((size_t)n == sizeof line - 1 || strlen(line) != (size_t)n ||
	    ha_snapshot_parse(line, snap) != 0) {
		snprintf(err, errlen, "%s: malformed HA state", path);
		return -1;
	}
	return 0;
}

int ha_state_file_save(const char *path, const struct ha_snapshot *snap, char *err,
		       size_t errlen)
{
	char line[512], tmp[PATH_MAX];
	int len = ha_snapshot_format(snap, line, sizeof line);
	if (len < 0 || (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
		snprintf(err, errlen, "%s: cannot format the HA state", path);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	ssize_t w = write(fd, line, (size_t)len);
	if (w != len || fsync(fd) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, w < 0 || w == len ? strerror(errno)
								 : "short write");
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	/* The rename itself must survive a crash too. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}
