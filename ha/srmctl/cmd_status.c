/* srmctl status, srmctl digest. */
#include "ha/srmctl/srmctl.h"

static int exec_status(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(&srmctl_status_cmds[0], "no arguments expected");
	const char *fields[] = {"status"};
	return srmctl_request(env, fields, 1);
}

static int exec_digest(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(&srmctl_status_cmds[1], "no arguments expected");
	const char *fields[] = {"digest"};
	return srmctl_request(env, fields, 1);
}

const struct srmctl_cmd srmctl_status_cmds[] = {
	{"status", "[--json]",
	 "node state and reason (both nodes of a pair), engine and database health, sessions, "
	 "replication lag and catch-up",
	 1, 0, exec_status},
	{"digest", "[--json]",
	 "hash of the replicated data per table (equal on both nodes once converged)", 1, 0,
	 exec_digest},
	{0, 0, 0, 0, 0, 0},
};
