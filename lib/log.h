/* Logging in the OpenBSD style: one line per event on stderr, which journald and the
 * test harness both read.  fatal*() exit; *_warn() append strerror(errno).
 * Plain: "12:53:15.123 srmd info: message" (UTC).  When stderr is journald's stream
 * ($JOURNAL_STREAM names it, as systemd sets it for a service) or DUET_LOG_FORMAT=journal:
 * "<6>srmd info: message", the sd-daemon(3) priority prefix and no timestamp (journald
 * keeps its own), newlines inside a message folded.  DUET_LOG_FORMAT=plain forces plain. */
#ifndef DUET_LOG_H
#define DUET_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
