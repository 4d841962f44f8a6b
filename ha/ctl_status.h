/* Shared by the status views (ctl_status.c: the full view, replication, the data gathering;
 * ctl_status_brief.c: the one-screen table of both nodes). */
#ifndef DUET_CTL_STATUS_H
#define DUET_CTL_STATUS_H

#include <stddef.h>
#include <time.h>

struct ctl_conn;
struct srm;
struct repl_lag;

/* "2024-11-24T12:53:15Z" */
void ctl_time_iso(time_t t, char *buf, size_t len);
/* off, handshake, incremental, full-resync, stopped */
const char *ctl_repl_phase_name(int phase);
/* srmctl status --brief (request `status brief`).  sessions: a single node's engine count,
 * -1 when unknown; lag: the outgoing lag from the database, NULL when unknown. */
void ctl_status_brief_render(struct ctl_conn *c, struct srm *srm, long sessions,
			     const struct repl_lag *lag);

#endif
