/* Serializing trees and escaping text.
 *
 * Output goes through a small writer that batches bytes in a local buffer: into an evbuffer
 * (flushed in large pieces, not one evbuffer_add per escape) or into a growing string for
 * xml_to_string.  The escaping is what makes xml_parse_string(xml_to_string(n)) give back
 * an equal tree: besides &, <, > (text) and &, <, >, ", ' (attributes), characters that a
 * parser would normalize away are written as character references: CR in text (end-of-line
 * handling), TAB/LF/CR in attribute values (attribute-value normalization).  C0 controls
 * that XML 1.0 cannot carry at all are dropped. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "engine/xml.h"

struct writer {
	struct evbuffer *eb; /* NULL: accumulate a string in buf */
	char *buf;
	size_t len, cap;
	int failed;
	char local[2048];
};

static void writer_init(struct writer *w, struct evbuffer *eb)
{
	w->eb = eb;
	w->buf = w->local;
	w->len = 0;
	w->cap = sizeof(w->local);
	w->failed = 0;
}

static int writer_flush(struct writer *w)
{
	if (w->eb != NULL && w->len > 0) {
		if (evbuffer_add(w->eb, w->buf, w->len) < 0)
			w->failed = 1;
		w->len = 0;
	}
	return w->failed ? -1 : 0;
}

static int writer_grow(struct writer *w, size_t need)
{
	size_t cap = w->cap;
	while (cap - w->len < need) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	char *nb;
	if (w->buf == w->local) {
		nb = malloc(cap);
		if (nb != NULL)
			memcpy(nb, w->buf, w->len);
	} else {
		nb = realloc(w->buf, cap);
	}
	if (nb == NULL)
		return -1;
	w->buf = nb;
	w->cap = cap;
	return 0;
}

static void writer_put(struct writer *w, const char *p, size_t n)
{
	if (w->failed || n == 0)
		return;
	if (w->cap - w->len < n) {
		if (w->eb != NULL) {
			writer_flush(w);
			if (n >= w->cap) {
				if (evbuffer_add(w->eb, p, n) < 0)
					w->failed = 1;
				return;
			}
		} else if (writer_grow(w, n) < 0) {
			w->failed = 1;
			return;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void writer_puts(struct writer *w, const char *s)
{
	writer_put(w, s, strlen(s));
}

enum { ESC_TEXT, ESC_ATTR };

/* Per-byte replacement: NULL means copy as is, "" means drop. */
static const char *escape_of(unsigned char c, int mode)
{
	switch (c) {
	case '&':
		return "&amp;";
	case '<':
		return "&lt;";
	case '>':
		return "&gt;";
	case '\r':
		return "&#13;";
	case '"':
		return mode == ESC_ATTR ? "&quot;" : NULL;
	case '\'':
		return mode == ESC_ATTR ? "&apos;" : NULL;
	case '\t':
		return mode == ESC_ATTR ? "&#9;" : NULL;
	case '\n':
		return mode == ESC_ATTR ? "&#10;" : NULL;
	default:
		return c < 0x20 ? "" : NULL;
	}
}

/* The fast test for the escaping loop; must agree with escape_of(). */
static int needs_escape(unsigned char c, int mode)
{
	if (c < 0x20)
		return mode == ESC_ATTR || (c != '\t' && c != '\n');
	if (c == '&' || c == '<' || c == '>')
		return 1;
	return mode == ESC_ATTR && (c == '"' || c == '\'');
}

static void writer_escape(struct writer *w, const char *s, size_t len, int mode)
{
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!needs_escape(c, mode))
			continue;
		writer_put(w, s + run, i - run);
		writer_puts(w, escape_of(c, mode));
		run = i + 1;
	}
	writer_put(w, s + run, len - run);
}

static void writer_start_tag(struct writer *w, const struct xml_node *n)
{
	writer_put(w, "<", 1);
	writer_puts(w, n->name);
	for (char **a = n->attrs; a != NULL && a[0] != NULL; a += 2) {
		writer_put(w, " ", 1);
		writer_puts(w, a[0]);
		writer_put(w, "='", 2);
		writer_escape(w, a[1], strlen(a[1]), ESC_ATTR);
		writer_put(w, "'", 1);
	}
	writer_puts(w, n->children != NULL ? ">" : "/>");
}

static void writer_end_tag(struct writer *w, const struct xml_node *n)
{
	writer_put(w, "</", 2);
	writer_puts(w, n->name);
	writer_put(w, ">", 1);
}

/* Document order without recursion: enter a node, descend into its children, and on the
 * way back up close each element whose last child is done. */
static void writer_tree(struct writer *w, const struct xml_node *root)
{
	const struct xml_node *cur = root;
	for (;;) {
		if (cur->type == XML_TEXT) {
			writer_escape(w, cur->text, cur->text_len, ESC_TEXT);
		} else {
			writer_start_tag(w, cur);
			if (cur->children != NULL) {
				cur = cur->children;
				continue;
			}
		}
		while (cur != root && cur->next == NULL) {
			cur = cur->parent;
			writer_end_tag(w, cur);
		}
		if (cur == root || w->failed)
			return;
		cur = cur->next;
	}
}

int xml_serialize(const struct xml_node *node, struct evbuffer *out)
{
	struct writer w;
	writer_init(&w, out);
	writer_tree(&w, node);
	return writer_flush(&w);
}

char *xml_to_string(const struct xml_node *node, size_t *len)
{
	struct writer w;
	writer_init(&w, NULL);
	writer_tree(&w, node);
	writer_put(&w, "", 1); /* the NUL */
	char *s = NULL;
	if (!w.failed) {
		if (w.buf == w.local) {
			s = malloc(w.len);
			if (s != NULL)
				memcpy(s, w.buf, w.len);
		} else {
			s = w.buf;
			w.buf = w.local;
		}
	}
	if (w.buf != w.local)
		free(w.buf);
	if (s != NULL && len != NULL)
		*len = w.len - 1;
	return s;
}

int xml_escape_text(struct evbuffer *out, const char *s, size_t len)
{
	struct writer w;
	writer_init(&w, out);
	writer_escape(&w, s, len, ESC_TEXT);
	return writer_flush(&w);
}

int xml_escape_attr(struct evbuffer *out, const char *s)
{
	struct writer w;
	writer_init(&w, out);
	writer_escape(&w, s, strlen(s), ESC_ATTR);
	return writer_flush(&w);
}
