/* Failure detector: see detector.h for the rules. */
#include "heartbeat/detector.h"

#include <string.h>

int detector_config_check(const struct detector_config *cfg)
{
	if (cfg->interval_ms == 0 || cfg->dead_timeout_ms == 0)
		return -1;
	if ((uint64_t)cfg->dead_timeout_ms < (uint64_t)cfg->interval_ms * DETECTOR_MIN_INTERVALS)
		return -1;
	return 0;
}

void detector_init(struct detector *d, const struct detector_config *cfg, uint64_t now_ms)
{
	memset(d, 0, sizeof *d);
	d->cfg = *cfg;
	d->state = DET_S_UNKNOWN;
	d->last_rx_ms = now_ms;
	d->last_tx_ms = 0;
}

enum detector_event detector_on_hello(struct detector *d, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
				      uint64_t now_ms)
{
	bool same = d->have_boot && memcmp(d->boot_id, boot_id, FRAME_BOOT_ID_SIZE) == 0;
	enum detector_state was = d->state;

	d->last_rx_ms = now_ms;
	memcpy(d->boot_id, boot_id, FRAME_BOOT_ID_SIZE);
	d->have_boot = true;
	d->state = DET_S_UP;
	if (was != DET_S_UP)
		return DET_PEER_UP;
	/* Up and a new connection from the same process: a reconnect, nothing to report. */
	return same ? DET_NONE : DET_PEER_RESTARTED;
}

enum detector_event detector_on_frame(struct detector *d, uint64_t now_ms)
{
	if (d->state == DET_S_GONE || d->state == DET_S_UNKNOWN)
		return DET_NONE; /* only a HELLO (re)starts a peer that left or was never seen */
	d->last_rx_ms = now_ms;
	if (d->state == DET_S_DOWN) {
		d->state = DET_S_UP;
		return DET_PEER_UP;
	}
	return DET_NONE;
}

enum detector_event detector_on_goodbye(struct detector *d, uint64_t now_ms)
{
	d->last_rx_ms = now_ms;
	if (d->state == DET_S_GONE || d->state == DET_S_UNKNOWN)
		return DET_NONE;
	/* A goodbye after a timeout still tells why the peer went away: report it, so the
	 * state machine can tell Peer Reboot from Peer Down even when it arrives late. */
	d->state = DET_S_GONE;
	return DET_PEER_GOODBYE;
}

enum detector_event detector_on_protocol_error(struct detector *d, uint64_t now_ms)
{
	if (d->state != DET_S_UP)
		return DET_NONE;
	d->state = DET_S_DOWN;
	return DET_PEER_DOWN;
}

enum detector_event detector_tick(struct detector *d, uint64_t now_ms)
{
	if (d->state != DET_S_UP)
		return DET_NONE;
	if (now_ms < d->last_rx_ms || now_ms - d->last_rx_ms < d->cfg.dead_timeout_ms)
		return DET_NONE;
	d->state = DET_S_DOWN;
	return DET_PEER_DOWN;
}

bool detector_heartbeat_due(const struct detector *d, uint64_t now_ms)
{
	return d->last_tx_ms == 0 || now_ms < d->last_tx_ms ||
	       now_ms - d->last_tx_ms >= d->cfg.interval_ms;
}

void detector_heartbeat_sent(struct detector *d, uint64_t now_ms)
{
	d->last_tx_ms = now_ms;
}

uint64_t detector_next_deadline(const struct detector *d, uint64_t now_ms)
{
	uint64_t due;

	if (d->state != DET_S_UP)
		return UINT64_MAX;
	due = d->last_rx_ms + d->cfg.dead_timeout_ms;
	return due > now_ms ? due - now_ms : 0;
}

bool detector_is_up(const struct detector *d)
{
	return d->state == DET_S_UP;
}

const char *detector_event_name(enum detector_event ev)
{
	switch (ev) {
	case DET_NONE:
		return "none";
	case DET_PEER_UP:
		return "peer-up";
	case DET_PEER_DOWN:
		return "peer-down";
	case DET_PEER_GOODBYE:
		return "peer-goodbye";
	case DET_PEER_RESTARTED:
		return "peer-restarted";
	}
	return "?";
}
