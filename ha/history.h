/* The node's recent state transitions, for `srmctl history`: a ring buffer of the last
 * HISTORY_MAX changes of (state, reason) with their wall-clock time.  In memory only: a
 * restart of srmd starts a new history, whose first entry is the start itself (an empty old
 * state).  Pure code, no I/O. */
#ifndef DUET_HISTORY_H
#define DUET_HISTORY_H

#include <stdint.h>

#define HISTORY_MAX 64
#define HISTORY_TEXT 64 /* longest state name is 46 bytes, longest reason 45 */

struct history_entry {
	int64_t time_ms; /* wall clock, ms since the epoch */
	char old_state[HISTORY_TEXT], old_reason[HISTORY_TEXT];
	char new_state[HISTORY_TEXT], new_reason[HISTORY_TEXT];
};

struct history {
	struct history_entry ring[HISTORY_MAX];
	unsigned next;   /* slot the next entry goes to */
	unsigned count;  /* entries held, at most HISTORY_MAX */
	uint64_t total;  /* entries ever added (total - count were dropped) */
};

void history_init(struct history *h);
/* Strings are copied (cut to HISTORY_TEXT - 1 bytes); NULL is stored as "". */
void history_add(struct history *h, int64_t time_ms, const char *old_state,
		 const char *old_reason, const char *new_state, const char *new_reason);
/* The i-th entry held, 0 = the oldest; NULL past the end. */
const struct history_entry *history_get(const struct history *h, unsigned i);

#endif
