/* The manual's high-availability client login profiles (inventory-part2 Appendix A, Tables
 * 44-53): per IM&P hardware profile and HA deployment type, the Client Re-Login Lower and
 * Upper Limits (seconds) for an expected number of active users.  Pure data and lookup; no
 * I/O.  docs/login-profiles.md. */
#ifndef DUET_LOGIN_PROFILES_H
#define DUET_LOGIN_PROFILES_H

#include <stddef.h>

enum login_mode {
	LOGIN_MODE_ACTIVE_ACTIVE = 1,  /* users = the node with the most users */
	LOGIN_MODE_ACTIVE_STANDBY = 2, /* users = every user of the group */
};

struct login_profile_row {
	unsigned users;      /* expected active users (the table's row key) */
	unsigned lower;      /* Client Re-Login Lower Limit, seconds, as printed */
	unsigned upper;      /* Client Re-Login Upper Limit, seconds, as printed */
	unsigned char im_only; /* the manual's "IM only" group (else "Full UC") */
	unsigned char is_default; /* marked "(default)" in the manual */
};

struct login_profile_table {
	int number;                /* the manual's table number, 44..53 */
	unsigned hardware;         /* the profile's user count: 500, 1000, 2000, 5000, 15000 */
	enum login_mode mode;
	const char *hardware_text; /* "500-user Full UC (1 vCPU 700 MHz 2 GB)" */
	/* Re-login rate k = k_num / k_den users per second: upper = lower + round(users / k)
	 * (inventory A.2). */
	unsigned k_num, k_den;
	const struct login_profile_row *rows; /* ascending users */
	size_t nrows;
};

/* The ten tables, in the manual's order. */
extern const struct login_profile_table login_profile_tables[];
extern const size_t login_profile_ntables;

/* Lookup results. */
#define LOGIN_PROFILE_OK 0
#define LOGIN_PROFILE_EHARDWARE (-1) /* no such hardware profile */
#define LOGIN_PROFILE_EMODE (-2)     /* no such mode */
#define LOGIN_PROFILE_EUSERS (-3)    /* more users than the table's last row */

/* The table for hardware and mode, or NULL. */
const struct login_profile_table *login_profile_table_find(unsigned hardware,
							   enum login_mode mode);
/* The row for users, rounded UP to the next listed row (the manual's procedure, A.1.7).
 * On error *row is NULL and err (if given) says why, naming the table's maximum. */
int login_profile_lookup(unsigned hardware, enum login_mode mode, unsigned long users,
			 const struct login_profile_table **table,
			 const struct login_profile_row **row, char *err, size_t errlen);

/* "active-active" / "active-standby" (also "aa", "as", "active/active", "active/standby");
 * 0 when unknown. */
enum login_mode login_mode_parse(const char *s);
const char *login_mode_name(enum login_mode mode);

/* upper per the A.2 formula for lower 120: 120 + round_half_up(users * k_den / k_num). */
unsigned login_profile_formula_upper(const struct login_profile_table *t, unsigned users);
/* Checks every row: lower is 120, users ascend, upper fits the formula.  Returns the number
 * of rows that do not fit (err describes the first); 0 for the manual's tables. */
int login_profile_check(char *err, size_t errlen);
/* Rows in all tables (117). */
size_t login_profile_row_count(void);

/* The `auto` hardware profile (docs/login-profiles.md): from the engine's CPU time per
 * login, the rate k = LOGIN_AUTO_HEADROOM * 1e6 / cpu_us logins per second (one engine is
 * one thread: one core), and upper = lower + ceil(users / k) seconds, at least lower + 1.
 * 0, or -1 when cpu_us is not a positive number or the result exceeds a day. */
#define LOGIN_AUTO_HEADROOM 0.8
int login_profile_auto(double cpu_us_per_login, unsigned long users, unsigned lower_s,
		       double *rate, unsigned *upper_s);

#endif
