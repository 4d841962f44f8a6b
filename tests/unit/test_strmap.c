/* The string hash map (lib/strmap.c): inserts, replaces, deletes with tombstones, growth,
 * and iteration while deleting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "lib/strmap.h"

static void put_get_del(void **state)
{
	struct strmap *m = strmap_new();
	assert_non_null(m);
	assert_int_equal(strmap_put(m, "a", (void *)1), 0);
	assert_int_equal(strmap_put(m, "b", (void *)2), 0);
	assert_int_equal(strmap_put(m, "a", (void *)3), 0); /* replace */
	assert_int_equal(strmap_count(m), 2);
	assert_ptr_equal(strmap_get(m, "a"), (void *)3);
	assert_ptr_equal(strmap_del(m, "a"), (void *)3);
	assert_null(strmap_get(m, "a"));
	assert_null(strmap_del(m, "a"));
	assert_int_equal(strmap_count(m), 1);
	strmap_free(m);
}

static void many_with_churn(void **state)
{
	struct strmap *m = strmap_new();
	char key[32];
	for (int round = 0; round < 5; round++) {
		for (intptr_t i = 0; i < 20000; i++) {
			snprintf(key, sizeof key, "user%ld", (long)i);
			assert_int_equal(strmap_put(m, key, (void *)(i + 1)), 0);
		}
		for (intptr_t i = 0; i < 20000; i += 2) {
			snprintf(key, sizeof key, "user%ld", (long)i);
			assert_ptr_equal(strmap_del(m, key), (void *)(i + 1));
		}
		assert_int_equal(strmap_count(m), 10000);
		for (intptr_t i = 1; i < 20000; i += 2) {
			snprintf(key, sizeof key, "user%ld", (long)i);
			assert_ptr_equal(strmap_get(m, key), (void *)(i + 1));
		}
	}
	strmap_free(m);
}

static void iterate_and_delete(void **state)
{
	struct strmap *m = strmap_new();
	char key[32];
	for (intptr_t i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "k%ld", (long)i);
		strmap_put(m, key, (void *)(i + 1));
	}
	size_t seen = 0;
	const char *k;
	void *v;
	for (size_t it = 0; strmap_next(m, &it, &k, &v);) {
		seen++;
		if (((intptr_t)v) % 2 == 0)
			strmap_del(m, k);
	}
	assert_int_equal(seen, 1000);
	assert_int_equal(strmap_count(m), 500);
	strmap_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(put_get_del),
		cmocka_unit_test(many_with_churn),
		cmocka_unit_test(iterate_and_delete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
