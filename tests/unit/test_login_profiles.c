/* ha/login_profiles.c: each of the manual's 117 login profile rows (inventory-part2
 * Appendix A.3, Tables 44-53) is its own test; the expected numbers are typed here
 * independently of the data file.  Then rounding up to the next row, users beyond a table,
 * unknown hardware and modes, the (default) rows, the A.2 formula self-check, and the
 * pair's profile frame decoder (ha/ctl_profile.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha/ctl_profile.h"
#include "ha/login_profiles.h"

#define AA LOGIN_MODE_ACTIVE_ACTIVE
#define AS LOGIN_MODE_ACTIVE_STANDBY

struct expect {
	int table;
	unsigned hardware;
	enum login_mode mode;
	unsigned users, lower, upper;
};

/* Table number, hardware, mode, expected active users, retry lower, retry upper. */
static const struct expect rows[] = {
	{44, 500, AA, 100, 120, 320},
	{44, 500, AA, 250, 120, 620},
	{44, 500, AA, 500, 120, 1120},
	{45, 500, AS, 100, 120, 253},
	{45, 500, AS, 250, 120, 453},
	{45, 500, AS, 500, 120, 787},
	{45, 500, AS, 750, 120, 1120},
	{45, 500, AS, 1000, 120, 1453},
	{46, 1000, AA, 100, 120, 220},
	{46, 1000, AA, 250, 120, 370},
	{46, 1000, AA, 500, 120, 620},
	{46, 1000, AA, 750, 120, 870},
	{46, 1000, AA, 1000, 120, 1120},
	{47, 1000, AS, 100, 120, 187},
	{47, 1000, AS, 250, 120, 287},
	{47, 1000, AS, 500, 120, 453},
	{47, 1000, AS, 750, 120, 620},
	{47, 1000, AS, 1000, 120, 787},
	{47, 1000, AS, 1250, 120, 953},
	{47, 1000, AS, 1500, 120, 1120},
	{47, 1000, AS, 1750, 120, 1287},
	{47, 1000, AS, 2000, 120, 1453},
	{48, 2000, AA, 100, 120, 220},
	{48, 2000, AA, 500, 120, 620},
	{48, 2000, AA, 1000, 120, 1120},
	{49, 2000, AS, 100, 120, 187},
	{49, 2000, AS, 250, 120, 287},
	{49, 2000, AS, 500, 120, 453},
	{49, 2000, AS, 750, 120, 620},
	{49, 2000, AS, 1000, 120, 787},
	{49, 2000, AS, 1250, 120, 953},
	{49, 2000, AS, 1500, 120, 1120},
	{49, 2000, AS, 1750, 120, 1287},
	{49, 2000, AS, 2000, 120, 1453},
	{50, 5000, AA, 100, 120, 170},
	{50, 5000, AA, 500, 120, 370},
	{50, 5000, AA, 1000, 120, 620},
	{50, 5000, AA, 1500, 120, 870},
	{50, 5000, AA, 2000, 120, 1120},
	{50, 5000, AA, 2500, 120, 1370},
	{50, 5000, AA, 3000, 120, 1620},
	{50, 5000, AA, 3500, 120, 1870},
	{50, 5000, AA, 4000, 120, 2120},
	{50, 5000, AA, 4500, 120, 2370},
	{50, 5000, AA, 5000, 120, 2620},
	{50, 5000, AA, 6000, 120, 3120},
	{50, 5000, AA, 6250, 120, 3245},
	{51, 5000, AS, 100, 120, 153},
	{51, 5000, AS, 500, 120, 287},
	{51, 5000, AS, 1000, 120, 453},
	{51, 5000, AS, 1500, 120, 620},
	{51, 5000, AS, 2000, 120, 787},
	{51, 5000, AS, 2500, 120, 953},
	{51, 5000, AS, 3000, 120, 1120},
	{51, 5000, AS, 3500, 120, 1287},
	{51, 5000, AS, 4000, 120, 1453},
	{51, 5000, AS, 4500, 120, 1620},
	{51, 5000, AS, 5000, 120, 1787},
	{51, 5000, AS, 6000, 120, 2120},
	{51, 5000, AS, 7000, 120, 2453},
	{51, 5000, AS, 8000, 120, 2787},
	{51, 5000, AS, 9000, 120, 3120},
	{51, 5000, AS, 10000, 120, 3453},
	{51, 5000, AS, 11000, 120, 3787},
	{51, 5000, AS, 12000, 120, 4120},
	{51, 5000, AS, 12500, 120, 4287},
	{52, 15000, AA, 100, 120, 153},
	{52, 15000, AA, 500, 120, 287},
	{52, 15000, AA, 1000, 120, 453},
	{52, 15000, AA, 1500, 120, 620},
	{52, 15000, AA, 2000, 120, 787},
	{52, 15000, AA, 2500, 120, 953},
	{52, 15000, AA, 3000, 120, 1120},
	{52, 15000, AA, 3500, 120, 1287},
	{52, 15000, AA, 4000, 120, 1453},
	{52, 15000, AA, 4500, 120, 1620},
	{52, 15000, AA, 5000, 120, 1787},
	{52, 15000, AA, 6000, 120, 2120},
	{52, 15000, AA, 7000, 120, 2453},
	{52, 15000, AA, 7500, 120, 2620},
	{52, 15000, AA, 8000, 120, 2787},
	{52, 15000, AA, 9000, 120, 3120},
	{52, 15000, AA, 10000, 120, 3453},
	{52, 15000, AA, 11000, 120, 3787},
	{52, 15000, AA, 12000, 120, 4120},
	{52, 15000, AA, 12500, 120, 4287},
	{53, 15000, AS, 100, 120, 140},
	{53, 15000, AS, 500, 120, 220},
	{53, 15000, AS, 1000, 120, 320},
	{53, 15000, AS, 1500, 120, 420},
	{53, 15000, AS, 2000, 120, 520},
	{53, 15000, AS, 2500, 120, 620},
	{53, 15000, AS, 3000, 120, 720},
	{53, 15000, AS, 3500, 120, 820},
	{53, 15000, AS, 4000, 120, 920},
	{53, 15000, AS, 4500, 120, 1020},
	{53, 15000, AS, 5000, 120, 1120},
	{53, 15000, AS, 6000, 120, 1320},
	{53, 15000, AS, 7000, 120, 1520},
	{53, 15000, AS, 8000, 120, 1720},
	{53, 15000, AS, 9000, 120, 1920},
	{53, 15000, AS, 10000, 120, 2120},
	{53, 15000, AS, 11000, 120, 2320},
	{53, 15000, AS, 12000, 120, 2520},
	{53, 15000, AS, 13000, 120, 2720},
	{53, 15000, AS, 14000, 120, 2920},
	{53, 15000, AS, 15000, 120, 3120},
	{53, 15000, AS, 16000, 120, 3320},
	{53, 15000, AS, 17000, 120, 3520},
	{53, 15000, AS, 18000, 120, 3720},
	{53, 15000, AS, 19000, 120, 3920},
	{53, 15000, AS, 20000, 120, 4120},
	{53, 15000, AS, 21000, 120, 4320},
	{53, 15000, AS, 22000, 120, 4520},
	{53, 15000, AS, 23000, 120, 4720},
	{53, 15000, AS, 24000, 120, 4920},
	{53, 15000, AS, 25000, 120, 5120},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* One row: the exact users value finds exactly this row of this table. */
static void row_exact(void **state)
{
	const struct expect *e = *state;
	const struct login_profile_table *t;
	const struct login_profile_row *r;
	char err[200];
	assert_int_equal(login_profile_lookup(e->hardware, e->mode, e->users, &t, &r, err,
					      sizeof err),
			 LOGIN_PROFILE_OK);
	assert_non_null(t);
	assert_non_null(r);
	assert_int_equal(t->number, e->table);
	assert_int_equal(r->users, e->users);
	assert_int_equal(r->lower, e->lower);
	assert_int_equal(r->upper, e->upper);
	/* And the derived formula agrees with the printed number. */
	assert_int_equal(login_profile_formula_upper(t, e->users), e->upper);
}

static void counts(void **state)
{
	assert_int_equal(NROWS, 117);
	assert_int_equal(login_profile_row_count(), 117);
	assert_int_equal(login_profile_ntables, 10);
	static const struct {
		int table;
		size_t n;
	} per[] = {{44, 3}, {45, 5}, {46, 5}, {47, 9}, {48, 3},
		   {49, 9}, {50, 13}, {51, 19}, {52, 20}, {53, 31}};
	for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
		assert_int_equal(login_profile_tables[i].number, per[i].table);
		assert_int_equal(login_profile_tables[i].nrows, per[i].n);
	}
	/* Every data row is one of the expected rows (no extra row hides in the data). */
	for (size_t i = 0; i < login_profile_ntables; i++) {
		const struct login_profile_table *t = &login_profile_tables[i];
		for (size_t j = 0; j < t->nrows; j++) {
			int found = 0;
			for (size_t k = 0; k < NROWS; k++)
				found += rows[k].table == t->number &&
					 rows[k].users == t->rows[j].users &&
					 rows[k].upper == t->rows[j].upper;
			assert_int_equal(found, 1);
		}
	}
}

static void expect_row(unsigned hw, enum login_mode mode, unsigned long users,
		       unsigned row_users, unsigned upper)
{
	const struct login_profile_table *t;
	const struct login_profile_row *r;
	assert_int_equal(login_profile_lookup(hw, mode, users, &t, &r, NULL, 0),
			 LOGIN_PROFILE_OK);
	assert_int_equal(r->users, row_users);
	assert_int_equal(r->lower, 120);
	assert_int_equal(r->upper, upper);
}

static void rounding_up(void **state)
{
	expect_row(500, AA, 0, 100, 320);
	expect_row(500, AA, 1, 100, 320);
	expect_row(500, AA, 100, 100, 320);
	expect_row(500, AA, 101, 250, 620);
	expect_row(500, AA, 251, 500, 1120);
	expect_row(500, AS, 501, 750, 1120);
	expect_row(1000, AS, 1001, 1250, 953);
	expect_row(2000, AA, 101, 500, 620);    /* Table 48 has no 250 row */
	expect_row(2000, AA, 999, 1000, 1120);
	expect_row(5000, AA, 4700, 5000, 2620); /* Example 2's node, by the table */
	expect_row(5000, AA, 5001, 6000, 3120);
	expect_row(5000, AA, 6001, 6250, 3245);
	expect_row(5000, AS, 12001, 12500, 4287);
	expect_row(15000, AA, 2000, 2000, 787); /* Example 1's node, by the table */
	expect_row(15000, AA, 7001, 7500, 2620);
	expect_row(15000, AA, 7501, 8000, 2787);
	expect_row(15000, AS, 15001, 16000, 3320);
	expect_row(15000, AS, 24999, 25000, 5120);
}

static void expect_error(unsigned hw, enum login_mode mode, unsigned long users, int code,
			 const char *needle)
{
	const struct login_profile_table *t;
	const struct login_profile_row *r = (const void *)1;
	char err[200] = "";
	assert_int_equal(login_profile_lookup(hw, mode, users, &t, &r, err, sizeof err), code);
	assert_null(r);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void out_of_range(void **state)
{
	expect_error(500, AA, 501, LOGIN_PROFILE_EUSERS, "last row is 500 users on the node");
	expect_error(500, AS, 1001, LOGIN_PROFILE_EUSERS, "last row is 1000 users in the whole");
	expect_error(1000, AA, 1001, LOGIN_PROFILE_EUSERS, "Table 46");
	expect_error(2000, AS, 2001, LOGIN_PROFILE_EUSERS, "2000 users");
	expect_error(5000, AA, 6251, LOGIN_PROFILE_EUSERS, "6250 users");
	expect_error(5000, AS, 12501, LOGIN_PROFILE_EUSERS, "12500 users");
	expect_error(15000, AA, 12501, LOGIN_PROFILE_EUSERS, "Table 52");
	expect_error(15000, AS, 25001, LOGIN_PROFILE_EUSERS, "25000 users");
	expect_error(15000, AS, 4000000000ul, LOGIN_PROFILE_EUSERS, "25000 users");
	expect_error(3000, AA, 10, LOGIN_PROFILE_EHARDWARE, "no hardware profile 3000");
	expect_error(0, AS, 10, LOGIN_PROFILE_EHARDWARE, "no hardware profile 0");
	expect_error(500, 0, 10, LOGIN_PROFILE_EMODE, "mode");
	expect_error(500, 3, 10, LOGIN_PROFILE_EMODE, "mode");
}

static void modes(void **state)
{
	assert_int_equal(login_mode_parse("active-active"), AA);
	assert_int_equal(login_mode_parse("Active/Active"), AA);
	assert_int_equal(login_mode_parse("aa"), AA);
	assert_int_equal(login_mode_parse("active-standby"), AS);
	assert_int_equal(login_mode_parse("ACTIVE/STANDBY"), AS);
	assert_int_equal(login_mode_parse("as"), AS);
	assert_int_equal(login_mode_parse("active"), 0);
	assert_int_equal(login_mode_parse(""), 0);
	assert_string_equal(login_mode_name(AA), "active-active");
	assert_string_equal(login_mode_name(AS), "active-standby");
	/* Same hardware, same users, different mode: different tables. */
	expect_row(1000, AA, 500, 500, 620);
	expect_row(1000, AS, 500, 500, 453);
}

static void defaults(void **state)
{
	static const struct {
		int table;
		unsigned users;
	} def[] = {{44, 250}, {45, 250}, {46, 500}, {47, 500}, {48, 500},
		   {49, 500}, {50, 2500}, {51, 2500}, {52, 5000}, {53, 5000}};
	for (size_t i = 0; i < login_profile_ntables; i++) {
		const struct login_profile_table *t = &login_profile_tables[i];
		int n = 0;
		for (size_t j = 0; j < t->nrows; j++)
			if (t->rows[j].is_default) {
				n++;
				assert_int_equal(t->rows[j].users, def[i].users);
			}
		assert_int_equal(t->number, def[i].table);
		assert_int_equal(n, 1);
	}
}

static void formula(void **state)
{
	char err[200] = "";
	if (login_profile_check(err, sizeof err) != 0)
		fail_msg("formula check: %s", err);
	/* Rounding is to nearest: .33 down, .67 up (neither floor nor ceil fits, A.2). */
	const struct login_profile_table *t45 = login_profile_table_find(500, AS);
	assert_non_null(t45);
	assert_int_equal(login_profile_formula_upper(t45, 100), 253);
	assert_int_equal(login_profile_formula_upper(t45, 500), 787);
	/* Exactly .5 rounds up: k = 2, 1 user -> 0.5 s. */
	const struct login_profile_table *t50 = login_profile_table_find(5000, AA);
	assert_non_null(t50);
	assert_int_equal(login_profile_formula_upper(t50, 1), 121);
	assert_int_equal(login_profile_formula_upper(t50, 3), 122);
	assert_null(login_profile_table_find(750, AA));
}

/* The pair's profile frame (ha/ctl_profile.c): a hostile peer gets -1 or -2, never more. */
static void frame(void **state)
{
	struct profile_frame f = {PROFILE_SET, 0x01020304u, 120000, 787000}, g;
	uint8_t buf[PROFILE_FRAME_SIZE + 4];
	assert_int_equal(profile_frame_encode(&f, buf, sizeof buf), PROFILE_FRAME_SIZE);
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), 0);
	assert_int_equal(g.kind, PROFILE_SET);
	assert_int_equal(g.id, 0x01020304u);
	assert_int_equal(g.lower_ms, 120000);
	assert_int_equal(g.upper_ms, 787000);
	assert_int_equal(profile_frame_encode(&f, buf, PROFILE_FRAME_SIZE - 1), -1);
	for (size_t n = 0; n < sizeof buf; n++)
		if (n != PROFILE_FRAME_SIZE)
			assert_int_equal(profile_frame_decode(buf, n, &g), -1);
	buf[1] = 1; /* reserved */
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), -1);
	buf[1] = 0;
	buf[0] = 0;
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), -1);
	buf[0] = PROFILE_SET_REFUSED + 1;
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), -1);
	f.kind = 9;
	assert_int_equal(profile_frame_encode(&f, buf, sizeof buf), -1);
	/* Readable, but out of range: lower above upper, upper above a day. */
	struct profile_frame bad1 = {PROFILE_ANNOUNCE, 0, 5000, 4000};
	struct profile_frame bad2 = {PROFILE_SET, 7, 0, (uint64_t)PROFILE_MAX_MS + 1};
	struct profile_frame bad3 = {PROFILE_SET_OK, 7, 0, UINT64_MAX};
	assert_int_equal(profile_frame_encode(&bad1, buf, sizeof buf), PROFILE_FRAME_SIZE);
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), -2);
	assert_int_equal(profile_frame_encode(&bad2, buf, sizeof buf), PROFILE_FRAME_SIZE);
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), -2);
	assert_int_equal(g.id, 7); /* enough to answer SET_REFUSED */
	assert_int_equal(profile_frame_encode(&bad3, buf, sizeof buf), PROFILE_FRAME_SIZE);
	assert_int_equal(profile_frame_decode(buf, PROFILE_FRAME_SIZE, &g), -2);
}

int main(void)
{
	static struct CMUnitTest tests[NROWS + 7];
	static char names[NROWS][48];
	size_t n = 0;
	for (size_t i = 0; i < NROWS; i++) {
		snprintf(names[i], sizeof names[i], "table%d_%s_users%u", rows[i].table,
			 rows[i].mode == AA ? "aa" : "as", rows[i].users);
		tests[n].name = names[i];
		tests[n].test_func = row_exact;
		tests[n].initial_state = (void *)&rows[i];
		n++;
	}
	const struct CMUnitTest rest[] = {
		cmocka_unit_test(counts),	cmocka_unit_test(rounding_up),
		cmocka_unit_test(out_of_range), cmocka_unit_test(modes),
		cmocka_unit_test(defaults),	cmocka_unit_test(formula),
		cmocka_unit_test(frame),
	};
	for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
		tests[n++] = rest[i];
	return _cmocka_run_group_tests("login_profiles", tests, n, NULL, NULL);
}
