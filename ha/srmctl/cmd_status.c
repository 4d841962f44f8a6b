/* srmctl status [--brief], replication, history [N], digest: the read-only views. */
#include "ha/srmctl/srmctl.h"

#include <stdlib.h>
#include <string.h>

static int exec_status(const struct srmctl_env *env, int argc, char **argv)
{
	int brief = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--brief") == 0 || strcmp(argv[i], "-b") == 0)
			brief = 1;
		else
			return srmctl_usage_error(&srmctl_status_cmds[0], "unexpected argument %s",
						  argv[i]);
	}
	const char *fields[] = {"status", "brief"};
	return srmctl_request(env, fields, brief ? 2 : 1);
}

static int exec_replication(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(&srmctl_status_cmds[1], "no arguments expected");
	const char *fields[] = {"replication"};
	return srmctl_request(env, fields, 1);
}

static int exec_history(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_status_cmds[2];
	if (argc > 1)
		return srmctl_usage_error(cmd, "at most one N expected");
	if (argc == 1) {
		char *end;
		long n = strtol(argv[0], &end, 10);
		if (!*argv[0] || *end || n < 1 || n > 1000000)
			return srmctl_usage_error(cmd, "N must be a positive number");
	}
	const char *fields[] = {"history", argc ? argv[0] : NULL};
	return srmctl_request(env, fields, argc ? 2 : 1);
}

static int exec_digest(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(&srmctl_status_cmds[3], "no arguments expected");
	const char *fields[] = {"digest"};
	return srmctl_request(env, fields, 1);
}

/* The exec functions above index this table: keep the order. */
const struct srmctl_cmd srmctl_status_cmds[] = {
	{"status", "[--brief] [--json]",
	 "state of both nodes (--brief: one row per node)", 1, 0, exec_status},
	{"replication", "[--json]", "replication with the peer: phase, lag, catch-up", 1, 0,
	 exec_replication},
	{"history", "[N] [--json]", "the last N state transitions of this node", 1, 0,
	 exec_history},
	{"digest", "[--json]", "hash of the replicated data per table", 1, 0, exec_digest},
	{0, 0, 0, 0, 0, 0},
};
