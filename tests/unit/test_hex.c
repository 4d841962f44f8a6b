/* lib/hex.c: round trips and every malformation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/hex.h"

static void round_trip(void **state)
{
	unsigned char in[256], out[256];
	char text[513];
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	hex_encode(in, sizeof in, text);
	assert_int_equal(strlen(text), 512);
	assert_memory_equal(text, "000102", 6);
	assert_int_equal(hex_decode(text, out, sizeof out), 256);
	assert_memory_equal(in, out, sizeof in);
	assert_int_equal(hex_decode("ABcd", out, 2), 2);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(hex_decode("", out, 0), 0);
}

static void malformed(void **state)
{
	unsigned char out[4];
	assert_int_equal(hex_decode("abc", out, sizeof out), -1);        /* odd */
	assert_int_equal(hex_decode("zz", out, sizeof out), -1);         /* not hex */
	assert_int_equal(hex_decode("0011223344", out, sizeof out), -1); /* too long */
	assert_int_equal(hex_decode("0g", out, sizeof out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
