/* XML element trees for stanzas, and a streaming XMPP parser on expat.
 *
 * The parser is not namespace-aware (like libstrophe): xmlns and xmlns:prefix are kept as
 * ordinary attributes, which is what lets us forward stanzas byte-faithfully.  Depth 0 is
 * the stream root, depth 1 a stanza; a complete stanza is handed over as a tree.
 * Hostile input is bounded: stanza size, nesting depth, attribute count, and DTDs,
 * entity declarations, processing instructions and comments are refused. */
#ifndef DUET_XML_H
#define DUET_XML_H

#include <stddef.h>

struct evbuffer;

enum xml_node_type { XML_ELEM, XML_TEXT };

/* Nodes come only from the constructors below: the name, the attribute array and the text
 * share the node's allocation, so never free or reassign name/attrs/text by hand (use
 * xml_set_attr / xml_add_text). */
struct xml_node {
	enum xml_node_type type;
	char *name;            /* XML_ELEM: qualified name as written ("message", "stream:features") */
	char **attrs;          /* XML_ELEM: NULL-terminated array name0, value0, name1, ...; may be NULL */
	char *text;            /* XML_TEXT: character data (unescaped, NUL-terminated) */
	size_t text_len;
	struct xml_node *parent;
	struct xml_node *children, *last_child; /* in document order, text and elements mixed */
	struct xml_node *next;                   /* next sibling */
};

/* Building.  All return NULL / -1 only on allocation failure. */
struct xml_node *xml_elem_new(const char *name);
struct xml_node *xml_text_new(const char *text, size_t len);
/* An element with its attributes (NULL-terminated name, value, ... array; may be NULL),
 * packed into one allocation.  The parser's constructor. */
struct xml_node *xml_elem_new_attrs(const char *name, const char **attrs);
void xml_append(struct xml_node *parent, struct xml_node *child);
struct xml_node *xml_new_child(struct xml_node *parent, const char *name);
/* Append a new child element <name xmlns='ns'> (ns may be NULL). */
struct xml_node *xml_new_child_ns(struct xml_node *parent, const char *name, const char *ns);
/* Append text to an element (creates or extends a trailing text node). */
int xml_add_text(struct xml_node *elem, const char *text, size_t len);
/* Set (replace) an attribute; value NULL removes it.  Invalidates every pointer that
 * xml_get_attr() returned for this element. */
int xml_set_attr(struct xml_node *elem, const char *name, const char *value);
void xml_remove(struct xml_node *child); /* unlink from its parent (does not free) */
void xml_free(struct xml_node *node);    /* frees the node and its subtree; NULL is fine */
struct xml_node *xml_copy(const struct xml_node *node);

/* Reading. */
const char *xml_get_attr(const struct xml_node *elem, const char *name);
/* The namespace in effect for elem: its own xmlns, else the nearest ancestor's, else NULL. */
const char *xml_ns(const struct xml_node *elem);
/* First child element with this name (and this xmlns, when ns is not NULL). */
struct xml_node *xml_find_child(const struct xml_node *elem, const char *name, const char *ns);
/* First child element of any name with this xmlns. */
struct xml_node *xml_find_child_by_ns(const struct xml_node *elem, const char *ns);
/* First child element, whatever its name. */
struct xml_node *xml_first_elem(const struct xml_node *elem);
struct xml_node *xml_next_elem(const struct xml_node *elem);
/* Concatenated text of elem's direct text children into a new string ("" if none). */
char *xml_text(const struct xml_node *elem);
/* Text of the first child element named name ("" if it has none), NULL if no such child.
 * Returned string is malloc'd. */
char *xml_child_text(const struct xml_node *elem, const char *name);

/* Serializing, with escaping of &, <, > in text and &, <, ", ' in attribute values.
 * Returns 0, or -1 on allocation failure. */
int xml_serialize(const struct xml_node *node, struct evbuffer *out);
/* malloc'd NUL-terminated serialization; *len set if len != NULL. */
char *xml_to_string(const struct xml_node *node, size_t *len);
/* Append escaped text / attribute value to out (for hand-written fragments). */
int xml_escape_text(struct evbuffer *out, const char *s, size_t len);
int xml_escape_attr(struct evbuffer *out, const char *s);

/* Parse one complete XML fragment (used for stored stanzas and tests).  NULL on error. */
struct xml_node *xml_parse_string(const char *s, size_t len);

/* ---- The streaming parser ---- */

enum xml_stream_error {
	XML_ERR_NONE = 0,
	XML_ERR_NOT_WELL_FORMED,   /* -> <not-well-formed/> */
	XML_ERR_RESTRICTED_XML,    /* DTD, entity, PI, comment -> <restricted-xml/> */
	XML_ERR_POLICY_VIOLATION,  /* stanza too large or too deep -> <policy-violation/> */
	XML_ERR_INVALID_NAMESPACE, /* root is not {http://etherx.jabber.org/streams}stream */
	XML_ERR_BAD_NS_PREFIX,     /* root prefix without its xmlns:prefix declaration */
	XML_ERR_UNSUPPORTED_ENCODING,
	XML_ERR_RESOURCE,          /* allocation failure -> <resource-constraint/> */
};
/* The RFC 6120 stream error condition element name for an error ("not-well-formed"...). */
const char *xml_stream_error_condition(enum xml_stream_error err);

struct xml_stream_limits {
	size_t max_stanza_bytes; /* bytes of one stanza, from its '<' to its end */
	int max_depth;           /* nesting below the root; a stanza is depth 1 */
	int max_attrs;           /* attributes per element */
	size_t max_header_bytes; /* the stream header */
};

struct xml_stream_cb {
	/* Root element opened.  attrs as in struct xml_node (the xmlns* attributes included). */
	void (*stream_open)(void *arg, const char *name, const char **attrs);
	/* A complete stanza; the callee owns it and must xml_free it. */
	void (*stanza)(void *arg, struct xml_node *stanza);
	/* </stream:stream> received. */
	void (*stream_close)(void *arg);
	/* Parse error; no further callbacks follow for this stream. */
	void (*error)(void *arg, enum xml_stream_error err);
};

struct xml_stream;
struct xml_stream *xml_stream_new(const struct xml_stream_limits *lim,
				  const struct xml_stream_cb *cb, void *arg);
/* Feed bytes.  Returns 0, or -1 after a parse error (the error callback has run).
 * A callback may call xml_stream_reset(): parsing stops after the current element, the rest
 * of this call's bytes are discarded (a client must wait for <proceed/> or <success/>
 * before sending more, RFC 6120), and the next feed starts a fresh document.
 * A callback must not call xml_stream_free(). */
int xml_stream_feed(struct xml_stream *s, const char *data, size_t len);
void xml_stream_reset(struct xml_stream *s);
/* Between stanzas, give the expat parser and text buffer back (about 9 KiB); the next feed
 * re-creates them.  For idle connections.  Returns 1 if memory was released.  Not from
 * inside a callback. */
int xml_stream_compact(struct xml_stream *s);
void xml_stream_free(struct xml_stream *s);

#endif
