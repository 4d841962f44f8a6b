/* ha/login_profiles.c login_profile_auto(): the `auto` hardware profile's arithmetic
 * (docs/login-profiles.md "The auto profile"): rate = 0.8 x 1e6 / CPU us per login, upper =
 * lower + ceil(users / rate), at least lower + 1; refusals for nonsense input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ha/login_profiles.h"

static void derives(void **state)
{
	double rate;
	unsigned upper;
	/* 500 us per login: capacity 2000/s, rate 1600/s; 15000 users -> ceil(9.375) = 10 s */
	assert_int_equal(login_profile_auto(500, 15000, 0, &rate, &upper), 0);
	assert_true(rate > 1599.9 && rate < 1600.1);
	assert_int_equal(upper, 10);
	/* the lower limit is kept and the span added to it */
	assert_int_equal(login_profile_auto(500, 15000, 120, &rate, &upper), 0);
	assert_int_equal(upper, 130);
	/* 1000 us: rate 800/s; 1000 users -> ceil(1.25) = 2 s */
	assert_int_equal(login_profile_auto(1000, 1000, 0, &rate, &upper), 0);
	assert_int_equal(upper, 2);
	/* exactly divisible: 800 users at 800/s is 1 s, not 2 */
	assert_int_equal(login_profile_auto(1000, 800, 0, &rate, &upper), 0);
	assert_int_equal(upper, 1);
}

static void at_least_one_second(void **state)
{
	double rate;
	unsigned upper;
	assert_int_equal(login_profile_auto(100, 0, 5, &rate, &upper), 0);
	assert_int_equal(upper, 6);
	assert_int_equal(login_profile_auto(100, 1, 0, &rate, &upper), 0);
	assert_int_equal(upper, 1);
}

static void refuses(void **state)
{
	double rate = -1;
	unsigned upper = 7;
	assert_int_equal(login_profile_auto(0, 100, 0, &rate, &upper), -1);
	assert_int_equal(login_profile_auto(-5, 100, 0, &rate, &upper), -1);
	assert_int_equal(login_profile_auto(NAN, 100, 0, &rate, &upper), -1);
	/* a day at most: 1 s per login (0.8/s) for 100,000 users is 125,000 s */
	assert_int_equal(login_profile_auto(1e6, 100000, 0, &rate, &upper), -1);
	assert_true(rate == -1 && upper == 7); /* untouched on refusal */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(derives),
		cmocka_unit_test(at_least_one_second),
		cmocka_unit_test(refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
