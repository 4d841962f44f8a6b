/* Unit tests for engine/xml*.c: trees, serialization and the streaming parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "engine/xml.h"

#define STREAM_HEADER                                                                      \
	"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "      \
	"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

static const char client_stream[] =
	STREAM_HEADER "\n"
	"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n"
	"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>\n"
	"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
	"<resource>balcony</resource></bind></iq>\n"
	"<message to='romeo@example.net' type=\"chat\" xml:lang='en'><body>Art thou not Romeo "
	"&amp; a Montague?\nSay &quot;&#x263A;&quot; &lt;3 &#233;t&#xE9;</body></message>\n"
	"<presence><show>away</show><status><![CDATA[at <the> ball]]></status></presence>"
	"</stream:stream>";

#define MAX_STANZAS 4096

/* What the callbacks saw. */
struct rec {
	struct xml_stream *s;
	int opens, closes, errors;
	enum xml_stream_error err;
	char open_name[64];
	char open_to[64];
	int nstanzas;
	char *stanzas[MAX_STANZAS]; /* serialized */
	struct xml_node *keep;      /* a copy of the last stanza, for inspection */
	int reset_on;               /* reset from inside the callback of stanza #reset_on (1-based) */
};

static void rec_open(void *arg, const char *name, const char **attrs)
{
	struct rec *r = arg;
	r->opens++;
	snprintf(r->open_name, sizeof(r->open_name), "%s", name);
	for (size_t i = 0; attrs[i] != NULL; i += 2) {
		if (strcmp(attrs[i], "to") == 0)
			snprintf(r->open_to, sizeof(r->open_to), "%s", attrs[i + 1]);
	}
}

static void rec_stanza(void *arg, struct xml_node *st)
{
	struct rec *r = arg;
	assert_null(st->parent);
	if (r->nstanzas < MAX_STANZAS) {
		r->stanzas[r->nstanzas] = xml_to_string(st, NULL);
		assert_non_null(r->stanzas[r->nstanzas]);
	}
	r->nstanzas++;
	xml_free(r->keep);
	r->keep = st;
	if (r->reset_on == r->nstanzas)
		xml_stream_reset(r->s);
}

static void rec_close(void *arg)
{
	struct rec *r = arg;
	r->closes++;
}

static void rec_error(void *arg, enum xml_stream_error err)
{
	struct rec *r = arg;
	r->errors++;
	r->err = err;
}

static const struct xml_stream_cb rec_cb = {rec_open, rec_stanza, rec_close, rec_error};

static const struct xml_stream_limits test_limits = {
	.max_stanza_bytes = 1024,
	.max_depth = 4,
	.max_attrs = 4,
	.max_header_bytes = 512,
};

static struct rec *rec_new(void)
{
	struct rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->s = xml_stream_new(&test_limits, &rec_cb, r);
	assert_non_null(r->s);
	return r;
}

static void rec_free(struct rec *r)
{
	xml_stream_free(r->s);
	for (int i = 0; i < r->nstanzas && i < MAX_STANZAS; i++)
		free(r->stanzas[i]);
	xml_free(r->keep);
	free(r);
}

static int feed_str(struct rec *r, const char *s)
{
	return xml_stream_feed(r->s, s, strlen(s));
}

/* Feed a whole input and expect exactly one error of kind err. */
static void expect_error(const char *input, enum xml_stream_error err)
{
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, input), -1);
	assert_int_equal(r->errors, 1);
	assert_int_equal(r->err, err);
	/* nothing more after an error */
	int n = r->nstanzas;
	assert_int_equal(feed_str(r, "<message/>"), -1);
	assert_int_equal(r->errors, 1);
	assert_int_equal(r->nstanzas, n);
	rec_free(r);
}

static int node_equal(const struct xml_node *a, const struct xml_node *b)
{
	if (a->type != b->type)
		return 0;
	if (a->type == XML_TEXT)
		return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
	if (strcmp(a->name, b->name) != 0)
		return 0;
	size_t na = 0, nb = 0;
	while (a->attrs && a->attrs[na])
		na++;
	while (b->attrs && b->attrs[nb])
		nb++;
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a->attrs[i], b->attrs[i]) != 0)
			return 0;
	}
	return 1;
}

/* Both trees in document order side by side, without recursion (trees may be deep). */
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

/* ---- the streaming parser ---- */

static void test_stream_whole_and_bytewise(void **state)
{
	(void)state;
	struct rec *whole = rec_new();
	assert_int_equal(feed_str(whole, client_stream), 0);
	assert_int_equal(whole->opens, 1);
	assert_string_equal(whole->open_name, "stream:stream");
	assert_string_equal(whole->open_to, "example.com");
	assert_int_equal(whole->nstanzas, 5);
	assert_int_equal(whole->closes, 1);
	assert_int_equal(whole->errors, 0);
	assert_string_equal(whole->stanzas[0], "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	assert_string_equal(whole->stanzas[2],
			    "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
			    "<resource>balcony</resource></bind></iq>");
	assert_string_equal(whole->stanzas[4],
			    "<presence><show>away</show><status>at &lt;the&gt; ball</status></presence>");

	struct rec *bytes = rec_new();
	for (size_t i = 0; i < sizeof(client_stream) - 1; i++)
		assert_int_equal(xml_stream_feed(bytes->s, client_stream + i, 1), 0);
	assert_int_equal(bytes->opens, 1);
	assert_int_equal(bytes->closes, 1);
	assert_int_equal(bytes->errors, 0);
	assert_int_equal(bytes->nstanzas, whole->nstanzas);
	for (int i = 0; i < whole->nstanzas; i++)
		assert_string_equal(bytes->stanzas[i], whole->stanzas[i]);

	/* expat delivers the body in many pieces; the tree has one text node */
	struct xml_node *body;
	struct xml_node *msg = xml_parse_string(whole->stanzas[3], strlen(whole->stanzas[3]));
	assert_non_null(msg);
	body = xml_find_child(msg, "body", NULL);
	assert_non_null(body);
	assert_non_null(body->children);
	assert_null(body->children->next);
	assert_string_equal(body->children->text,
			    "Art thou not Romeo & a Montague?\nSay \"\xe2\x98\xba\" <3 \xc3\xa9t\xc3\xa9");
	assert_string_equal(xml_get_attr(msg, "xml:lang"), "en");
	xml_free(msg);

	/* every two-piece split gives the same stanzas too */
	for (size_t cut = 1; cut < sizeof(client_stream) - 1; cut += 7) {
		struct rec *r = rec_new();
		assert_int_equal(xml_stream_feed(r->s, client_stream, cut), 0);
		assert_int_equal(
			xml_stream_feed(r->s, client_stream + cut, sizeof(client_stream) - 1 - cut), 0);
		assert_int_equal(r->nstanzas, 5);
		for (int i = 0; i < 5; i++)
			assert_string_equal(r->stanzas[i], whole->stanzas[i]);
		rec_free(r);
	}
	rec_free(whole);
	rec_free(bytes);
}

static void test_stream_many_stanzas_one_feed(void **state)
{
	(void)state;
	/* more than one internal chunk in a single feed call */
	const char msg[] = "<message to='a@b' id='x'><body>hello there</body></message>";
	size_t n = 3000, hl = strlen(STREAM_HEADER);
	char *buf = malloc(hl + n * (sizeof(msg) - 1) + 1);
	assert_non_null(buf);
	memcpy(buf, STREAM_HEADER, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + hl + i * (sizeof(msg) - 1), msg, sizeof(msg) - 1);
	size_t len = hl + n * (sizeof(msg) - 1);
	struct rec *r = rec_new();
	assert_int_equal(xml_stream_feed(r->s, buf, len), 0);
	assert_int_equal(r->nstanzas, (int)n);
	assert_string_equal(r->stanzas[n - 1], msg);
	assert_int_equal(r->errors, 0);
	rec_free(r);
	free(buf);
}

static void test_header_checks(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	assert_int_equal(
		feed_str(r, "<stream xmlns='http://etherx.jabber.org/streams' to='x'><a/>"), 0);
	assert_int_equal(r->opens, 1);
	assert_string_equal(r->open_name, "stream");
	assert_int_equal(r->nstanzas, 1);
	assert_int_equal(feed_str(r, "</stream>"), 0);
	assert_int_equal(r->closes, 1);
	/* after the close, input is ignored */
	assert_int_equal(feed_str(r, "<more/>"), 0);
	assert_int_equal(r->errors, 0);
	rec_free(r);

	r = rec_new();
	assert_int_equal(feed_str(r, "<s:stream xmlns:s='http://etherx.jabber.org/streams'>"), 0);
	assert_int_equal(r->opens, 1);
	rec_free(r);

	expect_error("<stream:stream xmlns:stream='http://etherx.jabber.org/wrong'>",
		     XML_ERR_INVALID_NAMESPACE);
	expect_error("<stream:stream xmlns='http://etherx.jabber.org/streams'>",
		     XML_ERR_BAD_NS_PREFIX);
	expect_error("<stream:stream xmlns:strm='http://etherx.jabber.org/streams'>",
		     XML_ERR_BAD_NS_PREFIX);
	expect_error("<stream xmlns='jabber:client'>", XML_ERR_INVALID_NAMESPACE);
	expect_error("<stream>", XML_ERR_INVALID_NAMESPACE);
	expect_error("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
		     XML_ERR_INVALID_NAMESPACE);
	expect_error("<message xmlns='jabber:client'>", XML_ERR_INVALID_NAMESPACE);
}

static void test_encoding(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, "<?xml version='1.0' encoding='utf-8'?>"
				     "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"),
			 0);
	assert_int_equal(r->opens, 1);
	rec_free(r);
	expect_error("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream "
		     "xmlns:stream='http://etherx.jabber.org/streams'>",
		     XML_ERR_UNSUPPORTED_ENCODING);
	expect_error("<?xml version='1.0' encoding='UTF-16'?>", XML_ERR_UNSUPPORTED_ENCODING);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Build "<message><body>" + text + "</body></message>" with a total length of exactly n. */
static char *stanza_of_size(size_t n)
{
	const char *pre = "<message><body>", *post = "</body></message>";
	size_t fixed = strlen(pre) + strlen(post);
	assert_true(n > fixed);
	char *s = malloc(n + 1);
	assert_non_null(s);
	strcpy(s, pre);
	memset(s + strlen(pre), 'x', n - fixed);
	strcpy(s + n - strlen(post), post);
	assert_int_equal(strlen(s), n);
	return s;
}

static void test_limit_stanza_size(void **state)
{
	(void)state;
	/* exactly the limit passes, one byte more fails, fed whole */
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	char *ok = stanza_of_size(1024);
	assert_int_equal(feed_str(r, ok), 0);
	assert_int_equal(r->nstanzas, 1);
	char *big = stanza_of_size(1025);
	assert_int_equal(feed_str(r, big), -1);
	assert_int_equal(r->err, XML_ERR_POLICY_VIOLATION);
	assert_int_equal(r->nstanzas, 1);
	rec_free(r);

	/* the same one byte at a time */
	r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	int rc = 0;
	for (size_t i = 0; big[i] && rc == 0; i++)
		rc = xml_stream_feed(r->s, big + i, 1);
	assert_int_equal(rc, -1);
	assert_int_equal(r->err, XML_ERR_POLICY_VIOLATION);
	assert_int_equal(r->nstanzas, 0);
	rec_free(r);
	free(ok);
	free(big);
}

/* Feed prefix, then filler in 100-byte pieces that never completes a token; the parser must
 * fail within one piece of the limit even though expat reports nothing. */
static void expect_unfinished_token_refused(const char *prefix)
{
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	assert_int_equal(feed_str(r, prefix), 0);
	char *piece = repeat('a', 100);
	size_t fed = strlen(prefix);
	int rc = 0;
	while (rc == 0 && fed < 1000000) {
		rc = feed_str(r, piece);
		fed += 100;
	}
	assert_int_equal(rc, -1);
	assert_int_equal(r->errors, 1);
	assert_int_equal(r->err, XML_ERR_POLICY_VIOLATION);
	assert_true(fed <= 1024 + 100);
	assert_int_equal(r->nstanzas, 0);
	free(piece);
	rec_free(r);
}

static void test_limit_giant_attribute_and_text(void **state)
{
	(void)state;
	expect_unfinished_token_refused("<message to='");             /* one attribute value */
	expect_unfinished_token_refused("<message><body>");           /* one text */
	expect_unfinished_token_refused("<message><body><x");         /* a nested name */
	expect_unfinished_token_refused("<");                         /* a stanza's name */

	/* a giant attribute value delivered in one piece */
	char *v = repeat('v', 5000);
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER "<message to='"), 0);
	assert_int_equal(feed_str(r, v), -1);
	assert_int_equal(r->err, XML_ERR_POLICY_VIOLATION);
	rec_free(r);
	free(v);
}

static void test_limit_depth(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER "<a><b><c><d/></c></b></a>"), 0);
	assert_int_equal(r->nstanzas, 1);
	rec_free(r);
	expect_error(STREAM_HEADER "<a><b><c><d><e/></d></c></b></a>", XML_ERR_POLICY_VIOLATION);
}

static void test_limit_attrs(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER "<a a='1' b='2' c='3' d='4'/>"), 0);
	assert_int_equal(r->nstanzas, 1);
	rec_free(r);
	expect_error(STREAM_HEADER "<a a='1' b='2' c='3' d='4' e='5'/>", XML_ERR_POLICY_VIOLATION);
	expect_error(STREAM_HEADER "<a><b a='1' b='2' c='3' d='4' e='5'/></a>",
		     XML_ERR_POLICY_VIOLATION);
}

static void test_limit_header(void **state)
{
	(void)state;
	char *pad = repeat('p', 600);
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' x='%s'>", pad);
	expect_error(buf, XML_ERR_POLICY_VIOLATION);

	/* a header that never ends, dribbled in */
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, "<stream:stream xmlns:stream='"), 0);
	int rc = 0, n = 0;
	while (rc == 0 && n++ < 100)
		rc = xml_stream_feed(r->s, pad, 50);
	assert_int_equal(rc, -1);
	assert_true(n <= 12);
	assert_int_equal(r->err, XML_ERR_POLICY_VIOLATION);
	assert_int_equal(r->opens, 0);
	rec_free(r);
	free(pad);
}

static void test_restricted_xml(void **state)
{
	(void)state;
	expect_error("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
		     "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
		     "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
		     "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
		     "<message><body>&lol3;</body></message>",
		     XML_ERR_RESTRICTED_XML);
	expect_error("<!DOCTYPE stream:stream SYSTEM 'http://evil/x.dtd'>",
		     XML_ERR_RESTRICTED_XML);
	expect_error(STREAM_HEADER "<message><?php echo 1; ?></message>", XML_ERR_RESTRICTED_XML);
	expect_error("<?xml-stylesheet href='a'?>", XML_ERR_RESTRICTED_XML);
	expect_error(STREAM_HEADER "<!-- a comment -->", XML_ERR_RESTRICTED_XML);
	expect_error(STREAM_HEADER "<message><!-- a comment --></message>", XML_ERR_RESTRICTED_XML);
	expect_error(STREAM_HEADER "<message><body>&lol;</body></message>", XML_ERR_RESTRICTED_XML);
	expect_error(STREAM_HEADER "<message to='&nbsp;'/>", XML_ERR_RESTRICTED_XML);
}

static void test_not_well_formed(void **state)
{
	(void)state;
	expect_error(STREAM_HEADER "<message></presence>", XML_ERR_NOT_WELL_FORMED);
	expect_error(STREAM_HEADER "hello", XML_ERR_NOT_WELL_FORMED);
	expect_error(STREAM_HEADER "<a b='1' b='2'/>", XML_ERR_NOT_WELL_FORMED);
	expect_error(STREAM_HEADER "<a>\xff\xfe</a>", XML_ERR_NOT_WELL_FORMED);
	expect_error(STREAM_HEADER "<a>&#0;</a>", XML_ERR_NOT_WELL_FORMED);
	expect_error(STREAM_HEADER "<a b=c/>", XML_ERR_NOT_WELL_FORMED);
	expect_error("<<<", XML_ERR_NOT_WELL_FORMED);
	expect_error("\xef\xbb\xbf\xef\xbb\xbf<a/>", XML_ERR_NOT_WELL_FORMED);
}

static void test_reset_in_callback(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	r->reset_on = 1;
	/* the bytes after <starttls/> in the same feed are dropped */
	assert_int_equal(
		feed_str(r, STREAM_HEADER "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
					  "<junk/></broken>"),
		0);
	assert_int_equal(r->nstanzas, 1);
	assert_int_equal(r->errors, 0);
	/* a brand-new document: an XML declaration is valid again */
	assert_int_equal(feed_str(r, STREAM_HEADER "<message><body>hi</body></message>"), 0);
	assert_int_equal(r->opens, 2);
	assert_int_equal(r->nstanzas, 2);
	assert_string_equal(r->stanzas[1], "<message><body>hi</body></message>");
	assert_int_equal(r->errors, 0);

	/* reset outside a callback, in the middle of a stanza */
	assert_int_equal(feed_str(r, "<message><body>half"), 0);
	xml_stream_reset(r->s);
	assert_int_equal(feed_str(r, STREAM_HEADER "<iq/>"), 0);
	assert_int_equal(r->opens, 3);
	assert_int_equal(r->nstanzas, 3);
	assert_string_equal(r->stanzas[2], "<iq/>");

	/* reset clears an error too */
	assert_int_equal(feed_str(r, "<oops"), 0);
	assert_int_equal(feed_str(r, "<<"), -1);
	xml_stream_reset(r->s);
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	assert_int_equal(r->opens, 4);
	rec_free(r);
}

static void test_whitespace_keepalive(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	assert_int_equal(feed_str(r, " "), 0);
	assert_int_equal(feed_str(r, "<presence/>"), 0);
	assert_int_equal(feed_str(r, "\n"), 0);
	assert_int_equal(feed_str(r, "\r\n\t "), 0);
	assert_int_equal(feed_str(r, "<presence/> \n<presence/>"), 0);
	/* many keepalives add up to far more than a stanza; they must not count */
	for (int i = 0; i < 3000; i++)
		assert_int_equal(feed_str(r, " "), 0);
	assert_int_equal(feed_str(r, "<iq/>"), 0);
	assert_int_equal(r->nstanzas, 4);
	assert_int_equal(r->errors, 0);
	rec_free(r);
}

static void test_stanza_free_on_stream_free(void **state)
{
	(void)state;
	/* a stanza in progress is freed with the stream (ASan reports a leak otherwise) */
	struct rec *r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER "<message><body>partial<x a='1'>"), 0);
	rec_free(r);
}

/* ---- trees and serialization ---- */

static const char special_text[] = "a & b < c > d \"q\" 'a' ]]> \r\n\ttab \xc3\xa9 \xe2\x82\xac "
				   "\xf0\x9f\x98\x80 end";
static const char special_attr[] = "&<>\"' \t\n\r \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";

static void test_escape_round_trip(void **state)
{
	(void)state;
	struct xml_node *m = xml_elem_new("message");
	assert_non_null(m);
	assert_int_equal(xml_set_attr(m, "to", special_attr), 0);
	assert_int_equal(xml_set_attr(m, "id", "1"), 0);
	struct xml_node *body = xml_new_child(m, "body");
	assert_int_equal(xml_add_text(body, special_text, strlen(special_text)), 0);
	struct xml_node *x = xml_new_child_ns(m, "x", "urn:x:'\"&");
	assert_non_null(x);
	assert_int_equal(xml_add_text(m, "tail", 4), 0);

	size_t len = 0;
	char *s = xml_to_string(m, &len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	assert_null(strchr(s, '\r'));
	struct xml_node *back = xml_parse_string(s, len);
	assert_non_null(back);
	assert_true(tree_equal(m, back));
	assert_string_equal(xml_get_attr(back, "to"), special_attr);
	char *t = xml_child_text(back, "body");
	assert_string_equal(t, special_text);
	free(t);

	/* xml_serialize writes the same bytes */
	struct evbuffer *eb = evbuffer_new();
	assert_int_equal(xml_serialize(m, eb), 0);
	assert_int_equal(evbuffer_get_length(eb), len);
	assert_memory_equal(evbuffer_pullup(eb, -1), s, len);
	evbuffer_free(eb);

	/* the exact escapes */
	struct xml_node *e = xml_elem_new("e");
	xml_set_attr(e, "a", "&<>\"'");
	xml_add_text(e, "1 & 2 < 3 > 0 \"'", 16);
	char *es = xml_to_string(e, NULL);
	assert_string_equal(es, "<e a='&amp;&lt;&gt;&quot;&apos;'>1 &amp; 2 &lt; 3 &gt; 0 \"'</e>");
	free(es);
	xml_free(e);

	eb = evbuffer_new();
	assert_int_equal(xml_escape_text(eb, "<a&b>", 5), 0);
	assert_int_equal(xml_escape_attr(eb, "'\""), 0);
	evbuffer_add(eb, "", 1);
	assert_string_equal((char *)evbuffer_pullup(eb, -1), "&lt;a&amp;b&gt;&apos;&quot;");
	evbuffer_free(eb);

	free(s);
	xml_free(back);
	xml_free(m);
}

static void test_big_tree_serialize(void **state)
{
	(void)state;
	/* deep and long trees: no recursion, output bigger than any internal buffer */
	struct xml_node *root = xml_elem_new("r");
	struct xml_node *cur = root;
	for (int i = 0; i < 100000; i++)
		cur = xml_new_child(cur, "d");
	for (int i = 0; i < 5000; i++)
		xml_add_text(root, "<&>", 3);
	assert_int_equal(root->last_child->text_len, 15000);
	size_t len;
	char *s = xml_to_string(root, &len);
	assert_non_null(s);
	struct xml_node *back = xml_parse_string(s, len);
	assert_non_null(back);
	assert_true(tree_equal(root, back));
	struct xml_node *copy = xml_copy(root);
	assert_true(tree_equal(root, copy));
	xml_free(copy);
	xml_free(back);
	xml_free(root);
	free(s);
}

static const char ns_doc[] =
	"<iq xmlns='jabber:client' type='get'>"
	"<query xmlns='jabber:iq:roster'><item jid='a@b'/>text</query>"
	"<x:a xmlns:x='urn:x'><x:b/><c/></x:a>"
	"<a xmlns='urn:1'/>  <a xmlns='urn:2'/><b/>"
	"</iq>";

static void test_ns_and_find(void **state)
{
	(void)state;
	struct xml_node *iq = xml_parse_string(ns_doc, strlen(ns_doc));
	assert_non_null(iq);
	assert_string_equal(xml_ns(iq), "jabber:client");
	struct xml_node *q = xml_find_child(iq, "query", NULL);
	assert_non_null(q);
	assert_string_equal(xml_ns(q), "jabber:iq:roster");
	struct xml_node *item = xml_first_elem(q);
	assert_string_equal(item->name, "item");
	assert_string_equal(xml_ns(item), "jabber:iq:roster");
	assert_null(xml_next_elem(item));
	struct xml_node *xa = xml_find_child(iq, "x:a", "urn:x");
	assert_non_null(xa);
	assert_string_equal(xml_ns(xml_first_elem(xa)), "urn:x");
	assert_string_equal(xml_ns(xml_next_elem(xml_first_elem(xa))), "jabber:client");

	struct xml_node *a1 = xml_find_child(iq, "a", NULL);
	struct xml_node *a2 = xml_find_child(iq, "a", "urn:2");
	assert_non_null(a1);
	assert_non_null(a2);
	assert_string_equal(xml_get_attr(a1, "xmlns"), "urn:1");
	assert_ptr_equal(xml_next_elem(a1), a2); /* skips the whitespace text node */
	assert_ptr_equal(xml_find_child(iq, "a", "urn:1"), a1);
	assert_null(xml_find_child(iq, "a", "urn:3"));
	assert_ptr_equal(xml_find_child(iq, "b", "jabber:client"), xml_next_elem(a2));
	assert_ptr_equal(xml_find_child_by_ns(iq, "urn:2"), a2);
	assert_ptr_equal(xml_find_child_by_ns(iq, "jabber:iq:roster"), q);
	assert_null(xml_find_child_by_ns(iq, "urn:none"));

	/* detached, a child keeps only its own declarations */
	xml_remove(q);
	assert_null(q->parent);
	assert_null(xml_find_child(iq, "query", NULL));
	struct xml_node *bare = xml_elem_new("bare");
	assert_null(xml_ns(bare));
	xml_append(iq, bare);
	assert_string_equal(xml_ns(bare), "jabber:client");
	assert_ptr_equal(iq->last_child, bare);
	/* appending an attached node moves it */
	xml_append(iq, a1);
	assert_ptr_equal(iq->last_child, a1);
	assert_ptr_equal(xml_find_child(iq, "a", NULL), a2);
	assert_null(a1->next);
	assert_null(xml_text(NULL));
	xml_free(q);
	xml_free(iq);
}

static void test_copy_equal(void **state)
{
	(void)state;
	struct xml_node *iq = xml_parse_string(ns_doc, strlen(ns_doc));
	assert_non_null(iq);
	struct xml_node *sub = xml_find_child(iq, "query", NULL);
	struct xml_node *c = xml_copy(iq);
	assert_non_null(c);
	assert_ptr_not_equal(c, iq);
	assert_true(tree_equal(iq, c));
	struct xml_node *subc = xml_copy(sub);
	assert_null(subc->parent);
	assert_true(tree_equal(sub, subc));
	xml_set_attr(c, "type", "set");
	assert_false(tree_equal(iq, c));
	xml_free(iq); /* the copies own their memory */
	assert_string_equal(xml_get_attr(c, "type"), "set");
	assert_string_equal(xml_get_attr(subc, "xmlns"), "jabber:iq:roster");
	xml_free(c);
	xml_free(subc);
}

static void test_child_text_and_attrs(void **state)
{
	(void)state;
	const char doc[] = "<m><body>hi <b/>there</body><empty/><body>second</body></m>";
	struct xml_node *m = xml_parse_string(doc, strlen(doc));
	assert_non_null(m);
	char *t = xml_child_text(m, "body");
	assert_string_equal(t, "hi there");
	free(t);
	t = xml_child_text(m, "empty");
	assert_string_equal(t, "");
	free(t);
	assert_null(xml_child_text(m, "none"));
	t = xml_text(m);
	assert_string_equal(t, "");
	free(t);

	/* attributes: add, replace (value from the block being replaced), remove */
	assert_null(xml_get_attr(m, "a"));
	assert_int_equal(xml_set_attr(m, "a", "1"), 0);
	assert_int_equal(xml_set_attr(m, "b", "2"), 0);
	assert_int_equal(xml_set_attr(m, "a", xml_get_attr(m, "b")), 0);
	assert_string_equal(xml_get_attr(m, "a"), "2");
	assert_int_equal(xml_set_attr(m, "b", NULL), 0);
	assert_null(xml_get_attr(m, "b"));
	assert_int_equal(xml_set_attr(m, "zz", NULL), 0);
	assert_int_equal(xml_set_attr(m, "a", NULL), 0);
	assert_null(m->attrs);
	xml_free(m);

	/* xml_parse_string refuses what is not one well-formed, unrestricted element */
	const char *bad[] = {"", "<a/><b/>", "<a>", "text", "<a/>junk", "<!--c--><a/>",
			     "<a>&x;</a>", "<!DOCTYPE a><a/>"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(xml_parse_string(bad[i], strlen(bad[i])));
	struct xml_node *ok = xml_parse_string("<?xml version='1.0'?>\n<a/>\n", 27);
	assert_non_null(ok);
	xml_free(ok);
	xml_free(NULL);

	assert_string_equal(xml_stream_error_condition(XML_ERR_NOT_WELL_FORMED), "not-well-formed");
	assert_string_equal(xml_stream_error_condition(XML_ERR_BAD_NS_PREFIX),
			    "bad-namespace-prefix");
	assert_string_equal(xml_stream_error_condition(XML_ERR_RESOURCE), "resource-constraint");
}

/* An idle stream gives its parser back between stanzas and resumes transparently: same
 * stanzas, same limits, the close still recognised. */
static void test_compact_and_resume(void **state)
{
	(void)state;
	struct rec *r = rec_new();
	assert_int_equal(xml_stream_compact(r->s), 0); /* before the header: nothing to do */
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	assert_int_equal(feed_str(r, "<message><body>one</body></message>"), 0);
	assert_int_equal(xml_stream_compact(r->s), 1);
	assert_int_equal(xml_stream_compact(r->s), 0); /* already compact */
	const char *two = "<message><body>two &amp; more</body></message>";
	for (size_t i = 0; two[i]; i++)
		assert_int_equal(xml_stream_feed(r->s, two + i, 1), 0);
	assert_int_equal(r->nstanzas, 2);
	assert_string_equal(r->stanzas[1], "<message><body>two &amp; more</body></message>");
	/* mid-stanza: the parser holds state and must stay */
	assert_int_equal(feed_str(r, "<presence><sta"), 0);
	assert_int_equal(xml_stream_compact(r->s), 0);
	assert_int_equal(feed_str(r, "tus>x</status></presence>"), 0);
	assert_int_equal(r->nstanzas, 3);
	assert_int_equal(xml_stream_compact(r->s), 1);
	/* limits hold after a resume */
	char *big = stanza_of_size(1025);
	assert_int_equal(feed_str(r, big), -1);
	assert_int_equal(r->err, XML_ERR_POLICY_VIOLATION);
	free(big);
	rec_free(r);

	r = rec_new();
	assert_int_equal(feed_str(r, STREAM_HEADER), 0);
	assert_int_equal(xml_stream_compact(r->s), 1);
	assert_int_equal(feed_str(r, "</stream:stream>"), 0);
	assert_int_equal(r->closes, 1);
	assert_int_equal(r->opens, 1); /* the primer is not a second stream */
	rec_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_whole_and_bytewise),
		cmocka_unit_test(test_stream_many_stanzas_one_feed),
		cmocka_unit_test(test_header_checks),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_limit_stanza_size),
		cmocka_unit_test(test_limit_giant_attribute_and_text),
		cmocka_unit_test(test_limit_depth),
		cmocka_unit_test(test_limit_attrs),
		cmocka_unit_test(test_limit_header),
		cmocka_unit_test(test_restricted_xml),
		cmocka_unit_test(test_not_well_formed),
		cmocka_unit_test(test_reset_in_callback),
		cmocka_unit_test(test_whitespace_keepalive),
		cmocka_unit_test(test_stanza_free_on_stream_free),
		cmocka_unit_test(test_escape_round_trip),
		cmocka_unit_test(test_big_tree_serialize),
		cmocka_unit_test(test_ns_and_find),
		cmocka_unit_test(test_copy_equal),
		cmocka_unit_test(test_child_text_and_attrs),
		cmocka_unit_test(test_compact_and_resume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
