/* JID parsing and normalization (engine/jid.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "engine/jid.h"

static void full_jid(void **state)
{
	struct jid j;
	char buf[4096];
	assert_int_equal(jid_parse("Alice@Duet.Test/Phone One", &j), 0);
	assert_string_equal(j.local, "alice");
	assert_string_equal(j.domain, "duet.test");
	assert_string_equal(j.resource, "Phone One"); /* resources keep their case */
	assert_string_equal(jid_bare(&j, buf, sizeof buf), "alice@duet.test");
	assert_string_equal(jid_full(&j, buf, sizeof buf), "alice@duet.test/Phone One");
}

static void domain_only_and_trailing_dot(void **state)
{
	struct jid j;
	char buf[4096];
	assert_int_equal(jid_parse("duet.test.", &j), 0);
	assert_string_equal(j.local, "");
	assert_string_equal(jid_bare(&j, buf, sizeof buf), "duet.test");
	assert_int_equal(jid_parse("duet.test/res@with/slash", &j), 0);
	assert_string_equal(j.resource, "res@with/slash");
}

static void malformed(void **state)
{
	struct jid j;
	static const char *const bad[] = {
		"", "@duet.test", "alice@", "alice@duet.test/", "al ice@duet.test",
		"a<b@duet.test", "alice@du et.test", "alice@@duet.test", "/res",
		"alice@duet.test/\x01", NULL,
	};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(jid_parse(bad[i], &j), -1);
	char big[2100];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	big[1500] = '@';
	assert_int_equal(jid_parse(big, &j), -1); /* localpart over 1023 bytes */
}

static void validity_helpers(void **state)
{
	assert_true(jid_local_valid("bob"));
	assert_false(jid_local_valid("bo:b"));
	assert_false(jid_local_valid(""));
	assert_true(jid_resource_valid("any thing/@"));
	assert_false(jid_resource_valid("tab\there"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_jid),
		cmocka_unit_test(domain_only_and_trailing_dot),
		cmocka_unit_test(malformed),
		cmocka_unit_test(validity_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
