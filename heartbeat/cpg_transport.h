/* The `corosync` peer transport (docs/peer-protocol.md §8, docs/deploy-corosync.md).
 *
 * Both srmds join one CPG group ([peer] cpg_group, default "duet") through the local
 * corosync.  Corosync's membership is the failure detector: the peer leaving the group
 * without a goodbye (its node left the totem ring: token + consensus of silence; or its
 * process died) is Peer Down; a GOODBYE multicast before a clean leave is Peer Reboot; the
 * peer joining and saying HELLO is Peer Up.  The HA frames (HELLO, HEARTBEAT, GOODBYE and
 * APP subtypes 1-255, the layout of heartbeat/frame.h, one frame per CPG message) travel as
 * CPG messages in corosync's agreed order.  Replication (APP 256-511) keeps its own TLS
 * connection: a tcp peer link used as a data path only, whose timeouts never reach the state
 * machine.  A peer that stays a member but sends nothing for [peer] hang_timeout (a hung
 * srmd: corosync cannot see that) is reported down too, and back up when it speaks again.
 * Losing our own corosync is reported as Peer Down (we can no longer know), and the group is
 * rejoined with backoff. */
#ifndef DUET_CPG_TRANSPORT_H
#define DUET_CPG_TRANSPORT_H

#include "heartbeat/transport.h"

struct peer_transport *cpg_transport_new(struct event_base *base, const struct duet_config *cfg,
					 const struct peer_transport_callbacks *cbs, void *arg);

#endif
