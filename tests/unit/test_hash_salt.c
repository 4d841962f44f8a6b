/* lib/hash_salt.c: every salt is usable (never 0, which tells expat to draw its own) and
 * no two parsers share one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lib/hash_salt.h"

static int cmp(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
	return x < y ? -1 : x > y;
}

static void salts_distinct_and_nonzero(void **state)
{
	enum { N = 4096 };
	static unsigned long s[N];
	for (int i = 0; i < N; i++) {
		s[i] = hash_salt_next();
		assert_true(s[i] != 0);
	}
	qsort(s, N, sizeof s[0], cmp);
	for (int i = 1; i < N; i++)
		assert_true(s[i] != s[i - 1]);
	/* not a counter: the salts spread over the whole range */
	assert_true(s[N - 1] - s[0] > 0xffffffUL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(salts_distinct_and_nonzero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
