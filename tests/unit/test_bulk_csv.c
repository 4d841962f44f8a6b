/* The bulk tools' CSV rows (ha/ctl_bulk_csv.c): splitting and quoting round trips, the
 * manual's field rules (Table 26) and their reasons, hostile bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ha/ctl_bulk.h"

static int split(const char *line, struct bulk_csv_fields *f, const char **why)
{
	return bulk_csv_split(line, strlen(line), f, why);
}

static void split_plain_and_quoted(void **state)
{
	struct bulk_csv_fields f;
	const char *why = NULL;
	assert_int_equal(split("a, b ,\"c, \"\"d\"\"\" ,,e\r", &f, &why), 0);
	assert_int_equal(f.n, 5);
	assert_string_equal(f.f[0], "a");
	assert_string_equal(f.f[1], "b");
	assert_string_equal(f.f[2], "c, \"d\"");
	assert_string_equal(f.f[3], "");
	assert_string_equal(f.f[4], "e");
	assert_int_equal(split("\xef\xbb\xbfx,y", &f, &why), 0); /* a byte order mark */
	assert_string_equal(f.f[0], "x");
}

static void split_refuses_broken_lines(void **state)
{
	struct bulk_csv_fields f;
	const char *why = NULL;
	assert_int_equal(split("\"open,b", &f, &why), -1);
	assert_string_equal(why, "unterminated quote");
	assert_int_equal(split("\"a\"b,c", &f, &why), -1);
	assert_int_equal(split("a\"b,c", &f, &why), -1);
	assert_int_equal(split("1,2,3,4,5,6,7,8,9", &f, &why), -1);
	assert_int_equal(bulk_csv_split("a\0b", 3, &f, &why), -1);
	char *big = malloc(BULK_CSV_MAX_LINE + 2);
	assert_non_null(big);
	memset(big, 'x', BULK_CSV_MAX_LINE + 1);
	big[BULK_CSV_MAX_LINE + 1] = '\0';
	assert_int_equal(split(big, &f, &why), -1);
	big[BULK_CSV_MAX_LINE] = '\0';
	assert_int_equal(split(big, &f, &why), 0); /* exactly the limit is fine */
	free(big);
}

/* Any value written by bulk_csv_field reads back the same. */
static void quoting_round_trip(void **state)
{
	const char *values[] = {"plain", "with, comma", "\"quoted\"", " lead", "trail ", "",
				"é ü 漢字", "a\"b\"\"c", "\xef\xbb\xbf" "bom"};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		char line[256] = "";
		bulk_csv_field(line, sizeof line, values[i]);
		strcat(line, ",end");
		struct bulk_csv_fields f;
		const char *why;
		assert_int_equal(split(line, &f, &why), 0);
		assert_int_equal(f.n, 2);
		assert_string_equal(f.f[0], values[i]);
	}
}

static void contact_domains(void **state)
{
	assert_true(bulk_contact_domain_valid("example.com"));
	assert_true(bulk_contact_domain_valid("a-b.c9.example.COM"));
	assert_true(bulk_contact_domain_valid("localhost"));
	assert_false(bulk_contact_domain_valid("-a.com"));
	assert_false(bulk_contact_domain_valid("a-.com"));
	assert_false(bulk_contact_domain_valid("a..com"));
	assert_false(bulk_contact_domain_valid("a.c0m"));   /* top-level: letters only */
	assert_false(bulk_contact_domain_valid("a.c"));     /* top-level: two at least */
	assert_false(bulk_contact_domain_valid("a_b.com"));
	assert_false(bulk_contact_domain_valid("a.com."));
	assert_false(bulk_contact_domain_valid(""));
	char label[80];
	memset(label, 'a', 64);
	snprintf(label + 64, sizeof label - 64, ".com");
	assert_false(bulk_contact_domain_valid(label)); /* a label of 64 */
	char longd[140];
	memset(longd, 'a', 126);
	snprintf(longd + 126, sizeof longd - 126, ".ab"); /* 129 characters */
	assert_false(bulk_contact_domain_valid(longd));
}

static enum bulk_reason row(const char *line, struct bulk_contact_row *r)
{
	struct bulk_csv_fields f;
	const char *why;
	char detail[600];
	if (split(line, &f, &why) < 0)
		return BULK_INVALID_FORMAT;
	return bulk_contact_row_parse(&f, "duet.test", r, detail, sizeof detail);
}

static void row_rules(void **state)
{
	struct bulk_contact_row r;
	assert_int_equal(row("Alice,DUET.test.,Bob,Example.com,Nick,Group", &r), BULK_OK);
	assert_string_equal(r.user, "alice");
	assert_string_equal(r.contact, "bob@example.com");
	assert_string_equal(r.nick, "Nick");
	assert_string_equal(r.group, "Group");
	assert_int_equal(row("alice,duet.test,bob,example.com,,G", &r), BULK_OK);
	assert_string_equal(r.nick, "");
	assert_int_equal(row("alice,duet.test,bob,example.com,n", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row("alice,duet.test,bob,example.com,n,", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row(",duet.test,bob,example.com,n,G", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row("al ice,duet.test,bob,example.com,n,G", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row("a@usa,duet.test,bob,example.com,n,G", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row("alice,duet.test,b\x01,example.com,n,G", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row("alice,duet.test,\xc3\x28,example.com,n,G", &r), BULK_INVALID_FORMAT);
	assert_int_equal(row("alice,duet.test,bob,bad_domain,n,G", &r),
			 BULK_INVALID_CONTACT_DOMAIN);
	assert_int_equal(row("alice,duet.test,ALICE,Duet.Test,n,G", &r), BULK_SELF_CONTACT);
	assert_int_equal(row("alice,other.test,bob,duet.test,n,G", &r), BULK_NOT_ASSIGNED);
	/* Lengths count characters: 132 two-byte characters fit, 133 do not. */
	char line[2048], id[600];
	id[0] = '\0';
	for (int i = 0; i < 132; i++)
		strcat(id, "\xc3\xa9");
	snprintf(line, sizeof line, "%s,duet.test,bob,example.com,,G", id);
	assert_int_equal(row(line, &r), BULK_OK);
	strcat(id, "\xc3\xa9");
	snprintf(line, sizeof line, "%s,duet.test,bob,example.com,,G", id);
	assert_int_equal(row(line, &r), BULK_INVALID_FORMAT);
}

static void rename_jids(void **state)
{
	char out[BULK_JID_BUF];
	assert_true(bulk_jid_parse("John.Smith@Example.com", out, sizeof out));
	assert_string_equal(out, "john.smith@example.com");
	assert_false(bulk_jid_parse("nodomain", out, sizeof out));
	assert_false(bulk_jid_parse("@example.com", out, sizeof out));
	assert_false(bulk_jid_parse("a b@example.com", out, sizeof out));
	assert_false(bulk_jid_parse("a@b@example.com", out, sizeof out)); /* @ in a localpart */
	assert_false(bulk_jid_parse("a@exa_mple.com", out, sizeof out));
}

static void headers_and_reasons(void **state)
{
	struct bulk_csv_fields f;
	const char *why;
	assert_int_equal(split("Contact ID, New Contact ID", &f, &why), 0);
	assert_true(bulk_csv_is_header(&f, "Contact ID"));
	assert_int_equal(split("user id,User Domain,a,b,c,d", &f, &why), 0);
	assert_true(bulk_csv_is_header(&f, "User ID"));
	assert_int_equal(split("alice,duet.test,b,c,d,e", &f, &why), 0);
	assert_false(bulk_csv_is_header(&f, "User ID"));
	for (int i = 0; i < BULK_REASON_COUNT; i++)
		assert_int_equal(bulk_reason_from_code(bulk_reason_code[i]), i);
	assert_int_equal(bulk_reason_from_code("nope"), BULK_REASON_COUNT);
	assert_int_equal(bulk_reason_from_code(NULL), BULK_REASON_COUNT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_plain_and_quoted), cmocka_unit_test(split_refuses_broken_lines),
		cmocka_unit_test(quoting_round_trip),	  cmocka_unit_test(contact_domains),
		cmocka_unit_test(row_rules),		  cmocka_unit_test(rename_jids),
		cmocka_unit_test(headers_and_reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
