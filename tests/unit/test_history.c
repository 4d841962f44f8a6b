/* ha/history.c: order, wrap-around, truncation of long names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha/history.h"

static void empty(void **state)
{
	static struct history h;
	history_init(&h);
	assert_null(history_get(&h, 0));
	assert_int_equal(h.count, 0);
}

static void order_and_wrap(void **state)
{
	static struct history h;
	history_init(&h);
	char s[16];
	for (int i = 0; i < 3; i++) {
		snprintf(s, sizeof s, "s%d", i);
		history_add(&h, 1000 + i, "old", "r", s, "r");
	}
	assert_int_equal(h.count, 3);
	assert_string_equal(history_get(&h, 0)->new_state, "s0");
	assert_string_equal(history_get(&h, 2)->new_state, "s2");
	assert_null(history_get(&h, 3));

	/* Past the capacity the oldest entries go; the order stays oldest first. */
	for (int i = 3; i < HISTORY_MAX + 10; i++) {
		snprintf(s, sizeof s, "s%d", i);
		history_add(&h, 1000 + i, "old", "r", s, "r");
	}
	assert_int_equal(h.count, HISTORY_MAX);
	assert_int_equal(h.total, HISTORY_MAX + 10);
	assert_string_equal(history_get(&h, 0)->new_state, "s10");
	assert_int_equal(history_get(&h, 0)->time_ms, 1010);
	snprintf(s, sizeof s, "s%d", HISTORY_MAX + 9);
	assert_string_equal(history_get(&h, HISTORY_MAX - 1)->new_state, s);
	assert_null(history_get(&h, HISTORY_MAX));
	for (unsigned i = 1; i < HISTORY_MAX; i++)
		assert_true(history_get(&h, i)->time_ms == history_get(&h, i - 1)->time_ms + 1);
}

static void long_and_null_text(void **state)
{
	static struct history h;
	history_init(&h);
	char big[200];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	history_add(&h, 1, NULL, big, "Failed Over with Critical Services Not Running",
		    "Auto Recover Critical Service Down");
	const struct history_entry *e = history_get(&h, 0);
	assert_string_equal(e->old_state, "");
	assert_int_equal(strlen(e->old_reason), HISTORY_TEXT - 1);
	assert_string_equal(e->new_state, "Failed Over with Critical Services Not Running");
	assert_string_equal(e->new_reason, "Auto Recover Critical Service Down");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty),
		cmocka_unit_test(order_and_wrap),
		cmocka_unit_test(long_and_null_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
