/* The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram of
 * "KEY=value" lines to the unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace).  srmd says READY=1 once operators can reach it, STATUS= on every
 * state change (shown by `systemctl status`) and STOPPING=1 on SIGTERM.  Without
 * $NOTIFY_SOCKET (not started by systemd with Type=notify) every call does nothing. */
#ifndef DUET_SD_NOTIFY_H
#define DUET_SD_NOTIFY_H

/* Read $NOTIFY_SOCKET and remove it from the environment, so that the engine and notify
 * scripts srmd starts do not inherit it.  Call once, early. */
void sd_notify_init(void);
/* Send msg ("READY=1", "STATUS=..."); failures are logged at debug level only. */
void sd_notify_send(const char *msg);
/* "STATUS=node N: STATE (REASON)" */
void sd_notify_status(long node_id, const char *state, const char *reason);

#endif
