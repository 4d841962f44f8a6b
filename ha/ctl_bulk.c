/* The bulk tools' control commands (ctl_bulk.h, docs/srmctl-protocol.md, docs/bulk-tools.md).
 * Commands that take a file read it as the request body. */
#include "ha/ctl_bulk.h"

const struct ctl_command ctl_bulk_commands[] = {
	{"contacts export", "SELECTION CURSOR", 2, 2, 0, 0, ctl_bulk_contacts_export},
	{"contacts import", "(CSV as the request body)", 0, 0, 1, 0, ctl_bulk_contacts_import},
	{"contacts rename", "(CSV as the request body)", 0, 0, 1, 0, ctl_bulk_contacts_rename},
	{"users export", "SELECTION CURSOR", 2, 2, 0, 0, ctl_bulk_users_export},
	{"users import", "[NODE] (export file as the request body)", 0, 1, 1, 0,
	 ctl_bulk_users_import},
	{"users assign", "NODE (users, one a line, as the request body)", 1, 1, 1, 0,
	 ctl_bulk_users_assign},
	{"users check", "", 0, 0, 1, 0, ctl_bulk_users_check},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
