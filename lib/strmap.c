#include "lib/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	char *key; /* NULL = empty, TOMBSTONE = deleted */
	void *value;
	uint32_t hash;
};

struct strmap {
	struct slot *slots;
	size_t cap, count, used; /* used = live + tombstones */
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

/* Slots are allocated at the first insert: most per-user maps (an empty roster, no IM
 * locks) never get one, and there are as many of them as sessions. */
struct strmap *strmap_new(void)
{
	return calloc(1, sizeof(struct strmap));
}

void strmap_free(struct strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
			free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static struct slot *find(const struct strmap *m, const char *key, uint32_t h)
{
	if (m->cap == 0)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != TOMBSTONE && s->hash == h && strcmp(s->key, key) == 0)
			return s;
	}
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, hash_str(key));
	return s ? s->value : NULL;
}

static int grow(struct strmap *m)
{
	size_t ncap = m->cap == 0 ? 8 : m->count * 4 > m->cap ? m->cap * 2 : m->cap;
	/* (an unchanged capacity just purges tombstones) */
	struct slot *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (!s->key || s->key == TOMBSTONE)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	m->used = m->count;
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	uint32_t h = hash_str(key);
	struct slot *s = find(m, key, h);
	if (s) {
		s->value = value;
		return 0;
	}
	if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0)
		return -1;
	char *k = strdup(key);
	if (!k)
		return -1;
	size_t mask = m->cap - 1, i = h & mask;
	while (m->slots[i].key && m->slots[i].key != TOMBSTONE)
		i = (i + 1) & mask;
	if (!m->slots[i].key)
		m->used++;
	m->slots[i] = (struct slot){k, value, h};
	m->count++;
	return 0;
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, hash_str(key));
	if (!s)
		return NULL;
	void *v = s->value;
	free(s->key);
	s->key = TOMBSTONE;
	s->value = NULL;
	m->count--;
	return v;
}

size_t strmap_count(const struct strmap *m) { return m->count; }

int strmap_next(const struct strmap *m, size_t *iter, const char **key, void **value)
{
	for (size_t i = *iter; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (s->key && s->key != TOMBSTONE) {
			*iter = i + 1;
			if (key)
				*key = s->key;
			if (value)
				*value = s->value;
			return 1;
		}
	}
	*iter = m->cap;
	return 0;
}
