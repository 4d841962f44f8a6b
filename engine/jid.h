/* JIDs (RFC 7622), simplified to what a single-domain presence service needs:
 * local@domain/resource, localpart and domain lowercased (ASCII), bounded lengths. */
#ifndef DUET_JID_H
#define DUET_JID_H

#include <stddef.h>

#define JID_PART_MAX 1023

struct jid {
	char local[JID_PART_MAX + 1];  /* "" if none */
	char domain[JID_PART_MAX + 1];
	char resource[JID_PART_MAX + 1]; /* "" if none */
};

/* Parse and normalize; 0 or -1 (malformed -> jid-malformed). */
int jid_parse(const char *s, struct jid *out);
/* "local@domain" (or "domain") into buf; returns buf. */
char *jid_bare(const struct jid *j, char *buf, size_t len);
/* Full form with resource if any. */
char *jid_full(const struct jid *j, char *buf, size_t len);
/* Is s an acceptable localpart / resourcepart? */
int jid_local_valid(const char *s);
int jid_resource_valid(const char *s);

#endif
