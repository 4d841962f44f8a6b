/* The streaming XMPP parser on expat, in non-namespace mode (like libstrophe's
 * parser_expat.c): xmlns and xmlns:prefix stay ordinary attributes.
 *
 * Depth 0 is outside everything, depth 1 inside the stream root; an element opening at
 * depth 1 starts a stanza tree that is handed to the stanza callback when it closes.
 * xml_parse_string uses the same machinery in "fragment" mode, where the document root
 * itself is the tree.
 *
 * Every limit is checked twice: in the handlers (exact, from expat's byte positions) and
 * after each XML_Parse call on at most FEED_CHUNK bytes, because expat buffers an
 * unfinished token (a huge attribute value, a giant start tag) without calling anything. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/mman.h>

#include <expat.h>

#include "engine/xml.h"
#include "lib/hash_salt.h"

#define NS_STREAMS "http://etherx.jabber.org/streams"
#define FEED_CHUNK 65536          /* bytes per XML_Parse call: bounds expat's buffering */
#define TEXT_KEEP 16384           /* text buffer kept between stanzas, larger is freed */

static const struct xml_stream_limits default_limits = {
	.max_stanza_bytes = 65536,
	.max_depth = 32,
	.max_attrs = 64,
	.max_header_bytes = 4096,
};

struct xml_stream {
	struct xml_stream_limits lim;
	struct xml_stream_cb cb;
	void *arg;
	XML_Parser parser;     /* NULL after a reset until the next feed */
	int fragment;          /* xml_parse_string: the document root is the tree */
	int depth;             /* open elements, the stream root included */
	struct xml_node *tree; /* the stanza being built */
	struct xml_node *cur;  /* its innermost open element */
	unsigned long long fed;        /* bytes given to this document's parser */
	unsigned long long tree_start; /* document offset of the stanza's '<' */
	unsigned long long consumed;   /* end of the last event outside any stanza */
	char *text;                    /* character data not yet in the tree */
	size_t text_len, text_cap;
	enum xml_stream_error error;
	int stopped;       /* error, close or reset: no more callbacks for this document */
	int closed;        /* the root element closed */
	int reset_pending; /* xml_stream_reset() called from a callback */
	int in_feed;
	struct xml_node *result; /* fragment mode: the finished tree */
	/* Compaction (xml_stream_compact): an idle stream between stanzas gives its expat
	 * parser back and re-creates it primed with a bare root element on the next feed. */
	char *root_name;   /* the stream root's qualified name, for the primer */
	int suspended;     /* parser freed between stanzas; resume before the next feed */
	int resuming;      /* the primer's root is being parsed: no callbacks, no checks */
	struct parser_arena *arena; /* where this stream's expat parser lives */
};

/* ---- A private arena for each stream's expat parser ----
 * A connection's parser (about 9 KiB) is created at login and given back when the stream
 * idles (xml_stream_compact).  From the general heap those blocks leave holes between the
 * long-lived TLS objects of other connections; from a page-aligned block of its own the
 * whole parser goes back to the kernel at once.  Expat's allocator hooks take no context,
 * so the arena in use is set around every expat call (the engine is single-threaded; a
 * nested call, e.g. xml_parse_string from a stanza callback, saves and restores it).
 * Allocations that do not fit (a parser buffer grown by a big stanza) use malloc. */
#define ARENA_BYTES 16384
#define ARENA_ALIGN 16

struct parser_arena {
	size_t used;
	_Alignas(ARENA_ALIGN) unsigned char mem[ARENA_BYTES - ARENA_ALIGN];
};

struct arena_block {
	size_t size;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

static struct parser_arena *arena_current;

static size_t arena_round(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static int arena_owns(const struct parser_arena *a, const void *p)
{
	return a && (const unsigned char *)p >= a->mem &&
	       (const unsigned char *)p < a->mem + sizeof a->mem;
}

static struct arena_block *arena_block_of(void *p)
{
	return (struct arena_block *)((unsigned char *)p - offsetof(struct arena_block, data));
}

static void *arena_malloc(size_t n)
{
	struct parser_arena *a = arena_current;
	size_t need = sizeof(struct arena_block) + arena_round(n);
	if (!a || n > sizeof a->mem || a->used + need > sizeof a->mem)
		return malloc(n);
	struct arena_block *b = (struct arena_block *)(a->mem + a->used);
	b->size = n;
	a->used += need;
	return b->data;
}

/* Only the most recent block is really given back; the rest goes with the arena. */
static void arena_free(void *p)
{
	struct parser_arena *a = arena_current;
	if (!p)
		return;
	if (!arena_owns(a, p)) {
		free(p);
		return;
	}
	struct arena_block *b = arena_block_of(p);
	if (b->data + arena_round(b->size) == a->mem + a->used)
		a->used = (size_t)((unsigned char *)b - a->mem);
}

static void *arena_realloc(void *p, size_t n)
{
	struct parser_arena *a = arena_current;
	if (!p)
		return arena_malloc(n);
	if (!arena_owns(a, p))
		return realloc(p, n);
	struct arena_block *b = arena_block_of(p);
	size_t start = (size_t)(b->data - a->mem);
	if (b->data + arena_round(b->size) == a->mem + a->used && start + n <= sizeof a->mem) {
		b->size = n; /* the last block grows or shrinks in place */
		a->used = start + arena_round(n);
		return p;
	}
	void *q = arena_malloc(n);
	if (q) {
		memcpy(q, p, b->size < n ? b->size : n);
		arena_free(p);
	}
	return q;
}

static const XML_Memory_Handling_Suite arena_suite = {arena_malloc, arena_realloc, arena_free};

/* Arenas given back are kept for the next parser, up to ARENA_SPARE_MAX of them (128 KiB):
 * a login creates and frees three parsers (stream start, STARTTLS and SASL restarts), and
 * mmap, munmap and the page faults of a fresh mapping cost more than the parsing.  A restart
 * frees one arena and takes one at once, so a few spares serve any login rate; the small
 * bound keeps what thousands of compacting idle connections give back going to the kernel
 * (memory per idle connection is measured at 15,000 connections: 8 spares are 9 bytes
 * each). */
#define ARENA_SPARE_MAX 8

static struct parser_arena *arena_spare[ARENA_SPARE_MAX];
static size_t arena_spare_count;

static struct parser_arena *arena_new(void)
{
	struct parser_arena *a;
	if (arena_spare_count > 0) {
		a = arena_spare[--arena_spare_count];
	} else {
		void *m = mmap(NULL, sizeof(struct parser_arena), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		a = m;
	}
	a->used = 0;
	return a;
}

static void arena_delete(struct parser_arena *a)
{
	if (a == NULL)
		return;
	if (arena_spare_count < ARENA_SPARE_MAX)
		arena_spare[arena_spare_count++] = a;
	else
		munmap(a, sizeof *a);
}

/* Run an expat call with s's arena current. */
#define WITH_ARENA(s, call)                                                                 \
	do {                                                                                \
		struct parser_arena *saved_arena_ = arena_current;                          \
		arena_current = (s)->arena;                                                 \
		call;                                                                       \
		arena_current = saved_arena_;                                               \
	} while (0)

const char *xml_stream_error_condition(enum xml_stream_error err)
{
	switch (err) {
	case XML_ERR_NOT_WELL_FORMED:
		return "not-well-formed";
	case XML_ERR_RESTRICTED_XML:
		return "restricted-xml";
	case XML_ERR_POLICY_VIOLATION:
		return "policy-violation";
	case XML_ERR_INVALID_NAMESPACE:
		return "invalid-namespace";
	case XML_ERR_BAD_NS_PREFIX:
		return "bad-namespace-prefix";
	case XML_ERR_UNSUPPORTED_ENCODING:
		return "unsupported-encoding";
	case XML_ERR_RESOURCE:
		return "resource-constraint";
	case XML_ERR_NONE:
		break;
	}
	return "undefined-condition";
}

/* Stop expat (a no-op between XML_Parse calls, where it only marks the parser finished)
 * and suppress every later callback of this document. */
static void stream_halt(struct xml_stream *s)
{
	s->stopped = 1;
	if (s->parser != NULL)
		XML_StopParser(s->parser, XML_FALSE);
}

static void stream_fail(struct xml_stream *s, enum xml_stream_error err)
{
	if (s->stopped)
		return; /* report once */
	s->error = err;
	stream_halt(s);
	if (s->cb.error != NULL)
		s->cb.error(s->arg, err);
}

static enum xml_stream_error error_from_expat(enum XML_Error code)
{
	switch (code) {
	case XML_ERROR_NO_MEMORY:
		return XML_ERR_RESOURCE;
	case XML_ERROR_UNDEFINED_ENTITY:
	case XML_ERROR_RECURSIVE_ENTITY_REF:
	case XML_ERROR_BINARY_ENTITY_REF:
	case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
	case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
	case XML_ERROR_ENTITY_DECLARED_IN_PE:
	case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
		/* RFC 6120 11.1: only the predefined entities may be referenced */
		return XML_ERR_RESTRICTED_XML;
	case XML_ERROR_UNKNOWN_ENCODING:
	case XML_ERROR_INCORRECT_ENCODING:
		return XML_ERR_UNSUPPORTED_ENCODING;
	default:
		return XML_ERR_NOT_WELL_FORMED;
	}
}

/* Document offset just past the event being reported. */
static unsigned long long event_end(const struct xml_stream *s)
{
	XML_Index i = XML_GetCurrentByteIndex(s->parser);
	int c = XML_GetCurrentByteCount(s->parser);
	return (unsigned long long)(i > 0 ? i : 0) + (unsigned long long)(c > 0 ? c : 0);
}

static unsigned long long event_start(const struct xml_stream *s)
{
	XML_Index i = XML_GetCurrentByteIndex(s->parser);
	return (unsigned long long)(i > 0 ? i : 0);
}

/* Number of elements outside the tree being built: the stream root, or none. */
static int tree_base(const struct xml_stream *s)
{
	return s->fragment ? 0 : 1;
}

static int stanza_too_big(struct xml_stream *s, unsigned long long end)
{
	if (end > s->tree_start && end - s->tree_start > s->lim.max_stanza_bytes) {
		stream_fail(s, XML_ERR_POLICY_VIOLATION);
		return 1;
	}
	return 0;
}

static int text_append(struct xml_stream *s, const char *t, size_t len)
{
	if (len > s->text_cap - s->text_len) {
		size_t cap = s->text_cap ? s->text_cap : 256;
		while (cap - s->text_len < len) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		char *nb = realloc(s->text, cap);
		if (nb == NULL)
			return -1;
		s->text = nb;
		s->text_cap = cap;
	}
	memcpy(s->text + s->text_len, t, len);
	s->text_len += len;
	return 0;
}

/* Move the pending character data into one text node of the current element. */
static int text_flush(struct xml_stream *s)
{
	if (s->text_len == 0 || s->cur == NULL)
		return 0;
	struct xml_node *t = xml_text_new(s->text, s->text_len);
	if (t == NULL) {
		stream_fail(s, XML_ERR_RESOURCE);
		return -1;
	}
	xml_append(s->cur, t);
	s->text_len = 0;
	return 0;
}

/* Between stanzas, give back a buffer that one big stanza grew: thousands of idle
 * connections should not each keep one. */
static void text_trim(struct xml_stream *s)
{
	if (s->text_cap > TEXT_KEEP) {
		free(s->text);
		s->text = NULL;
		s->text_cap = 0;
	}
	s->text_len = 0;
}

static enum xml_stream_error root_check(const char *name, const char **atts)
{
	const char *colon = strchr(name, ':');
	const char *local = colon ? colon + 1 : name;
	if (strcmp(local, "stream") != 0)
		return XML_ERR_INVALID_NAMESPACE;
	size_t plen = colon ? (size_t)(colon - name) : 0;
	const char *ns = NULL;
	for (size_t i = 0; atts[i] != NULL; i += 2) {
		const char *a = atts[i];
		if (strncmp(a, "xmlns", 5) != 0)
			continue;
		if (colon == NULL ? a[5] == '\0'
				  : a[5] == ':' && strncmp(a + 6, name, plen) == 0 &&
					    a[6 + plen] == '\0') {
			ns = atts[i + 1];
			break;
		}
	}
	if (ns == NULL)
		return colon ? XML_ERR_BAD_NS_PREFIX : XML_ERR_INVALID_NAMESPACE;
	return strcmp(ns, NS_STREAMS) == 0 ? XML_ERR_NONE : XML_ERR_INVALID_NAMESPACE;
}

static void root_open(struct xml_stream *s, const char *name, const char **atts)
{
	unsigned long long end = event_end(s);
	if (s->resuming) {
		s->depth = 1;
		s->consumed = end;
		return;
	}
	if (end > s->lim.max_header_bytes) {
		stream_fail(s, XML_ERR_POLICY_VIOLATION);
		return;
	}
	enum xml_stream_error err = root_check(name, atts);
	if (err != XML_ERR_NONE) {
		stream_fail(s, err);
		return;
	}
	s->depth = 1;
	s->consumed = end;
	free(s->root_name);
	s->root_name = strdup(name);
	if (s->root_name == NULL) {
		stream_fail(s, XML_ERR_RESOURCE);
		return;
	}
	if (s->cb.stream_open != NULL)
		s->cb.stream_open(s->arg, name, atts);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xml_stream *s = ud;
	if (s->stopped)
		return;
	size_t nattrs = 0;
	while (atts[2 * nattrs] != NULL)
		nattrs++;
	if (nattrs > (size_t)s->lim.max_attrs) {
		stream_fail(s, XML_ERR_POLICY_VIOLATION);
		return;
	}
	if (!s->fragment && s->depth == 0) {
		root_open(s, name, atts);
		return;
	}
	int base = tree_base(s);
	if (s->depth - base >= s->lim.max_depth) {
		stream_fail(s, XML_ERR_POLICY_VIOLATION);
		return;
	}
	if (s->depth == base)
		s->tree_start = event_start(s);
	if (stanza_too_big(s, event_end(s)) || text_flush(s) < 0)
		return;
	struct xml_node *n = xml_elem_new_attrs(name, atts);
	if (n == NULL) {
		stream_fail(s, XML_ERR_RESOURCE);
		return;
	}
	if (s->cur != NULL)
		xml_append(s->cur, n);
	else
		s->tree = n;
	s->cur = n;
	s->depth++;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xml_stream *s = ud;
	(void)name; /* expat has checked that it matches the start tag */
	if (s->stopped)
		return;
	if (!s->fragment && s->depth == 1) {
		s->depth = 0;
		s->closed = 1;
		stream_halt(s);
		if (s->cb.stream_close != NULL)
			s->cb.stream_close(s->arg);
		return;
	}
	unsigned long long end = event_end(s);
	if (stanza_too_big(s, end) || text_flush(s) < 0)
		return;
	struct xml_node *done = s->cur;
	s->cur = done->parent;
	s->depth--;
	if (s->depth != tree_base(s))
		return;
	s->tree = NULL;
	s->consumed = end;
	text_trim(s);
	if (s->fragment)
		s->result = done;
	else if (s->cb.stanza != NULL)
		s->cb.stanza(s->arg, done);
	else
		xml_free(done);
}

static void XMLCALL on_text(void *ud, const XML_Char *t, int len)
{
	struct xml_stream *s = ud;
	if (s->stopped || len <= 0)
		return;
	if (s->depth <= tree_base(s)) {
		/* between stanzas: whitespace keepalives only */
		for (int i = 0; i < len; i++) {
			if (t[i] != ' ' && t[i] != '\t' && t[i] != '\r' && t[i] != '\n') {
				stream_fail(s, XML_ERR_NOT_WELL_FORMED);
				return;
			}
		}
		s->consumed = event_end(s);
		return;
	}
	if (stanza_too_big(s, event_end(s)))
		return;
	if (text_append(s, t, (size_t)len) < 0)
		stream_fail(s, XML_ERR_RESOURCE);
}

static void XMLCALL on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding,
			       int standalone)
{
	struct xml_stream *s = ud;
	(void)version;
	(void)standalone;
	/* The parser is created for UTF-8, which overrides the declaration: refuse a document
	 * that says otherwise rather than misread it. */
	if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
		stream_fail(s, XML_ERR_UNSUPPORTED_ENCODING);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	stream_fail(ud, XML_ERR_RESTRICTED_XML);
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
				   const XML_Char *value, int value_len, const XML_Char *base,
				   const XML_Char *sysid, const XML_Char *pubid,
				   const XML_Char *notation)
{
	(void)name;
	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	stream_fail(ud, XML_ERR_RESTRICTED_XML);
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target;
	(void)data;
	stream_fail(ud, XML_ERR_RESTRICTED_XML);
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	stream_fail(ud, XML_ERR_RESTRICTED_XML);
}

static void XMLCALL on_skipped_entity(void *ud, const XML_Char *name, int is_param)
{
	(void)name;
	(void)is_param;
	stream_fail(ud, XML_ERR_RESTRICTED_XML);
}

static void parser_free(struct xml_stream *s)
{
	if (s->parser != NULL)
		WITH_ARENA(s, XML_ParserFree(s->parser));
	s->parser = NULL;
	arena_delete(s->arena);
	s->arena = NULL;
}

static int parser_start(struct xml_stream *s)
{
	/* One-shot fragments (xml_parse_string) stay on the ordinary heap. */
	s->arena = s->fragment ? NULL : arena_new();
	XML_Parser p;
	WITH_ARENA(s, p = XML_ParserCreate_MM("UTF-8", &arena_suite, NULL));
	if (p == NULL) {
		arena_delete(s->arena);
		s->arena = NULL;
		return -1;
	}
	unsigned long salt = hash_salt_next(); /* no getrandom() per parser */
	if (salt != 0)
		XML_SetHashSalt(p, salt);
	XML_SetUserData(p, s);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetXmlDeclHandler(p, on_xmldecl);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity_decl);
	XML_SetProcessingInstructionHandler(p, on_pi);
	XML_SetCommentHandler(p, on_comment);
	XML_SetSkippedEntityHandler(p, on_skipped_entity);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
	s->parser = p;
	return 0;
}

/* Drop the current document: parser, partial stanza, positions and error state. */
static void doc_clear(struct xml_stream *s)
{
	parser_free(s);
	xml_free(s->tree);
	s->tree = s->cur = NULL;
	xml_free(s->result);
	s->result = NULL;
	s->depth = 0;
	s->fed = s->tree_start = s->consumed = 0;
	text_trim(s);
	s->error = XML_ERR_NONE;
	s->stopped = s->closed = s->reset_pending = s->suspended = s->resuming = 0;
}

/* XML_Parse returned an error: ours (we stopped it) or expat's own. */
static void parse_failed(struct xml_stream *s)
{
	enum XML_Error code = XML_GetErrorCode(s->parser);
	if (code == XML_ERROR_ABORTED && s->stopped)
		return;
	stream_fail(s, error_from_expat(code));
}

/* After each chunk: bytes that expat holds without having reported them still count. */
static void limits_check(struct xml_stream *s)
{
	if (s->stopped || s->fragment)
		return;
	if (s->depth == 0) {
		if (s->fed > s->lim.max_header_bytes)
			stream_fail(s, XML_ERR_POLICY_VIOLATION);
	} else if (s->tree != NULL) {
		stanza_too_big(s, s->fed);
	} else if (s->fed - s->consumed > s->lim.max_stanza_bytes) {
		stream_fail(s, XML_ERR_POLICY_VIOLATION);
	}
}

struct xml_stream *xml_stream_new(const struct xml_stream_limits *lim,
				  const struct xml_stream_cb *cb, void *arg)
{
	struct xml_stream *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->lim = lim != NULL ? *lim : default_limits;
	/* a zero limit means "the default", never "nothing allowed" */
	if (s->lim.max_stanza_bytes == 0)
		s->lim.max_stanza_bytes = default_limits.max_stanza_bytes;
	if (s->lim.max_depth <= 0)
		s->lim.max_depth = default_limits.max_depth;
	if (s->lim.max_attrs <= 0)
		s->lim.max_attrs = default_limits.max_attrs;
	if (s->lim.max_header_bytes == 0)
		s->lim.max_header_bytes = default_limits.max_header_bytes;
	if (cb != NULL)
		s->cb = *cb;
	s->arg = arg;
	if (parser_start(s) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* A fresh parser, taken back inside the stream root by a primer element of the same
 * name (the parser is not namespace-aware, so the name is all the context it needs). */
static int stream_resume(struct xml_stream *s)
{
	size_t n = strlen(s->root_name);
	char *primer = malloc(n + 3);
	if (primer == NULL) {
		stream_fail(s, XML_ERR_RESOURCE);
		return -1;
	}
	primer[0] = '<';
	memcpy(primer + 1, s->root_name, n);
	memcpy(primer + 1 + n, ">", 2);
	s->suspended = 0;
	s->resuming = 1;
	s->depth = 0;
	s->fed = n + 2;
	int ok;
	WITH_ARENA(s, ok = XML_Parse(s->parser, primer, (int)(n + 2), XML_FALSE) == XML_STATUS_OK);
	s->resuming = 0;
	free(primer);
	if (!ok || s->depth != 1) {
		stream_fail(s, XML_ERR_RESOURCE);
		return -1;
	}
	return 0;
}

int xml_stream_feed(struct xml_stream *s, const char *data, size_t len)
{
	if (s->in_feed || s->error != XML_ERR_NONE)
		return -1;
	if (s->closed)
		return 0; /* nothing may follow </stream:stream>; the caller is closing */
	if (s->parser == NULL && parser_start(s) < 0) {
		stream_fail(s, XML_ERR_RESOURCE);
		return -1;
	}
	if (s->suspended && stream_resume(s) < 0)
		return -1;
	s->in_feed = 1;
	while (len > 0 && !s->stopped) {
		size_t n = len < FEED_CHUNK ? len : FEED_CHUNK;
		s->fed += n;
		enum XML_Status st;
		WITH_ARENA(s, st = XML_Parse(s->parser, data, (int)n, XML_FALSE));
		if (st == XML_STATUS_ERROR)
			parse_failed(s);
		else
			limits_check(s);
		data += n;
		len -= n;
	}
	s->in_feed = 0;
	int rc = s->error != XML_ERR_NONE ? -1 : 0;
	if (s->reset_pending)
		doc_clear(s); /* the rest of this call's bytes are dropped with the parser */
	return rc;
}

int xml_stream_compact(struct xml_stream *s)
{
	if (s->in_feed || s->suspended || s->parser == NULL || s->fragment || s->stopped ||
	    s->depth != 1 || s->tree != NULL || s->consumed != s->fed || s->root_name == NULL)
		return 0;
	parser_free(s);
	free(s->text);
	s->text = NULL;
	s->text_cap = s->text_len = 0;
	s->suspended = 1;
	return 1;
}

void xml_stream_reset(struct xml_stream *s)
{
	if (s->in_feed) {
		/* inside a callback: expat is on the stack, so finish the job in feed */
		s->reset_pending = 1;
		stream_halt(s);
		return;
	}
	doc_clear(s);
}

void xml_stream_free(struct xml_stream *s)
{
	if (s == NULL)
		return;
	doc_clear(s);
	free(s->text);
	free(s->root_name);
	free(s);
}

struct xml_node *xml_parse_string(const char *str, size_t len)
{
	struct xml_stream s;
	memset(&s, 0, sizeof(s));
	s.fragment = 1;
	s.lim.max_stanza_bytes = SIZE_MAX;
	s.lim.max_depth = INT_MAX;
	s.lim.max_attrs = INT_MAX;
	s.lim.max_header_bytes = SIZE_MAX;
	if (parser_start(&s) < 0)
		return NULL;
	s.in_feed = 1;
	for (;;) {
		size_t n = len < FEED_CHUNK ? len : FEED_CHUNK;
		int final = n == len;
		enum XML_Status st;
		WITH_ARENA(&s, st = XML_Parse(s.parser, str, (int)n, final));
		if (st == XML_STATUS_ERROR) {
			parse_failed(&s);
			break;
		}
		str += n;
		len -= n;
		if (final || s.stopped)
			break;
	}
	struct xml_node *r = NULL;
	if (s.error == XML_ERR_NONE && s.result != NULL) {
		r = s.result;
		s.result = NULL;
	}
	doc_clear(&s);
	free(s.text);
	return r;
}
