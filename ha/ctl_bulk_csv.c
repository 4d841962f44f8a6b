/* The manual's contact-list CSV rows (docs/bulk-tools.md): splitting, quoting, and Table
 * 26's field rules.  Pure code: every input is hostile (any bytes, any length). */
#include "ha/ctl_bulk.h"

#include "lib/utf8.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const bulk_reason_code[BULK_REASON_COUNT] = {
	"ok",
	"invalid-format",
	"invalid-contact-domain",
	"self-contact",
	"contact-list-limit",
	"user-not-assigned",
};

const char *const bulk_reason_message[BULK_REASON_COUNT] = {
	"Imported",
	"Invalid format",
	"Invalid contact domain",
	"Cannot add self as contact",
	"User's contact list exceeds limit",
	"User not assigned to local node",
};

enum bulk_reason bulk_reason_from_code(const char *code)
{
	for (int i = 0; i < BULK_REASON_COUNT; i++)
		if (code && strcmp(code, bulk_reason_code[i]) == 0)
			return (enum bulk_reason)i;
	return BULK_REASON_COUNT;
}

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

int bulk_csv_split(const char *line, size_t len, struct bulk_csv_fields *out, const char **why)
{
	out->n = 0;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > BULK_CSV_MAX_LINE) {
		*why = "line longer than 4096 bytes";
		return -1;
	}
	if (memchr(line, '\0', len)) {
		*why = "NUL byte";
		return -1;
	}
	/* A UTF-8 byte order mark (spreadsheets write one). */
	if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	const char *p = line, *end = line + len;
	char *w = out->buf;
	for (;;) {
		if (out->n == BULK_CSV_MAX_FIELDS) {
			*why = "too many columns";
			return -1;
		}
		out->f[out->n++] = w;
		while (p < end && is_blank(*p))
			p++;
		if (p < end && *p == '"') {
			p++;
			for (;;) {
				if (p == end) {
					*why = "unterminated quote";
					return -1;
				}
				if (*p == '"') {
					if (p + 1 < end && p[1] == '"') {
						*w++ = '"';
						p += 2;
						continue;
					}
					p++;
					break;
				}
				*w++ = *p++;
			}
			while (p < end && is_blank(*p))
				p++;
			if (p < end && *p != ',') {
				*why = "text after a closing quote";
				return -1;
			}
		} else {
			const char *s = p;
			while (p < end && *p != ',') {
				if (*p == '"') {
					*why = "quote inside an unquoted field";
					return -1;
				}
				p++;
			}
			const char *e = p;
			while (e > s && is_blank(e[-1]))
				e--;
			memcpy(w, s, (size_t)(e - s));
			w += e - s;
		}
		*w++ = '\0';
		if (p == end)
			return 0;
		p++; /* the comma */
	}
}

void bulk_csv_field(char *out, size_t cap, const char *s)
{
	size_t used = strlen(out);
	/* An empty field is nothing between the commas; blanks around a value would be
	 * trimmed by the reader unless quoted. */
	int quote = *s && (strpbrk(s, ",\"\r\n") || is_blank(s[0]) || is_blank(s[strlen(s) - 1]) ||
			   strncmp(s, "\xef\xbb\xbf", 3) == 0); /* read as a byte order mark */
	if (!quote) {
		snprintf(out + used, cap - used, "%s", s);
		return;
	}
	if (used + 1 < cap)
		out[used++] = '"';
	for (; *s && used + 2 < cap; s++) {
		if (*s == '"')
			out[used++] = '"';
		out[used++] = *s;
	}
	if (used + 1 < cap)
		out[used++] = '"';
	out[used < cap ? used : cap - 1] = '\0';
}

long bulk_text_chars(const char *s)
{
	long n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; n++) {
		if (*p < 0x20 || *p == 0x7f)
			return -1;
		size_t k = utf8_char_len_no_c1(p);
		if (!k)
			return -1;
		p += k;
	}
	return n;
}

int bulk_contact_domain_valid(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > BULK_DOMAIN_MAX_CHARS)
		return 0;
	const char *label = d;
	for (;;) {
		const char *dot = strchr(label, '.');
		size_t ln = dot ? (size_t)(dot - label) : strlen(label);
		if (ln == 0 || ln > 63 || label[0] == '-' || label[ln - 1] == '-')
			return 0;
		int letters_only = 1;
		for (size_t i = 0; i < ln; i++) {
			char ch = label[i];
			int letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
			int digit = ch >= '0' && ch <= '9';
			if (!letter && !digit && ch != '-')
				return 0;
			letters_only &= letter;
		}
		if (!dot)
			return letters_only && ln >= 2; /* the top-level domain */
		label = dot + 1;
	}
}

static void lower_ascii(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* A localpart of at most 132 characters: UTF-8, no whitespace, controls or "&'/:<>@
 * (RFC 7622), lowercased in ASCII into out. */
static int local_parse(const char *s, char *out, size_t cap)
{
	long chars = bulk_text_chars(s);
	if (chars < 1 || chars > BULK_ID_MAX_CHARS || strlen(s) >= cap)
		return 0;
	for (const char *p = s; *p; p++)
		if (*p == ' ' || strchr("\"&'/:<>@", *p))
			return 0;
	snprintf(out, cap, "%s", s);
	lower_ascii(out);
	return 1;
}

int bulk_jid_parse(const char *s, char *out, size_t cap)
{
	const char *at = strrchr(s, '@');
	if (!at || (size_t)(at - s) >= BULK_ID_BUF)
		return 0;
	char local[BULK_ID_BUF], norm[BULK_ID_BUF], dom[BULK_DOMAIN_MAX_CHARS + 1];
	memcpy(local, s, (size_t)(at - s));
	local[at - s] = '\0';
	if (strlen(at + 1) >= sizeof dom || !local_parse(local, norm, sizeof norm) ||
	    !bulk_contact_domain_valid(at + 1))
		return 0;
	snprintf(dom, sizeof dom, "%s", at + 1);
	lower_ascii(dom);
	if ((size_t)snprintf(out, cap, "%s@%s", norm, dom) >= cap)
		return 0;
	return 1;
}

/* The node's domain, as the user domain of a row may spell it (any case, a trailing dot). */
static int domain_is_ours(const char *d, const char *domain)
{
	size_t n = strlen(d);
	if (n && d[n - 1] == '.')
		n--;
	return n == strlen(domain) && strncasecmp(d, domain, n) == 0;
}

enum bulk_reason bulk_contact_row_parse(const struct bulk_csv_fields *f, const char *domain,
					 struct bulk_contact_row *row, char *detail, size_t dlen)
{
	static const char *const names[6] = {"User ID",	     "User Domain", "Contact ID",
					     "Contact Domain", "Nickname",    "Group Name"};
	static const long max[6] = {BULK_ID_MAX_CHARS,	   BULK_DOMAIN_MAX_CHARS,
				    BULK_ID_MAX_CHARS,	   BULK_DOMAIN_MAX_CHARS,
				    BULK_TEXT_MAX_CHARS, BULK_TEXT_MAX_CHARS};
	memset(row, 0, sizeof *row);
	if (f->n != 6) {
		snprintf(detail, dlen, "%d columns, 6 expected", f->n);
		return BULK_INVALID_FORMAT;
	}
	for (int i = 0; i < 6; i++) {
		long chars = bulk_text_chars(f->f[i]);
		if (chars < 0) {
			snprintf(detail, dlen, "%s: not UTF-8 text, or a control character",
				 names[i]);
			return BULK_INVALID_FORMAT;
		}
		if (chars == 0 && i != 4) {
			snprintf(detail, dlen, "%s is required", names[i]);
			return BULK_INVALID_FORMAT;
		}
		if (chars > max[i]) {
			snprintf(detail, dlen, "%s longer than %ld characters", names[i], max[i]);
			return BULK_INVALID_FORMAT;
		}
	}
	if (!local_parse(f->f[0], row->user, sizeof row->user)) {
		snprintf(detail, dlen, "User ID is not a valid XMPP localpart");
		return BULK_INVALID_FORMAT;
	}
	char cl[BULK_ID_BUF];
	if (!local_parse(f->f[2], cl, sizeof cl)) {
		snprintf(detail, dlen, "Contact ID is not a valid XMPP localpart");
		return BULK_INVALID_FORMAT;
	}
	if (!bulk_contact_domain_valid(f->f[3])) {
		snprintf(detail, dlen, "Contact Domain %.128s", f->f[3]);
		return BULK_INVALID_CONTACT_DOMAIN;
	}
	char cd[BULK_DOMAIN_MAX_CHARS + 1];
	snprintf(cd, sizeof cd, "%s", f->f[3]);
	lower_ascii(cd);
	snprintf(row->contact, sizeof row->contact, "%s@%s", cl, cd);
	snprintf(row->nick, sizeof row->nick, "%s", f->f[4]);
	snprintf(row->group, sizeof row->group, "%s", f->f[5]);
	if (!domain_is_ours(f->f[1], domain)) {
		snprintf(detail, dlen, "User Domain %.128s is not this group's domain %s", f->f[1],
			 domain);
		return BULK_NOT_ASSIGNED;
	}
	if (strcmp(cl, row->user) == 0 && domain_is_ours(cd, domain)) {
		snprintf(detail, dlen, "%s@%s", row->user, domain);
		return BULK_SELF_CONTACT;
	}
	return BULK_OK;
}

int bulk_csv_is_header(const struct bulk_csv_fields *f, const char *first_word)
{
	return f->n >= 2 && strncasecmp(f->f[0], first_word, strlen(first_word)) == 0 &&
	       (f->f[0][strlen(first_word)] == '\0' || f->f[0][strlen(first_word)] == ' ');
}
