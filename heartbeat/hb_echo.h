/* The heartbeat echo both transports use (tcp: peer_link_*.c, corosync: cpg_transport.c):
 * every HEARTBEAT carries the send time of the last one heard from the peer and how long it
 * was held here; the peer's echo of ours gives the round trip, folded into the link's
 * statistics the way TCP smooths it (RFC 6298: srtt, rttvar). */
#ifndef DUET_HB_ECHO_H
#define DUET_HB_ECHO_H

#include <stdint.h>

#include "heartbeat/frame.h"
#include "heartbeat/peer_link.h"

/* Fill hb's echo: the peer's send time echo_time_us, heard at echo_rx_us (0: none yet). */
void hb_echo_fill(struct frame_heartbeat *hb, uint64_t now_us, uint64_t echo_time_us,
		  uint64_t echo_rx_us);
/* A heartbeat from the peer arrived at now_us: when it echoes one of ours sent since
 * since_us (this link's creation), its round trip goes into s. */
void hb_echo_rtt(struct peer_link_stats *s, const struct frame_heartbeat *hb,
		 uint64_t since_us, uint64_t now_us);

#endif
