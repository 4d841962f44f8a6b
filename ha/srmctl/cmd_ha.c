/* srmctl failover [NODE], fallback [NODE], recover, ha enable|disable: the operator's moves
 * of the pair, each confirmed first (srmctl_confirm). */
#include "ha/srmctl/srmctl.h"

#include <stdio.h>
#include <string.h>

/* NODE among the arguments (--yes may come before or after it), checked before asking;
 * *node is NULL when none is given. */
static int node_peek(const struct srmctl_cmd *cmd, int argc, char **argv, const char **node)
{
	*node = NULL;
	int n = 0;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--yes") != 0 && strcmp(argv[i], "-y") != 0) {
			*node = argv[i];
			n++;
		}
	if (n > 1)
		return srmctl_usage_error(cmd, "at most one NODE expected");
	if (*node && strcmp(*node, "1") != 0 && strcmp(*node, "2") != 0)
		return srmctl_usage_error(cmd, "NODE must be 1 or 2");
	return 0;
}

/* Command words travel as separate fields ("ha", "enable"), then the NODE if any. */
static int ha_send(const struct srmctl_cmd *cmd, const struct srmctl_env *env, const char *node)
{
	char words[32];
	snprintf(words, sizeof words, "%s", cmd->name);
	const char *fields[3];
	int n = 0;
	char *sp = strchr(words, ' ');
	fields[n++] = words;
	if (sp) {
		*sp = '\0';
		fields[n++] = sp + 1;
	}
	if (node)
		fields[n++] = node;
	return srmctl_request(env, fields, n);
}

static int exec_failover(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_ha_cmds[0];
	const char *node;
	int rc = node_peek(cmd, argc, argv, &node);
	if (rc)
		return rc;
	if (node)
		rc = srmctl_confirm(env, cmd, &argc, argv, "Fail over node %s's users to node %c?",
				    node, node[0] == '1' ? '2' : '1');
	else
		rc = srmctl_confirm(env, cmd, &argc, argv, "%s",
				    "Fail over this node's users to its peer?");
	return rc ? rc : ha_send(cmd, env, node);
}

static int exec_fallback(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_ha_cmds[1];
	const char *node;
	int rc = node_peek(cmd, argc, argv, &node);
	if (rc)
		return rc;
	if (node)
		rc = srmctl_confirm(env, cmd, &argc, argv,
				    "Fall back: node %s takes its users back from node %c?", node,
				    node[0] == '1' ? '2' : '1');
	else
		rc = srmctl_confirm(env, cmd, &argc, argv, "%s",
				    "Fall back: the failed-over node takes its users back?");
	return rc ? rc : ha_send(cmd, env, node);
}

static int exec_plain(const struct srmctl_cmd *cmd, const struct srmctl_env *env, int argc,
		      char **argv, const char *question)
{
	int rc = srmctl_confirm(env, cmd, &argc, argv, "%s", question);
	if (rc)
		return rc;
	if (argc != 0)
		return srmctl_usage_error(cmd, "no arguments expected");
	return ha_send(cmd, env, NULL);
}

static int exec_recover(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_plain(&srmctl_ha_cmds[2], env, argc, argv,
			  "Run Recovery: both nodes leave Running in Failed Mode and restart "
			  "their critical services?");
}

static int exec_ha_enable(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_plain(&srmctl_ha_cmds[3], env, argc, argv,
			  "Enable HA on both nodes (end of maintenance: failures move users "
			  "again)?");
}

static int exec_ha_disable(const struct srmctl_env *env, int argc, char **argv)
{
	return exec_plain(&srmctl_ha_cmds[4], env, argc, argv,
			  "Disable HA on both nodes (maintenance: no failover of any kind until "
			  "`srmctl ha enable`)?");
}

/* The exec functions above index this table: keep the order. */
const struct srmctl_cmd srmctl_ha_cmds[] = {
	{"failover", "[NODE] [--yes]", "move NODE's users (default: this node's) to its peer", 0,
	 0, exec_failover},
	{"fallback", "[NODE] [--yes]", "NODE (default: the failed-over one) takes its users back",
	 0, 0, exec_fallback},
	{"recover", "[--yes]", "Recovery: leave Running in Failed Mode",
	 0, 0, exec_recover},
	{"ha enable", "[--yes]", "end maintenance: the pair decides again", 0, 0, exec_ha_enable},
	{"ha disable", "[--yes]", "maintenance: both nodes freeze in Unknown", 0, 0,
	 exec_ha_disable},
	{NULL, NULL, NULL, 0, 0, NULL},
};
