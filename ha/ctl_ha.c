/* srmctl failover [NODE], fallback [NODE], recover, ha enable|disable: operator commands of
 * the pair, handed to the state machine as op-* events.  The answer says what the state
 * machine did (the node's state after the command) or why it refused; a command aimed at
 * the other node is forwarded by the state machine itself (op-failover / op-fallback
 * messages).  On a single node they are refused: there is no pair to act on. */
#include "ha/pair.h"
#include "ha/srm.h"

#include <stdio.h>
#include <string.h>

static int pair_required(struct ctl_conn *c, struct srm *srm)
{
	if (srm->pair)
		return 0;
	ctl_reply_error(c, "no-peer", "this node has no peer ([peer] is not configured)");
	return -1;
}

static int node_arg(struct ctl_conn *c, int argc, char **argv, int *target)
{
	*target = 0;
	if (argc == 0)
		return 0;
	if (strcmp(argv[0], "1") == 0 || strcmp(argv[0], "2") == 0) {
		*target = argv[0][0] - '0';
		return 0;
	}
	ctl_reply_error(c, "usage", "NODE must be 1 or 2");
	return -1;
}

static void ha_command(struct ctl_conn *c, enum ha_event_type type, int target, const char *what)
{
	struct srm *srm = ctl_conn_ctx(c);
	if (pair_required(c, srm) < 0)
		return;
	char why[300];
	int rc = pair_operator(srm->pair, type, target, why, sizeof why);
	if (rc != HA_OK) {
		ctl_reply_error(c, "refused", "%s: %s", what, why);
		return;
	}
	const struct ha_fsm *f = pair_fsm(srm->pair);
	ctl_body_printf(c, "%s: accepted; node %d is %s (%s)\n", what, f->cfg.node_id,
			ha_state_name(f->state), ha_reason_name(f->reason));
	ctl_reply_ok(c);
}

static void cmd_failover(struct ctl_conn *c, int argc, char **argv)
{
	int target;
	if (node_arg(c, argc, argv, &target) == 0)
		ha_command(c, HA_EV_OP_FAILOVER, target, "failover");
}

static void cmd_fallback(struct ctl_conn *c, int argc, char **argv)
{
	int target;
	if (node_arg(c, argc, argv, &target) == 0)
		ha_command(c, HA_EV_OP_FALLBACK, target, "fallback");
}

static void cmd_recover(struct ctl_conn *c, int argc, char **argv)
{
	ha_command(c, HA_EV_OP_RECOVER, 0, "recover");
}

static void cmd_ha_enable(struct ctl_conn *c, int argc, char **argv)
{
	ha_command(c, HA_EV_OP_HA_ENABLE, 0, "ha enable");
}

static void cmd_ha_disable(struct ctl_conn *c, int argc, char **argv)
{
	ha_command(c, HA_EV_OP_HA_DISABLE, 0, "ha disable");
}

const struct ctl_command ctl_ha_commands[] = {
	{"failover", "[NODE]", 0, 1, 0, 0, cmd_failover},
	{"fallback", "[NODE]", 0, 1, 0, 0, cmd_fallback},
	{"recover", "", 0, 0, 0, 0, cmd_recover},
	{"ha enable", "", 0, 0, 0, 0, cmd_ha_enable},
	{"ha disable", "", 0, 0, 0, 0, cmd_ha_disable},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
