/* lib/utf8.c: the one strict UTF-8 decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/utf8.h"

static size_t dec(const char *s, unsigned long *cp)
{
	return utf8_decode((const unsigned char *)s, strlen(s), cp);
}

static void well_formed(void **state)
{
	unsigned long cp;
	assert_int_equal(dec("A", &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(dec("\xc3\xa9", &cp), 2); /* é */
	assert_int_equal(cp, 0xe9);
	assert_int_equal(dec("\xe2\x82\xac", &cp), 3); /* € */
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(dec("\xf0\x9f\x98\x80", &cp), 4); /* U+1F600 */
	assert_int_equal(cp, 0x1f600);
}

static void malformed(void **state)
{
	unsigned long cp;
	static const char *const bad[] = {
		"\xc0\xaf",         /* overlong '/' */
		"\xe0\x80\xaf",     /* overlong */
		"\xed\xa0\x80",     /* surrogate U+D800 */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xc3",             /* truncated */
		"\xe2\x82",         /* truncated */
		"\x80",             /* lone continuation */
		"\xff", NULL,
	};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(dec(bad[i], &cp), 0);
	/* a NUL ends a sequence even when n claims more */
	assert_int_equal(utf8_decode((const unsigned char *)"\xc3\0\xa9", 3, &cp), 0);
}

static void no_c1(void **state)
{
	assert_int_equal(utf8_char_len_no_c1((const unsigned char *)"\xc2\x85"), 0); /* NEL */
	assert_int_equal(utf8_char_len_no_c1((const unsigned char *)"\xc2\xa0"), 2); /* NBSP */
	assert_int_equal(utf8_char_len_no_c1((const unsigned char *)"a"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(well_formed),
		cmocka_unit_test(malformed),
		cmocka_unit_test(no_c1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
