/* A string-keyed hash map (open addressing, linear probing, tombstones), for the engine's
 * session, user and per-address tables.  Keys are copied; values are caller-owned. */
#ifndef DUET_STRMAP_H
#define DUET_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m); /* does not free values */
void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace; returns 0, or -1 on allocation failure. */
int strmap_put(struct strmap *m, const char *key, void *value);
/* Remove; returns the old value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);

/* Iteration: for (size_t i = 0; strmap_next(m, &i, &k, &v);) ...  Do not insert during it;
 * deleting the current key is allowed. */
int strmap_next(const struct strmap *m, size_t *iter, const char **key, void **value);

#endif
