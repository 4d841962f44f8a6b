/* The manual's ten client login profile tables (inventory-part2 Appendix A.3), typed as data
 * row by row, with the lookup the manual's procedure describes (A.1.7: pick the table by
 * hardware and HA type, round the users up to the next listed row) and a self-check against
 * the derived formula (A.2).  Every printed row fits the formula; the manual's worked
 * examples that do not (Examples 1 and 2, errata 13-14) are not table rows and are not
 * data here. */
#include "ha/login_profiles.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* {expected active users, lower, upper, IM only, (default)} */
/* Table 44 */
static const struct login_profile_row t44[] = {
	{100, 120, 320, 0, 0},
	{250, 120, 620, 0, 1},
	{500, 120, 1120, 1, 0},
};

/* Table 45 */
static const struct login_profile_row t45[] = {
	{100, 120, 253, 0, 0},
	{250, 120, 453, 0, 1},
	{500, 120, 787, 0, 0},
	{750, 120, 1120, 1, 0},
	{1000, 120, 1453, 1, 0},
};

/* Table 46 */
static const struct login_profile_row t46[] = {
	{100, 120, 220, 0, 0},
	{250, 120, 370, 0, 0},
	{500, 120, 620, 0, 1},
	{750, 120, 870, 1, 0},
	{1000, 120, 1120, 1, 0},
};

/* Table 47 */
static const struct login_profile_row t47[] = {
	{100, 120, 187, 0, 0},
	{250, 120, 287, 0, 0},
	{500, 120, 453, 0, 1},
	{750, 120, 620, 0, 0},
	{1000, 120, 787, 0, 0},
	{1250, 120, 953, 1, 0},
	{1500, 120, 1120, 1, 0},
	{1750, 120, 1287, 1, 0},
	{2000, 120, 1453, 1, 0},
};

/* Table 48 */
static const struct login_profile_row t48[] = {
	{100, 120, 220, 0, 0},
	{500, 120, 620, 0, 1},
	{1000, 120, 1120, 0, 0},
};

/* Table 49 */
static const struct login_profile_row t49[] = {
	{100, 120, 187, 0, 0},
	{250, 120, 287, 0, 0},
	{500, 120, 453, 0, 1},
	{750, 120, 620, 0, 0},
	{1000, 120, 787, 0, 0},
	{1250, 120, 953, 0, 0},
	{1500, 120, 1120, 0, 0},
	{1750, 120, 1287, 0, 0},
	{2000, 120, 1453, 0, 0},
};

/* Table 50 */
static const struct login_profile_row t50[] = {
	{100, 120, 170, 0, 0},
	{500, 120, 370, 0, 0},
	{1000, 120, 620, 0, 0},
	{1500, 120, 870, 0, 0},
	{2000, 120, 1120, 0, 0},
	{2500, 120, 1370, 0, 1},
	{3000, 120, 1620, 1, 0},
	{3500, 120, 1870, 1, 0},
	{4000, 120, 2120, 1, 0},
	{4500, 120, 2370, 1, 0},
	{5000, 120, 2620, 1, 0},
	{6000, 120, 3120, 1, 0},
	{6250, 120, 3245, 1, 0},
};

/* Table 51 */
static const struct login_profile_row t51[] = {
	{100, 120, 153, 0, 0},
	{500, 120, 287, 0, 0},
	{1000, 120, 453, 0, 0},
	{1500, 120, 620, 0, 0},
	{2000, 120, 787, 0, 0},
	{2500, 120, 953, 0, 1},
	{3000, 120, 1120, 0, 0},
	{3500, 120, 1287, 0, 0},
	{4000, 120, 1453, 0, 0},
	{4500, 120, 1620, 0, 0},
	{5000, 120, 1787, 0, 0},
	{6000, 120, 2120, 1, 0},
	{7000, 120, 2453, 1, 0},
	{8000, 120, 2787, 1, 0},
	{9000, 120, 3120, 1, 0},
	{10000, 120, 3453, 1, 0},
	{11000, 120, 3787, 1, 0},
	{12000, 120, 4120, 1, 0},
	{12500, 120, 4287, 1, 0},
};

/* Table 52 */
static const struct login_profile_row t52[] = {
	{100, 120, 153, 0, 0},
	{500, 120, 287, 0, 0},
	{1000, 120, 453, 0, 0},
	{1500, 120, 620, 0, 0},
	{2000, 120, 787, 0, 0},
	{2500, 120, 953, 0, 0},
	{3000, 120, 1120, 0, 0},
	{3500, 120, 1287, 0, 0},
	{4000, 120, 1453, 0, 0},
	{4500, 120, 1620, 0, 0},
	{5000, 120, 1787, 0, 1},
	{6000, 120, 2120, 0, 0},
	{7000, 120, 2453, 0, 0},
	{7500, 120, 2620, 0, 0},
	{8000, 120, 2787, 1, 0},
	{9000, 120, 3120, 1, 0},
	{10000, 120, 3453, 1, 0},
	{11000, 120, 3787, 1, 0},
	{12000, 120, 4120, 1, 0},
	{12500, 120, 4287, 1, 0},
};

/* Table 53 */
static const struct login_profile_row t53[] = {
	{100, 120, 140, 0, 0},
	{500, 120, 220, 0, 0},
	{1000, 120, 320, 0, 0},
	{1500, 120, 420, 0, 0},
	{2000, 120, 520, 0, 0},
	{2500, 120, 620, 0, 0},
	{3000, 120, 720, 0, 0},
	{3500, 120, 820, 0, 0},
	{4000, 120, 920, 0, 0},
	{4500, 120, 1020, 0, 0},
	{5000, 120, 1120, 0, 1},
	{6000, 120, 1320, 0, 0},
	{7000, 120, 1520, 0, 0},
	{8000, 120, 1720, 0, 0},
	{9000, 120, 1920, 0, 0},
	{10000, 120, 2120, 0, 0},
	{11000, 120, 2320, 0, 0},
	{12000, 120, 2520, 0, 0},
	{13000, 120, 2720, 0, 0},
	{14000, 120, 2920, 0, 0},
	{15000, 120, 3120, 0, 0},
	{16000, 120, 3320, 1, 0},
	{17000, 120, 3520, 1, 0},
	{18000, 120, 3720, 1, 0},
	{19000, 120, 3920, 1, 0},
	{20000, 120, 4120, 1, 0},
	{21000, 120, 4320, 1, 0},
	{22000, 120, 4520, 1, 0},
	{23000, 120, 4720, 1, 0},
	{24000, 120, 4920, 1, 0},
	{25000, 120, 5120, 1, 0},
};

#define ROWS(a) a, sizeof a / sizeof a[0]
#define AA LOGIN_MODE_ACTIVE_ACTIVE
#define AS LOGIN_MODE_ACTIVE_STANDBY
#define HW500 "500-user Full UC (1 vCPU 700 MHz 2 GB)"
#define HW1000 "1000-user Full UC (1 vCPU 1500 MHz 2 GB)"
#define HW2000 "2000-user Full UC (1 vCPU 1500 MHz 4 GB)"
#define HW5000 "5000-user Full UC (2 vCPU 4 GB)"
#define HW15000 "15000-user Full UC (4 vCPU 8 GB)"

const struct login_profile_table login_profile_tables[] = {
	{44, 500, AA, HW500, 1, 2, ROWS(t44)},       /* k = 0.5 users/s */
	{45, 500, AS, HW500, 3, 4, ROWS(t45)},       /* k = 0.75 */
	{46, 1000, AA, HW1000, 1, 1, ROWS(t46)},     /* k = 1 */
	{47, 1000, AS, HW1000, 3, 2, ROWS(t47)},     /* k = 1.5 */
	{48, 2000, AA, HW2000, 1, 1, ROWS(t48)},     /* k = 1 (only 3 rows printed) */
	{49, 2000, AS, HW2000, 3, 2, ROWS(t49)},     /* k = 1.5 */
	{50, 5000, AA, HW5000, 2, 1, ROWS(t50)},     /* k = 2 */
	{51, 5000, AS, HW5000, 3, 1, ROWS(t51)},     /* k = 3 */
	{52, 15000, AA, HW15000, 3, 1, ROWS(t52)},   /* k = 3 (same as Table 51, erratum 15) */
	{53, 15000, AS, HW15000, 5, 1, ROWS(t53)},   /* k = 5 */
};
const size_t login_profile_ntables = sizeof login_profile_tables / sizeof login_profile_tables[0];

const struct login_profile_table *login_profile_table_find(unsigned hardware,
							   enum login_mode mode)
{
	for (size_t i = 0; i < login_profile_ntables; i++)
		if (login_profile_tables[i].hardware == hardware &&
		    login_profile_tables[i].mode == mode)
			return &login_profile_tables[i];
	return NULL;
}

static int hardware_known(unsigned hardware)
{
	for (size_t i = 0; i < login_profile_ntables; i++)
		if (login_profile_tables[i].hardware == hardware)
			return 1;
	return 0;
}

int login_profile_lookup(unsigned hardware, enum login_mode mode, unsigned long users,
			 const struct login_profile_table **table,
			 const struct login_profile_row **row, char *err, size_t errlen)
{
	*table = NULL;
	*row = NULL;
	if (!hardware_known(hardware)) {
		if (err)
			snprintf(err, errlen, "no hardware profile %u (there are 500, 1000, 2000, "
				 "5000 and 15000)", hardware);
		return LOGIN_PROFILE_EHARDWARE;
	}
	const struct login_profile_table *t = login_profile_table_find(hardware, mode);
	if (!t) {
		if (err)
			snprintf(err, errlen, "unknown mode (active-active or active-standby)");
		return LOGIN_PROFILE_EMODE;
	}
	*table = t;
	for (size_t i = 0; i < t->nrows; i++)
		if (users <= t->rows[i].users) {
			*row = &t->rows[i];
			return LOGIN_PROFILE_OK;
		}
	if (err)
		snprintf(err, errlen, "%lu users is beyond Table %d (%u-user profile, %s), whose "
			 "last row is %u users%s",
			 users, t->number, t->hardware, login_mode_name(mode),
			 t->rows[t->nrows - 1].users,
			 mode == LOGIN_MODE_ACTIVE_ACTIVE
				 ? " on the node with the most users"
				 : " in the whole group");
	return LOGIN_PROFILE_EUSERS;
}

enum login_mode login_mode_parse(const char *s)
{
	if (!strcasecmp(s, "active-active") || !strcasecmp(s, "active/active") ||
	    !strcasecmp(s, "aa"))
		return LOGIN_MODE_ACTIVE_ACTIVE;
	if (!strcasecmp(s, "active-standby") || !strcasecmp(s, "active/standby") ||
	    !strcasecmp(s, "as"))
		return LOGIN_MODE_ACTIVE_STANDBY;
	return 0;
}

const char *login_mode_name(enum login_mode mode)
{
	switch (mode) {
	case LOGIN_MODE_ACTIVE_ACTIVE:
		return "active-active";
	case LOGIN_MODE_ACTIVE_STANDBY:
		return "active-standby";
	}
	return "?";
}

unsigned login_profile_formula_upper(const struct login_profile_table *t, unsigned users)
{
	/* users / k = users * k_den / k_num, rounded half up in integers. */
	unsigned long long num = 2ull * users * t->k_den + t->k_num;
	return 120u + (unsigned)(num / (2ull * t->k_num));
}

int login_profile_check(char *err, size_t errlen)
{
	int bad = 0;
	for (size_t i = 0; i < login_profile_ntables; i++) {
		const struct login_profile_table *t = &login_profile_tables[i];
		for (size_t j = 0; j < t->nrows; j++) {
			const struct login_profile_row *r = &t->rows[j];
			const char *why = NULL;
			if (r->lower != 120)
				why = "lower is not 120";
			else if (j > 0 && r->users <= t->rows[j - 1].users)
				why = "users do not ascend";
			else if (r->upper != login_profile_formula_upper(t, r->users))
				why = "upper does not fit 120 + users / k";
			if (why && bad++ == 0 && err)
				snprintf(err, errlen, "Table %d, %u users: %s", t->number, r->users,
					 why);
		}
	}
	return bad;
}

size_t login_profile_row_count(void)
{
	size_t n = 0;
	for (size_t i = 0; i < login_profile_ntables; i++)
		n += login_profile_tables[i].nrows;
	return n;
}

int login_profile_auto(double cpu_us_per_login, unsigned long users, unsigned lower_s,
		       double *rate, unsigned *upper_s)
{
	if (!(cpu_us_per_login > 0) || cpu_us_per_login > 1e9)
		return -1;
	double k = LOGIN_AUTO_HEADROOM * 1e6 / cpu_us_per_login;
	double span = ceil((double)users / k);
	if (span < 1)
		span = 1;
	if ((double)lower_s + span > 86400)
		return -1;
	*rate = k;
	*upper_s = lower_s + (unsigned)span;
	return 0;
}
