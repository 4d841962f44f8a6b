/* Corosync's quorum as srmd needs it ([peer] require_quorum, docs/deploy-corosync.md §7).
 *
 * libquorum tracks whether this node's partition is quorate (quorum_trackstart with
 * CS_TRACK_CHANGES on the libevent loop; each notification names the membership it was
 * computed for), and libvotequorum tells whether quorum means anything for the pair: with
 * `two_node: 1` both halves of a partition stay quorate, so only a third vote (a quorum
 * device, or a third corosync node: expected votes above 2) makes one side lose it.
 * Reconnects with backoff when corosync goes away; until corosync answers again the quorum
 * is unknown, which counts as lost wherever it is required.  It decides nothing about the
 * peer: cpg_transport.c orders quorum changes against membership changes. */
#ifndef DUET_QUORUM_WATCH_H
#define DUET_QUORUM_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct quorum_watch;

enum quorum_require {
	QUORUM_REQUIRE_AUTO, /* when corosync has a third vote (expected votes > 2, a device) */
	QUORUM_REQUIRE_YES,
	QUORUM_REQUIRE_NO,
};

#define QUORUM_WATCH_MAX_NODES 64

struct quorum_view {
	bool known;           /* corosync answered since the last (re)connection */
	bool quorate;
	uint64_t ring_seq;    /* the membership the last notification was computed for */
	size_t n_nodes;
	uint32_t nodes[QUORUM_WATCH_MAX_NODES];
	/* from votequorum, refreshed with every notification (0 when it did not answer) */
	uint32_t expected_votes, total_votes, quorum_votes, device_votes;
	bool device_registered, two_node;
	bool third_vote;      /* auto: what corosync said last (kept while it is away) */
	bool third_vote_seen; /* ... and whether it ever said */
};

struct quorum_watch_callbacks {
	/* The view changed (a notification, or corosync lost: known false).  May run inside
	 * quorum_watch_poll(). */
	void (*on_change)(void *arg);
};

#define QUORUM_WATCH_RETRY_MIN_MS 100u
#define QUORUM_WATCH_RETRY_MAX_MS 2000u

const char *quorum_require_name(enum quorum_require r);
/* "auto", "yes" or "no"; -1 for anything else. */
int quorum_require_parse(const char *s);

/* Starts connecting at once (corosync not running is retried, not an error).  NULL only
 * when out of memory. */
struct quorum_watch *quorum_watch_new(struct event_base *base, enum quorum_require req,
				      const struct quorum_watch_callbacks *cbs, void *arg);
void quorum_watch_free(struct quorum_watch *q);

const struct quorum_view *quorum_watch_view(const struct quorum_watch *q);
/* Whether quorum counts here: yes, or auto with a third vote (or auto before corosync has
 * ever answered: nothing is known yet). */
bool quorum_watch_required(const struct quorum_watch *q);
/* Required and not known to be quorate. */
bool quorum_watch_lost(const struct quorum_watch *q);
/* The last notification's membership includes corosync node id. */
bool quorum_watch_has_node(const struct quorum_watch *q, uint32_t nodeid);
/* Dispatch what corosync has queued for us now. */
void quorum_watch_poll(struct quorum_watch *q);
/* Our corosync is gone (the CPG connection saw it first): forget the view and reconnect. */
void quorum_watch_reset(struct quorum_watch *q);

#endif
