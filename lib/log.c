#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "duet";
static enum log_level log_level = LOG_LVL_INFO;
static int log_journal; /* stderr is journald's stream: <N> prefixes, no timestamps */

/* sd-daemon(3) priorities: <2> crit, <3> err, <4> warning, <6> info, <7> debug. */
#define PRI_CRIT 2
#define PRI_WARNING 4
#define PRI_INFO 6
#define PRI_DEBUG 7

/* systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stderr is a journal stream; it
 * is ours only if stderr is still that stream (not redirected by a script in between). */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	if (!js || !*js)
		return 0;
	unsigned long long dev, ino;
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *progname, enum log_level level)
{
	log_prog = progname;
	log_level = level;
	const char *env = getenv("DUET_DEBUG");
	if (env && *env && strcmp(env, "0") != 0)
		log_level = LOG_LVL_DEBUG;
	/* DUET_LOG_FORMAT=journal|plain overrides the detection (e.g. stderr piped on to
	 * systemd-cat, or a plain log wanted under systemd). */
	const char *fmt = getenv("DUET_LOG_FORMAT");
	if (fmt && strcmp(fmt, "journal") == 0)
		log_journal = 1;
	else if (fmt && strcmp(fmt, "plain") == 0)
		log_journal = 0;
	else
		log_journal = stderr_is_journal();
}

void log_set_level(enum log_level level) { log_level = level; }

int log_enabled(enum log_level level) { return level <= log_level; }

static void log_vwrite(int pri, const char *tag, int err, const char *fmt, va_list ap)
{
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (log_journal) {
		/* One journal entry per event: a newline inside (a libpq message) would start
		 * an entry without a priority. */
		for (char *p = msg; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		if (err)
			fprintf(stderr, "<%d>%s %s: %s: %s\n", pri, log_prog, tag, msg,
				strerror(err));
		else
			fprintf(stderr, "<%d>%s %s: %s\n", pri, log_prog, tag, msg);
		return;
	}
	struct timespec ts;
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

#define LOG_BODY(level, pri, tag, err)                                                      \
	do {                                                                                \
		if (!log_enabled(level))                                                    \
			return;                                                             \
		va_list ap;                                                                 \
		va_start(ap, fmt);                                                          \
		log_vwrite(pri, tag, err, fmt, ap);                                         \
		va_end(ap);                                                                 \
	} while (0)

void log_warn(const char *fmt, ...)
{
	int e = errno;
	LOG_BODY(LOG_LVL_WARN, PRI_WARNING, "warning", e);
}
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_LVL_WARN, PRI_WARNING, "warning", 0); }
void log_info(const char *fmt, ...) { LOG_BODY(LOG_LVL_INFO, PRI_INFO, "info", 0); }
void log_debug(const char *fmt, ...) { LOG_BODY(LOG_LVL_DEBUG, PRI_DEBUG, "debug", 0); }

void fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(PRI_CRIT, "fatal", e, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(PRI_CRIT, "fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
