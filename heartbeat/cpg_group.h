/* One corosync CPG group membership on a libevent loop (libcpg): connect and join, dispatch
 * the cpg fd with cpg_dispatch(CS_DISPATCH_ALL), reconnect with backoff when corosync goes
 * away (dispatch fails with CS_ERR_LIBRARY when it dies or restarts), and multicast with a
 * bounded FIFO for CS_ERR_TRY_AGAIN (corosync's flow control and the pause while membership
 * is being decided).  It knows nothing of what the messages mean: cpg_transport.c does.
 *
 * Members are (corosync node id, pid) pairs.  Our own messages are delivered back to us in
 * the group's total order, after everything delivered before them.  Callbacks run inside
 * cpg_dispatch on the event loop; they may send, but must not free the group. */
#ifndef DUET_CPG_GROUP_H
#define DUET_CPG_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cpg_group;

struct cpg_member {
	uint32_t nodeid;
	uint32_t pid;
};

struct cpg_group_callbacks {
	/* We joined (again): the group's members, us included. */
	void (*on_joined)(void *arg, const struct cpg_member *members, size_t n);
	/* Another process joined the group. */
	void (*on_member_joined)(void *arg, struct cpg_member m);
	/* A process left: reason is CPG_REASON_LEAVE (it left or finalized), _NODEDOWN (its
	 * node left the corosync membership) or _PROCDOWN (it died). */
	void (*on_member_left)(void *arg, struct cpg_member m, uint32_t reason);
	/* A message multicast by a member (possibly us); msg valid only during the call. */
	void (*on_message)(void *arg, struct cpg_member from, const uint8_t *msg, size_t len);
	/* Our connection to corosync is lost; the group reconnects by itself. */
	void (*on_lost)(void *arg);
};

/* Messages queued while corosync says "try again", in bytes. */
#define CPG_GROUP_MAX_QUEUE (4u << 20)
/* Reconnection backoff after corosync went away or refused us. */
#define CPG_GROUP_RETRY_MIN_MS 100u
#define CPG_GROUP_RETRY_MAX_MS 2000u

/* Starts connecting at once.  NULL only on a bad name or out of memory; corosync not
 * running is not an error (it is retried). */
struct cpg_group *cpg_group_new(struct event_base *base, const char *name,
				const struct cpg_group_callbacks *cbs, void *arg);
/* Leaves the group (cpg_finalize) and frees; queued messages are dropped. */
void cpg_group_free(struct cpg_group *g);

/* Multicast len bytes to the group (agreed order).  0 if sent or queued, -1 if we are not
 * joined, len is over the limit, or the queue is full. */
int cpg_group_send(struct cpg_group *g, const void *msg, size_t len);
bool cpg_group_joined(const struct cpg_group *g);
struct cpg_member cpg_group_self(const struct cpg_group *g);
bool cpg_member_eq(struct cpg_member a, struct cpg_member b);
/* Dispatch whatever corosync has queued for us now (used before a timeout decides). */
void cpg_group_poll(struct cpg_group *g);
/* The largest message corosync delivers whole; we refuse larger ones. */
#define CPG_GROUP_MAX_MSG (64u << 10)
const char *cpg_reason_name(uint32_t reason);

#endif
