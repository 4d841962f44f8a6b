/* The load client's view of an XMPP stream: expat in streaming mode, reduced to the few
 * things the client waits for.  Each top-level element (depth 1) is summarised into a
 * struct xin_stanza and handed over when it ends.  Input is bounded: depth, text sizes, no
 * DTD or entity declarations. */
#ifndef LOADGEN_XMLIN_H
#define LOADGEN_XMLIN_H

#include <expat.h>
#include <stddef.h>

#define XIN_TEXT_MAX 1024

enum { XIN_MECH_SHA1 = 1, XIN_MECH_SHA256 = 2, XIN_MECH_PLAIN = 4 };

struct xin_stanza {
	char name[32]; /* local name: features, proceed, challenge, success, iq, message ... */
	char type[16];
	char id[24];
	char cond[48]; /* first child of <failure>, <stream:error>, or iq <error> */
	unsigned starttls : 1, bind : 1, session : 1, session_optional : 1, mechanisms : 1;
	unsigned mechs;       /* XIN_MECH_* offered in <mechanisms> */
	/* failover mode: <retry-after xmlns='urn:duet:relogin:0' seconds='N'/> in a stream error,
	 * and the urn:duet:relogin:0 form of a disco#info result; -1 when absent */
	long retry_after, relogin_lower, relogin_upper;
	char text[XIN_TEXT_MAX]; /* challenge/success payload, message <body>, see-other-host */
	size_t text_len;
};

enum xin_event { XIN_STREAM_OPEN, XIN_STANZA, XIN_STREAM_CLOSE };

/* Return non-zero to stop parsing the current buffer (stream restart, client closing). */
typedef int (*xin_cb)(void *arg, enum xin_event ev, const struct xin_stanza *st);

struct xin {
	XML_Parser p;
	xin_cb cb;
	void *arg;
	int depth;
	int capture; /* collecting text for st.text (1) or a mechanism name (2) */
	int stopped;
	int bad;     /* a limit was hit; message in err */
	const char *err;
	char mech[32];
	size_t mech_len;
	char parent2[32]; /* local name of the current depth-2 element */
	int relogin_form; /* inside the disco#info form urn:duet:relogin:0 */
	char field_var[32];
	char value[48];
	size_t value_len;
	struct xin_stanza st;
};

int xin_init(struct xin *x, xin_cb cb, void *arg);
/* Start a new stream on the same connection (after STARTTLS or SASL success). */
int xin_reset(struct xin *x);
void xin_free(struct xin *x);
/* 0: fine (possibly stopped by the callback); -1: malformed or over a limit (x->err). */
int xin_feed(struct xin *x, const char *buf, size_t len);

#endif
