/* srmctl profile --hardware H --mode M --users N [--json]: the manual's login profile row,
 * computed here from ha/login_profiles.c (no srmd needed).  srmctl profile apply ... [--yes]:
 * srmd sets the row's limits on this node and, on a pair, on the peer.  srmctl profile show
 * [--json]: the limits in effect on both nodes and whether they differ. */
#include "ha/login_profiles.h"
#include "ha/srmctl/srmctl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct profile_args {
	int is_auto;   /* --hardware auto: srmd derives the limits from measured capacity */
	int calibrate; /* --calibrate (auto only) */
	unsigned hardware;
	enum login_mode mode;
	unsigned long users;
	const char *hardware_s, *mode_s, *users_s;
};

static int number_parse(const char *s, unsigned long max, unsigned long *out)
{
	if (!*s || strlen(s) > 10)
		return -1;
	unsigned long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* "--name VALUE" or "--name=VALUE"; returns 1 and sets *val when argv[*i] is that option. */
static int option_take(const char *name, int argc, char **argv, int *i, const char **val)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	*val = *i + 1 < argc ? argv[++*i] : NULL;
	return 1;
}

static int args_parse(const struct srmctl_cmd *cmd, int argc, char **argv,
		      struct profile_args *a)
{
	memset(a, 0, sizeof *a);
	for (int i = 0; i < argc; i++) {
		const char *v = NULL;
		if (option_take("--hardware", argc, argv, &i, &v))
			a->hardware_s = v ? v : "";
		else if (option_take("--mode", argc, argv, &i, &v))
			a->mode_s = v ? v : "";
		else if (option_take("--users", argc, argv, &i, &v))
			a->users_s = v ? v : "";
		else if (strcmp(argv[i], "--calibrate") == 0)
			a->calibrate = 1;
		else
			return srmctl_usage_error(cmd, "unexpected argument %s", argv[i]);
	}
	unsigned long hw = 0;
	a->is_auto = a->hardware_s && strcmp(a->hardware_s, "auto") == 0;
	if (!a->hardware_s || (!a->is_auto && number_parse(a->hardware_s, 100000, &hw) < 0))
		return srmctl_usage_error(cmd,
					  "--hardware 500|1000|2000|5000|15000|auto is required");
	if (a->calibrate && !a->is_auto)
		return srmctl_usage_error(cmd, "--calibrate goes with --hardware auto");
	a->hardware = (unsigned)hw;
	if (!a->mode_s || !(a->mode = login_mode_parse(a->mode_s)))
		return srmctl_usage_error(cmd, "--mode active-active|active-standby is required");
	if (!a->users_s || number_parse(a->users_s, 1000000000UL, &a->users) < 0)
		return srmctl_usage_error(cmd, "--users N (a number) is required");
	return 0;
}

/* Looks the row up; prints the lookup error (exit 2: nothing to show or send). */
static int row_find(const struct profile_args *a, const struct login_profile_table **t,
		    const struct login_profile_row **r)
{
	char why[256];
	if (login_profile_lookup(a->hardware, a->mode, a->users, t, r, why, sizeof why) < 0) {
		fprintf(stderr, "srmctl: profile: %s\n", why);
		return SRMCTL_USAGE;
	}
	return 0;
}

static void row_print(const struct profile_args *a, const struct login_profile_table *t,
		      const struct login_profile_row *r)
{
	printf("table:   %d (%s, %s)\n", t->number, t->hardware_text, login_mode_name(a->mode));
	printf("users:   %lu -> row %u (%s%s; %s)\n", a->users, r->users,
	       r->im_only ? "IM only" : "Full UC", r->is_default ? ", default" : "",
	       a->mode == LOGIN_MODE_ACTIVE_ACTIVE ? "users of the node with the most users"
						   : "users of the whole group");
	printf("lower:   %u\n", r->lower);
	printf("upper:   %u\n", r->upper);
}

static int exec_profile(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_profile_cmds[0];
	struct profile_args a;
	const struct login_profile_table *t;
	const struct login_profile_row *r;
	int rc = args_parse(cmd, argc, argv, &a);
	if (rc)
		return rc;
	if (a.is_auto) { /* measured by this node's engine: srmd answers */
		char users[24];
		snprintf(users, sizeof users, "%lu", a.users);
		const char *fields[] = {"profile", "auto", login_mode_name(a.mode), users,
					"calibrate"};
		return srmctl_request(env, fields, a.calibrate ? 5 : 4);
	}
	if ((rc = row_find(&a, &t, &r)))
		return rc;
	if (env->json)
		printf("{\"table\":%d,\"hardware\":%u,\"mode\":\"%s\",\"users\":%lu,"
		       "\"row_users\":%u,\"group\":\"%s\",\"default\":%s,\"lower\":%u,"
		       "\"upper\":%u}\n",
		       t->number, t->hardware, login_mode_name(a.mode), a.users, r->users,
		       r->im_only ? "IM only" : "Full UC", r->is_default ? "true" : "false",
		       r->lower, r->upper);
	else
		row_print(&a, t, r);
	return SRMCTL_OK;
}

static int exec_profile_apply(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_profile_cmds[1];
	struct profile_args a;
	const struct login_profile_table *t;
	const struct login_profile_row *r;
	/* --yes is taken out first; the row is checked before anything is asked. */
	int yes = 0, n = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
			yes = 1;
		else
			argv[n++] = argv[i];
	}
	argc = n;
	int rc = args_parse(cmd, argc, argv, &a);
	if (rc)
		return rc;
	if (a.calibrate)
		return srmctl_usage_error(cmd, "--calibrate: see `srmctl profile --hardware auto`");
	if (!a.is_auto && (rc = row_find(&a, &t, &r)))
		return rc;
	if (!a.is_auto && !yes && !env->yes && isatty(STDIN_FILENO))
		row_print(&a, t, r);
	if (!yes && (rc = srmctl_confirm(env, cmd, &argc, argv, "Apply these re-login limits%s?",
					 env->local ? " on this node only (--local)"
						    : " (both nodes of a pair)")))
		return rc;
	char hw[16], users[24];
	snprintf(hw, sizeof hw, "%u", a.hardware);
	snprintf(users, sizeof users, "%lu", a.users);
	if (a.is_auto) {
		const char *fields[] = {"profile", "apply-auto", login_mode_name(a.mode), users};
		return srmctl_request(env, fields, 4);
	}
	const char *fields[] = {"profile", "apply", hw, login_mode_name(a.mode), users};
	return srmctl_request(env, fields, 5);
}

static int exec_profile_show(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(&srmctl_profile_cmds[2], "no arguments expected");
	const char *fields[] = {"profile", "show"};
	return srmctl_request(env, fields, 2);
}

/* The exec functions above index this table: keep the order. */
const struct srmctl_cmd srmctl_profile_cmds[] = {
	{"profile", "--hardware H|auto --mode M --users N [--calibrate]",
	 "the manual's re-login limits for a profile (local), or auto: from this node's "
	 "measured login capacity (srmd)", 1, 0, exec_profile},
	{"profile apply", "--hardware H --mode M --users N [--yes]",
	 "set them on this node and its peer", 0, 1, exec_profile_apply},
	{"profile show", "", "re-login limits in effect on both nodes, mismatch", 1, 0,
	 exec_profile_show},
	{NULL, NULL, NULL, 0, 0, NULL},
};
