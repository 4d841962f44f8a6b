#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_prog = "duet";
static enum log_level log_level = LOG_LVL_INFO;

void log_init(const char *progname, enum log_level level)
{
	log_prog = progname;
	log_level = level;
	const char *env = getenv("DUET_DEBUG");
	if (env && *env && strcmp(env, "0") != 0)
		log_level = LOG_LVL_DEBUG;
}

void log_set_level(enum log_level level) { log_level = level; }

int log_enabled(enum log_level level) { return level <= log_level; }

static void log_vwrite(const char *tag, int err, const char *fmt, va_list ap)
{
	char msg[2048];
	struct timespec ts;

	vsnprintf(msg, sizeof msg, fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	if (err)
		fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s: %s\n", tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, log_prog, tag, msg, strerror(err));
	else
		fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, log_prog, tag, msg);
}

#define LOG_BODY(level, tag, err)                                                           \
	do {                                                                                \
		if (!log_enabled(level))                                                    \
			return;                                                             \
		va_list ap;                                                                 \
		va_start(ap, fmt);                                                          \
		log_vwrite(tag, err, fmt, ap);                                              \
		va_end(ap);                                                                 \
	} while (0)

void log_warn(const char *fmt, ...) { int e = errno; LOG_BODY(LOG_LVL_WARN, "warning", e); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_LVL_WARN, "warning", 0); }
void log_info(const char *fmt, ...) { LOG_BODY(LOG_LVL_INFO, "info", 0); }
void log_debug(const char *fmt, ...) { LOG_BODY(LOG_LVL_DEBUG, "debug", 0); }

void fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite("fatal", e, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite("fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
