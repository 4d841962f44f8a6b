/* Heartbeat echo and round trip (hb_echo.h). */
#include "heartbeat/hb_echo.h"

#define RTT_MAX_US 60000000 /* larger echoes are bogus */

void hb_echo_fill(struct frame_heartbeat *hb, uint64_t now_us, uint64_t echo_time_us,
		  uint64_t echo_rx_us)
{
	if (!echo_time_us)
		return;
	uint64_t hold = now_us - echo_rx_us;
	hb->echo_time_us = echo_time_us;
	hb->echo_hold_us = hold > UINT32_MAX ? UINT32_MAX : (uint32_t)hold;
}

void hb_echo_rtt(struct peer_link_stats *s, const struct frame_heartbeat *hb,
		 uint64_t since_us, uint64_t now_us)
{
	/* Our own send time came back: RTT = now - then - time the peer held it. */
	if (hb->echo_time_us < since_us || hb->echo_time_us > now_us)
		return;
	uint64_t elapsed = now_us - hb->echo_time_us;
	if (elapsed < hb->echo_hold_us || elapsed - hb->echo_hold_us > RTT_MAX_US)
		return;
	uint32_t rtt = (uint32_t)(elapsed - hb->echo_hold_us);
	if (s->rtt_samples == 0) {
		s->rtt_min_us = s->rtt_max_us = s->rtt_srtt_us = rtt;
		s->rtt_rttvar_us = rtt / 2;
	} else {
		uint32_t dev = rtt > s->rtt_srtt_us ? rtt - s->rtt_srtt_us : s->rtt_srtt_us - rtt;
		s->rtt_rttvar_us = (uint32_t)(((uint64_t)s->rtt_rttvar_us * 3 + dev) / 4);
		s->rtt_srtt_us = (uint32_t)(((uint64_t)s->rtt_srtt_us * 7 + rtt) / 8);
		if (rtt < s->rtt_min_us)
			s->rtt_min_us = rtt;
		if (rtt > s->rtt_max_us)
			s->rtt_max_us = rtt;
	}
	s->rtt_last_us = rtt;
	s->rtt_samples++;
}
