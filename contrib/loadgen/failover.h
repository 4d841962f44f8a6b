/* duet-loadgen --mode failover: clients that live through a failover (docs/benchmarks.md,
 * "Failover").  Every client logs in, chats with its partner (users 2i-1 and 2i) and keeps
 * a record of every message it sent (seq), which ones the server confirmed (an iq ping
 * answered after the message on the same connection: the server has routed everything
 * that connection sent before it) and every
 * message it received.  When its session ends it comes back by itself:
 *   - see-other-host: at once, to the host:port named;
 *   - resource-constraint with <retry-after seconds='N'/>: after N s (+ up to 1 s);
 *   - anything else: the first time after a uniform draw over the re-login spread the
 *     server advertised in disco#info (upper - lower of the urn:duet:relogin:0 form), if
 *     any, then with jittered exponential backoff, alternating between --host and
 *     --alt-host for attempts that fail before a login.
 * SIGUSR1 marks the fault: recovery times are measured from it, and the run ends once every
 * client that lost its session is back for --settle s (or --after-mark s passed), or at
 * SIGUSR2 (the caller decides when the run is over); then sending stops, in-flight messages
 * drain, and the counts and a timeline are printed. */
#ifndef LOADGEN_FAILOVER_H
#define LOADGEN_FAILOVER_H

#include <stdint.h>
#include <stdio.h>

struct lg;
struct client;
struct xin_stanza;

int fo_init(struct lg *lg);
void fo_free(struct lg *lg);
/* Start user u's first connection (arrivals of the login phase). */
void fo_start(struct lg *lg, int user, uint64_t sched_ns);
void fo_mark(struct lg *lg, uint64_t now);
/* Stop sending now and end once in-flight messages have drained (SIGUSR2). */
void fo_end(struct lg *lg, uint64_t now);
/* Every tick: messages due, reconnects due, the timeline, the end.  1 = finished. */
int fo_tick(struct lg *lg, uint64_t now);

/* client.c */
void fo_on_login(struct lg *lg, struct client *c, int user);
void fo_on_message(struct lg *lg, int user, const struct xin_stanza *st);
void fo_on_iq(struct lg *lg, int user, const struct xin_stanza *st);
/* The connection of user ended (c is about to be freed); was_online: it had logged in. */
void fo_on_gone(struct lg *lg, struct client *c, int user, int was_online);

void fo_report(const struct lg *lg, FILE *out, int json);

#endif
