/* libFuzzer target for the streaming XML parser.
 *
 * Input layout: byte 0 selects options (bit 0: reset from inside the stanza callback after
 * <starttls/> and <auth/>, as the server does when it answers <proceed/> or <success/>;
 * bit 1: tight limits; bit 2: reset after every third stanza), bytes 1..8 are chunk sizes
 * (each 1..256, used in turn), the rest is the stream, fed in those chunks.  Every stanza received is
 * serialized, parsed back and compared with the original, and copied and compared. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_state {
	struct xml_stream *s;
	int reset_on_auth;
	int reset_every_third;
	int nstanzas;
	int error_seen;
};

static int node_equal(const struct xml_node *a, const struct xml_node *b)
{
	if (a->type != b->type)
		return 0;
	if (a->type == XML_TEXT)
		return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
	if (strcmp(a->name, b->name) != 0)
		return 0;
	size_t i = 0;
	for (; a->attrs && a->attrs[i]; i++) {
		if (b->attrs == NULL || b->attrs[i] == NULL || strcmp(a->attrs[i], b->attrs[i]) != 0)
			return 0;
	}
	return b->attrs == NULL || b->attrs[i] == NULL;
}

static int tree_equal(const struct xml_node *ra, const struct xml_node *rb)
{
	const struct xml_node *a = ra, *b = rb;
	for (;;) {
		if (!node_equal(a, b))
			return 0;
		if (a->children != NULL || b->children != NULL) {
			if (a->children == NULL || b->children == NULL)
				return 0;
			a = a->children;
			b = b->children;
			continue;
		}
		while (a != ra && a->next == NULL) {
			if (b->next != NULL)
				return 0;
			a = a->parent;
			b = b->parent;
		}
		if (a == ra)
			return 1;
		if (b->next == NULL)
			return 0;
		a = a->next;
		b = b->next;
	}
}

static void cb_open(void *arg, const char *name, const char **attrs)
{
	struct fuzz_state *st = arg;
	if (st->error_seen || name == NULL || attrs == NULL)
		abort(); /* no callbacks after an error */
}

static void cb_stanza(void *arg, struct xml_node *n)
{
	struct fuzz_state *st = arg;
	if (st->error_seen || n->type != XML_ELEM || n->parent != NULL)
		abort();
	st->nstanzas++;

	size_t len = 0;
	char *s = xml_to_string(n, &len);
	if (s != NULL) {
		if (strlen(s) != len)
			abort();
		struct xml_node *back = xml_parse_string(s, len);
		if (back == NULL || !tree_equal(n, back))
			abort(); /* what we serialize must parse back to the same tree */
		xml_free(back);
		free(s);
	}
	struct xml_node *copy = xml_copy(n);
	if (copy != NULL && !tree_equal(n, copy))
		abort();
	xml_free(copy);

	/* readers on hostile trees */
	(void)xml_ns(n);
	struct xml_node *c = xml_first_elem(n);
	if (c != NULL) {
		(void)xml_ns(c);
		(void)xml_find_child(n, c->name, xml_ns(c));
		free(xml_child_text(n, c->name));
	}
	free(xml_text(n));
	int reset = (st->reset_every_third && st->nstanzas % 3 == 0) ||
		    (st->reset_on_auth && (!strcmp(n->name, "starttls") || !strcmp(n->name, "auth")));
	xml_free(n);
	if (reset)
		xml_stream_reset(st->s);
}

static void cb_close(void *arg)
{
	struct fuzz_state *st = arg;
	if (st->error_seen)
		abort();
}

static void cb_error(void *arg, enum xml_stream_error err)
{
	struct fuzz_state *st = arg;
	if (st->error_seen || err == XML_ERR_NONE)
		abort(); /* reported once */
	st->error_seen = 1;
	(void)xml_stream_error_condition(err);
}

static const struct xml_stream_cb fuzz_cb = {cb_open, cb_stanza, cb_close, cb_error};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct xml_stream_limits loose = {65536, 32, 64, 4096};
	static const struct xml_stream_limits tight = {300, 4, 3, 200};
	if (size < 9)
		return 0;
	struct fuzz_state st = {0};
	st.reset_on_auth = data[0] & 1;
	st.reset_every_third = (data[0] & 4) != 0;
	st.s = xml_stream_new((data[0] & 2) ? &tight : &loose, &fuzz_cb, &st);
	if (st.s == NULL)
		return 0;
	const uint8_t *sizes = data + 1;
	const char *p = (const char *)data + 9;
	size_t left = size - 9;
	for (size_t i = 0; left > 0; i++) {
		size_t n = (size_t)sizes[i % 8] + 1;
		if (n > left)
			n = left;
		int rc = xml_stream_feed(st.s, p, n);
		if (rc < 0 && !st.error_seen)
			abort(); /* -1 only after the error callback */
		if (rc == 0 && st.error_seen)
			abort();
		p += n;
		left -= n;
		/* Compaction between feeds must be invisible (bit 3 of the first byte). */
		if (data[0] & 8)
			xml_stream_compact(st.s);
	}
	xml_stream_free(st.s);
	return 0;
}
