/* The ring buffer of recent transitions (see history.h). */
#include "ha/history.h"

#include <stdio.h>
#include <string.h>

void history_init(struct history *h) { memset(h, 0, sizeof *h); }

static void text_copy(char dst[HISTORY_TEXT], const char *src)
{
	snprintf(dst, HISTORY_TEXT, "%s", src ? src : "");
}

void history_add(struct history *h, int64_t time_ms, const char *old_state,
		 const char *old_reason, const char *new_state, const char *new_reason)
{
	struct history_entry *e = &h->ring[h->next];
	e->time_ms = time_ms;
	text_copy(e->old_state, old_state);
	text_copy(e->old_reason, old_reason);
	text_copy(e->new_state, new_state);
	text_copy(e->new_reason, new_reason);
	h->next = (h->next + 1) % HISTORY_MAX;
	if (h->count < HISTORY_MAX)
		h->count++;
	h->total++;
}

const struct history_entry *history_get(const struct history *h, unsigned i)
{
	if (i >= h->count)
		return NULL;
	/* The oldest entry sits where the next one will go once the ring is full. */
	unsigned first = (h->next + HISTORY_MAX - h->count) % HISTORY_MAX;
	return &h->ring[(first + i) % HISTORY_MAX];
}
