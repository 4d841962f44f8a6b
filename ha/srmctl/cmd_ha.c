/* srmctl failover [NODE], fallback [NODE], recover, ha enable|disable. */
#include "ha/srmctl/srmctl.h"

#include <string.h>

static int node_ok(const struct srmctl_cmd *cmd, int argc, char **argv)
{
	if (argc > 1)
		return srmctl_usage_error(cmd, "at most one NODE expected");
	if (argc == 1 && strcmp(argv[0], "1") != 0 && strcmp(argv[0], "2") != 0)
		return srmctl_usage_error(cmd, "NODE must be 1 or 2");
	return 0;
}

static int exec_with_node(const struct srmctl_cmd *cmd, const struct srmctl_env *env,
			  int argc, char **argv)
{
	int rc = node_ok(cmd, argc, argv);
	if (rc)
		return rc;
	const char *fields[] = {cmd->name, argc ? argv[0] : NULL};
	return srmctl_request(env, fields, argc ? 2 : 1);
}

static int exec_failover(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_with_node(&srmctl_ha_cmds[0], env, argc, argv);
}

static int exec_fallback(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_with_node(&srmctl_ha_cmds[1], env, argc, argv);
}

static int exec_plain(const struct srmctl_cmd *cmd, const struct srmctl_env *env, int argc)
{
	if (argc != 0)
		return srmctl_usage_error(cmd, "no arguments expected");
	/* Command words travel as separate fields ("ha", "enable"). */
	char words[32];
	strncpy(words, cmd->name, sizeof words - 1);
	words[sizeof words - 1] = '\0';
	const char *fields[2];
	int n = 0;
	char *sp = strchr(words, ' ');
	fields[n++] = words;
	if (sp) {
		*sp = '\0';
		fields[n++] = sp + 1;
	}
	return srmctl_request(env, fields, n);
}

static int exec_recover(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_plain(&srmctl_ha_cmds[2], env, argc);
}

static int exec_ha_enable(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_plain(&srmctl_ha_cmds[3], env, argc);
}

static int exec_ha_disable(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_plain(&srmctl_ha_cmds[4], env, argc);
}

/* The exec functions above index this table: keep the order. */
const struct srmctl_cmd srmctl_ha_cmds[] = {
	{"failover", "[NODE]", "move NODE's users (default: this node's) to its peer", 0, 0,
	 exec_failover},
	{"fallback", "[NODE]", "NODE (default: the failed-over one) takes its users back", 0, 0,
	 exec_fallback},
	{"recover", "", "Recovery: leave Running in Failed Mode, restart critical services", 0,
	 0, exec_recover},
	{"ha enable", "", "end maintenance: the pair decides again", 0, 0, exec_ha_enable},
	{"ha disable", "", "maintenance: both nodes freeze in Unknown", 0, 0, exec_ha_disable},
	{NULL, NULL, NULL, 0, 0, NULL},
};
