#include "contrib/loadgen/xmlin.h"
#include "lib/hash_salt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XIN_MAX_DEPTH 16

static const char *local_name(const char *n)
{
	const char *c = strrchr(n, ':');
	return c ? c + 1 : n;
}

static void copy_bounded(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src);
}

static const char *attr_get(const char **atts, const char *name)
{
	for (int i = 0; atts[i]; i += 2)
		if (strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

static void xin_fail(struct xin *x, const char *why)
{
	if (!x->bad) {
		x->bad = 1;
		x->err = why;
	}
	XML_StopParser(x->p, XML_FALSE);
}

static void on_start(void *ud, const char *name, const char **atts)
{
	struct xin *x = ud;
	const char *ln = local_name(name);
	int d = x->depth++;

	if (x->depth > XIN_MAX_DEPTH) {
		xin_fail(x, "xml-too-deep");
		return;
	}
	struct xin_stanza *st = &x->st;
	if (d == 0) {
		if (strcmp(ln, "stream") != 0) {
			xin_fail(x, "xml-not-a-stream");
			return;
		}
		if (x->cb(x->arg, XIN_STREAM_OPEN, NULL))
			XML_StopParser(x->p, XML_FALSE), x->stopped = 1;
		return;
	}
	if (d == 1) {
		memset(st, 0, offsetof(struct xin_stanza, text));
		st->text_len = 0;
		st->retry_after = st->relogin_lower = st->relogin_upper = -1;
		x->relogin_form = 0;
		copy_bounded(st->name, sizeof st->name, ln);
		const char *t = attr_get(atts, "type"), *id = attr_get(atts, "id");
		if (t)
			copy_bounded(st->type, sizeof st->type, t);
		if (id)
			copy_bounded(st->id, sizeof st->id, id);
		x->capture = strcmp(ln, "challenge") == 0 || strcmp(ln, "success") == 0;
		return;
	}
	if (d == 2) {
		copy_bounded(x->parent2, sizeof x->parent2, ln);
		if (strcmp(st->name, "features") == 0) {
			if (strcmp(ln, "starttls") == 0)
				st->starttls = 1;
			else if (strcmp(ln, "mechanisms") == 0)
				st->mechanisms = 1;
			else if (strcmp(ln, "bind") == 0)
				st->bind = 1;
			else if (strcmp(ln, "session") == 0)
				st->session = 1;
		} else if (strcmp(st->name, "message") == 0 && strcmp(ln, "body") == 0) {
			x->capture = 1;
		} else if ((strcmp(st->name, "failure") == 0 || strcmp(st->name, "error") == 0) &&
			   !st->cond[0] && strcmp(ln, "text") != 0) {
			copy_bounded(st->cond, sizeof st->cond, ln);
			/* see-other-host carries host:port as its text */
			x->capture = strcmp(st->name, "error") == 0 && strcmp(ln, "see-other-host") == 0;
		} else if (strcmp(st->name, "error") == 0 && strcmp(ln, "retry-after") == 0) {
			const char *n = attr_get(atts, "seconds");
			char *end;
			long v = n ? strtol(n, &end, 10) : -1;
			if (n && *n && !*end && v >= 0 && v <= 86400)
				st->retry_after = v;
		}
		return;
	}
	if (d == 3) {
		if (strcmp(st->name, "features") == 0 && strcmp(x->parent2, "mechanisms") == 0 &&
		    strcmp(ln, "mechanism") == 0) {
			x->capture = 2;
			x->mech_len = 0;
		} else if (strcmp(st->name, "features") == 0 &&
			   strcmp(x->parent2, "session") == 0 && strcmp(ln, "optional") == 0) {
			st->session_optional = 1;
		} else if (strcmp(x->parent2, "error") == 0 && !st->cond[0] &&
			   strcmp(ln, "text") != 0) {
			copy_bounded(st->cond, sizeof st->cond, ln);
		} else if (strcmp(st->name, "iq") == 0 && strcmp(x->parent2, "query") == 0 &&
			   strcmp(ln, "x") == 0) {
			x->relogin_form = 0; /* known once its FORM_TYPE field is read */
		}
		return;
	}
	/* iq > query > x > field > value: the fields of a disco#info form */
	if (d == 4 && strcmp(st->name, "iq") == 0 && strcmp(ln, "field") == 0) {
		const char *var = attr_get(atts, "var");
		copy_bounded(x->field_var, sizeof x->field_var, var ? var : "");
	} else if (d == 5 && strcmp(st->name, "iq") == 0 && strcmp(ln, "value") == 0) {
		x->capture = 4;
		x->value_len = 0;
	}
}

static void form_value(struct xin *x)
{
	struct xin_stanza *st = &x->st;
	x->value[x->value_len] = 0;
	if (strcmp(x->field_var, "FORM_TYPE") == 0) {
		x->relogin_form = strcmp(x->value, "urn:duet:relogin:0") == 0;
		return;
	}
	if (!x->relogin_form)
		return;
	char *end;
	long v = strtol(x->value, &end, 10);
	if (!x->value[0] || *end || v < 0 || v > 86400)
		return;
	if (strcmp(x->field_var, "relogin-lower-limit") == 0)
		st->relogin_lower = v;
	else if (strcmp(x->field_var, "relogin-upper-limit") == 0)
		st->relogin_upper = v;
}

static void on_end(void *ud, const char *name)
{
	struct xin *x = ud;
	int d = --x->depth;
	struct xin_stanza *st = &x->st;
	(void)name;

	if (x->capture >= 4 && d == 5) {
		if (x->capture == 4)
			form_value(x);
		x->capture = 0;
	} else if (x->capture >= 2 && x->capture <= 3 && d == 3) {
		x->mech[x->mech_len] = 0;
		if (x->capture == 2 && strcmp(x->mech, "SCRAM-SHA-1") == 0)
			st->mechs |= XIN_MECH_SHA1;
		else if (x->capture == 2 && strcmp(x->mech, "SCRAM-SHA-256") == 0)
			st->mechs |= XIN_MECH_SHA256;
		else if (x->capture == 2 && strcmp(x->mech, "PLAIN") == 0)
			st->mechs |= XIN_MECH_PLAIN;
		x->capture = 0;
	} else if (x->capture == 1 && (d == 1 || d == 2)) {
		x->capture = 0;
	}
	if (d == 1) {
		st->text[st->text_len] = 0;
		if (x->cb(x->arg, XIN_STANZA, st))
			XML_StopParser(x->p, XML_FALSE), x->stopped = 1;
	} else if (d == 0) {
		x->cb(x->arg, XIN_STREAM_CLOSE, NULL);
		XML_StopParser(x->p, XML_FALSE);
		x->stopped = 1;
	}
}

static void on_text(void *ud, const char *s, int len)
{
	struct xin *x = ud;
	if (x->capture == 1) {
		if (x->st.text_len + (size_t)len >= XIN_TEXT_MAX) {
			xin_fail(x, "xml-text-too-long");
			return;
		}
		memcpy(x->st.text + x->st.text_len, s, (size_t)len);
		x->st.text_len += (size_t)len;
	} else if (x->capture == 4) {
		if (x->value_len + (size_t)len >= sizeof x->value) {
			x->value_len = 0; /* too long for a number: matches nothing */
			x->capture = 5;
			return;
		}
		memcpy(x->value + x->value_len, s, (size_t)len);
		x->value_len += (size_t)len;
	} else if (x->capture == 2) {
		if (x->mech_len + (size_t)len >= sizeof x->mech) {
			x->mech_len = 0; /* an over-long name matches nothing */
			x->capture = 3;
			return;
		}
		memcpy(x->mech + x->mech_len, s, (size_t)len);
		x->mech_len += (size_t)len;
	}
}

static void on_doctype(void *ud, const char *n, const char *s, const char *p, int i)
{
	(void)n, (void)s, (void)p, (void)i;
	xin_fail(ud, "xml-doctype");
}

static void xin_setup(struct xin *x)
{
	unsigned long salt = hash_salt_next(); /* no getrandom() per stream restart */
	if (salt != 0)
		XML_SetHashSalt(x->p, salt);
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, on_start, on_end);
	XML_SetCharacterDataHandler(x->p, on_text);
	XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
	x->depth = 0;
	x->capture = 0;
	x->stopped = 0;
	x->bad = 0;
	x->err = NULL;
}

int xin_init(struct xin *x, xin_cb cb, void *arg)
{
	memset(x, 0, sizeof *x);
	x->cb = cb;
	x->arg = arg;
	x->p = XML_ParserCreate("UTF-8");
	if (!x->p)
		return -1;
	xin_setup(x);
	return 0;
}

int xin_reset(struct xin *x)
{
	if (!XML_ParserReset(x->p, "UTF-8"))
		return -1;
	xin_setup(x);
	return 0;
}

void xin_free(struct xin *x)
{
	if (x->p)
		XML_ParserFree(x->p);
	x->p = NULL;
}

int xin_feed(struct xin *x, const char *buf, size_t len)
{
	x->stopped = 0;
	if (len > (size_t)1 << 30)
		return -1;
	enum XML_Status s = XML_Parse(x->p, buf, (int)len, 0);
	if (x->bad)
		return -1;
	if (s == XML_STATUS_ERROR) {
		if (XML_GetErrorCode(x->p) == XML_ERROR_ABORTED && x->stopped)
			return 0;
		x->err = "xml-malformed";
		return -1;
	}
	return 0;
}
