/* The long help of each command (`srmctl help COMMAND`); docs/srmctl.8 says the same at
 * more length.  A command without an entry here shows its usage and one-line help only. */
#include "ha/srmctl/srmctl.h"

#include <string.h>

struct help_entry {
	const char *name;
	const char *text;
};

static const struct help_entry entries[] = {
	{"status",
	 "This node's state and reason (the manual's names, e.g. Normal, Running in Backup\n"
	 "Mode, Failed Over), since when, the engine and the database, sessions and the\n"
	 "re-login limits; on a pair also the peer link, HA mode, alarms, accounts per home\n"
	 "node, both nodes' state, what each serves and its critical services, and replication\n"
	 "(lag in both directions, catch-up).\n"
	 "--brief: one aligned row per node (NODE, NAME, STATE, REASON, SINCE, SERVES,\n"
	 "SERVICES, SESSIONS; * marks this node), then the peer link, HA, alarms and\n"
	 "replication lag on one line each.  The peer is shown as last heard of when the link\n"
	 "is down (\"(last known)\").\n"
	 "--json: one JSON object (docs/srmctl-protocol.md lists the keys).\n"},
	{"replication",
	 "Replication with the peer (docs/replication-protocol.md): the shipping phase (off,\n"
	 "handshake, incremental, full-resync, stopped), incoming and outgoing lag in entries\n"
	 "and seconds, what was applied, conflicts and resyncs, and the catch-up wait of\n"
	 "Taking Back and start-up.  Refused (exit 4) on a single node.\n"},
	{"history",
	 "The last N (default: all kept, at most 64) changes of this node's state or reason,\n"
	 "oldest first, with their time in UTC.  The first entry after a start of srmd has\n"
	 "FROM \"-\" (srmd started).  Kept in memory only: a restart of srmd begins a new\n"
	 "history; the peer keeps its own (run it there too).\n"},
	{"digest",
	 "Per replicated table the row count and an order-independent md5 of its rows, then\n"
	 "\"all\": equal lines on both nodes mean the databases have converged (compare while\n"
	 "nothing writes).  Reads every replicated row: slow on a big database.\n"},
	{"failover",
	 "Manual failover (the manual's T2/T3): NODE's users move to its peer.  NODE defaults\n"
	 "to this node; given on the other node, the command is forwarded.  The failing-over\n"
	 "node goes Failing Over then Idle (On Admin Request), the peer Taking Over then\n"
	 "Running in Backup Mode; the pair stays in manual-failover mode until a fallback.\n"
	 "Sessions are sent to the peer with see-other-host spread over the re-login window.\n"
	 "Possible when both nodes are Normal; otherwise refused (exit 4) with both states.\n"
	 "Asks for confirmation on a terminal; scripts must pass --yes.\n"},
	{"fallback",
	 "Manual fallback (T4/T9): NODE (default: the failed-over node, Idle or Failed Over)\n"
	 "takes its users back from the node Running in Backup Mode.  The returning node goes\n"
	 "Taking Back and waits until replication has caught up, then both nodes end Normal.\n"
	 "Refused (exit 4) in other states.  Asks for confirmation; scripts pass --yes.\n"},
	{"recover",
	 "Recovery (the manual's button for T14-T16, T19-T21): both nodes leave Running in\n"
	 "Failed Mode and restart their critical services; a node whose services still do not\n"
	 "run goes Failed Over with Critical Services Not Running and its peer takes its\n"
	 "users.  On Failed Over with Critical Services Not Running or Backup Activated it\n"
	 "restarts the critical services.  Refused (exit 4) elsewhere.  Asks for confirmation.\n"},
	{"ha enable",
	 "End of maintenance: both nodes leave Unknown and the state machine decides again\n"
	 "from what each serves.  Asks for confirmation.\n"},
	{"ha disable",
	 "Maintenance: both nodes go Unknown and keep serving what they serve now; no\n"
	 "failover of any kind (not even on a crash) until `srmctl ha enable`.  Persisted:\n"
	 "survives restarts.  Asks for confirmation.\n"},
	{"user add",
	 "Create an account.  JID is local@domain or a bare local; PASSWORD - reads it from\n"
	 "standard input (no echo on a terminal), which keeps it out of ps.  On a pair the\n"
	 "account is written on both nodes (or --local: this node only); its home node follows\n"
	 "[ha] user_assignment_mode.\n"},
	{"user del",
	 "Delete an account with its contacts, offline messages and vCard, and end its\n"
	 "sessions; on a pair on both nodes (or --local).  Asks for confirmation.\n"},
	{"user passwd",
	 "Change a password (fresh salts) and end the account's sessions; on a pair on both\n"
	 "nodes (or --local).\n"},
	{"user assign",
	 "Set the home node of an account: 1, 2 or none (cannot log in).  Open sessions stay\n"
	 "where they are until the next login.  Asks for confirmation.\n"},
	{"user list",
	 "Every account with its home node, one \"JID NODE\" line each, sorted (0 =\n"
	 "unassigned); the form scripts read.\n"},
	{"user show",
	 "One account: its home node, the node that serves it now (its home node, or the peer\n"
	 "when failed over), creation time, contacts, offline messages waiting, last logout.\n"},
	{"profile",
	 "The manual's login profile row (Appendix A) for the hardware, HA mode and users:\n"
	 "the Client Re-Login Lower and Upper Limits to use.  Computed here; needs no srmd.\n"},
	{"profile apply",
	 "Set the row's re-login limits on this node and its peer (or --local: this node),\n"
	 "in memory at once; put them in the config files too so that they survive a restart.\n"
	 "Asks for confirmation.\n"},
	{"profile show", "The re-login limits in effect on both nodes, and whether they differ.\n"},
	{"contacts export",
	 "Contact lists to the manual's CSV (User ID, User Domain, Contact ID, Contact Domain,\n"
	 "Nickname, Group Name; no header).  SELECTION: all (default), unassigned, 1, 2 or one\n"
	 "user.  Written to FILE.tmp, renamed to FILE when complete; FILE - is standard output.\n"
	 "docs/bulk-tools.md.\n"},
	{"contacts import",
	 "Add the contacts of a CSV in that format (an optional header row).  Rows of users this\n"
	 "node does not serve now are skipped (on a pair in Normal run it on both nodes).  Each\n"
	 "skipped row is listed with its line number and the manual's reason, then the job\n"
	 "summary.  Idempotent; logged-in users get the new contacts pushed.  Asks for\n"
	 "confirmation.\n"},
	{"contacts rename",
	 "Rename contact IDs in every contact list (CSV: old ID, new ID; an optional header).\n"
	 "Nicknames, groups and subscriptions stay; accounts are never renamed.  Asks for\n"
	 "confirmation.\n"},
	{"users export",
	 "Accounts with their SCRAM keys, contacts, vCards, offline messages and last activity\n"
	 "to a duet-users JSON-lines file, to move them to another group.  SELECTION:\n"
	 "unassigned (default, the manual's order: unassign first), all, 1, 2 or one user.\n"},
	{"users import",
	 "Create the accounts of a duet-users file, unassigned unless NODE (1, 2, none) is\n"
	 "given.  A re-import changes nothing; an existing account with other keys is skipped\n"
	 "as a duplicate user ID.  Asks for confirmation.\n"},
	{"users assign",
	 "Set the home node of every user in FILE (an export file or one JID a line) to NODE.\n"
	 "Open sessions continue until their next login.  Asks for confirmation.\n"},
	{"users unassign",
	 "Home node none for every user in FILE: they cannot log in on this group.  Asks for\n"
	 "confirmation.\n"},
	{"user unassign", "The same for one user (user assign JID none).  Asks for confirmation.\n"},
	{"users check",
	 "Duplicate user IDs (equal after NFKC and lowercasing) and invalid ones, now; srmd\n"
	 "also runs it every [srm] user_check_interval and logs the DuplicateUserid and\n"
	 "InvalidUserid alarms.\n"},
	{NULL, NULL},
};

const char *srmctl_help_details(const char *name)
{
	for (const struct help_entry *e = entries; e->name; e++)
		if (strcmp(e->name, name) == 0)
			return e->text;
	return NULL;
}
