/* srmctl user add|del|passwd|assign|list|show; del and assign are confirmed first. */
#include "ha/srmctl/srmctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 1023

/* PASSWORD "-" reads it from stdin (no echo on a terminal), keeping it out of `ps`. */
static int password_read(char *buf, size_t len)
{
	int tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	if (tty) {
		fprintf(stderr, "Password: ");
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		} else {
			tty = 0;
		}
	}
	char *got = fgets(buf, (int)len, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!got)
		return -1;
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] != '\n' && !feof(stdin))
		return -1; /* longer than the buffer */
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static int user_with_password(const struct srmctl_cmd *cmd, const struct srmctl_env *env,
			      int argc, char **argv)
{
	if (argc != 2)
		return srmctl_usage_error(cmd, "expected a JID and a password");
	char buf[PASSWORD_MAX + 3];
	const char *pw = argv[1];
	if (strcmp(pw, "-") == 0) {
		if (password_read(buf, sizeof buf) < 0) {
			fprintf(stderr, "srmctl: no password on standard input (or longer than %d "
					"bytes)\n",
				PASSWORD_MAX);
			return SRMCTL_USAGE;
		}
		pw = buf;
	}
	if (srmctl_check_field("the JID", argv[0]) < 0 ||
	    srmctl_check_field("the password", pw) < 0)
		return SRMCTL_USAGE;
	if (!*pw) {
		fprintf(stderr, "srmctl: the password must not be empty\n");
		return SRMCTL_USAGE;
	}
	const char *fields[] = {"user", strchr(cmd->name, ' ') + 1, argv[0], pw};
	int rc = srmctl_request(env, fields, 4);
	explicit_bzero(buf, sizeof buf);
	return rc;
}

static int exec_user_add(const struct srmctl_env *env, int argc, char **argv)
{
	return user_with_password(&srmctl_user_cmds[0], env, argc, argv);
}

static int exec_user_passwd(const struct srmctl_env *env, int argc, char **argv)
{
	return user_with_password(&srmctl_user_cmds[2], env, argc, argv);
}

static const char *scope(const struct srmctl_env *env)
{
	return env->local ? " on this node only (--local)" : "";
}

static int exec_user_del(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_user_cmds[1];
	const char *jid = NULL;
	int n = 0;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--yes") != 0 && strcmp(argv[i], "-y") != 0 && n++ == 0)
			jid = argv[i];
	if (n != 1)
		return srmctl_usage_error(cmd, "expected one JID");
	int rc = srmctl_confirm(env, cmd, &argc, argv,
				"Delete the account %s%s, with its contacts and offline messages, "
				"and end its sessions?",
				jid, scope(env));
	if (rc)
		return rc;
	if (srmctl_check_field("the JID", argv[0]) < 0)
		return SRMCTL_USAGE;
	const char *fields[] = {"user", "del", argv[0]};
	return srmctl_request(env, fields, 3);
}

static int exec_user_assign(const struct srmctl_env *env, int argc, char **argv)
{
	const struct srmctl_cmd *cmd = &srmctl_user_cmds[4];
	const char *plain[2];
	int n = 0;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--yes") != 0 && strcmp(argv[i], "-y") != 0 && n++ < 2)
			plain[n - 1] = argv[i];
	if (n != 2)
		return srmctl_usage_error(cmd, "expected a JID and a node");
	if (strcmp(plain[1], "1") != 0 && strcmp(plain[1], "2") != 0 &&
	    strcmp(plain[1], "none") != 0)
		return srmctl_usage_error(cmd, "NODE must be 1, 2 or none");
	int rc = strcmp(plain[1], "none") == 0
			 ? srmctl_confirm(env, cmd, &argc, argv,
					  "Unassign %s%s (it cannot log in until assigned again)?",
					  plain[0], scope(env))
			 : srmctl_confirm(env, cmd, &argc, argv,
					  "Set the home node of %s to node %s%s (open sessions stay "
					  "until the next login)?",
					  plain[0], plain[1], scope(env));
	if (rc)
		return rc;
	if (srmctl_check_field("the JID", argv[0]) < 0)
		return SRMCTL_USAGE;
	const char *fields[] = {"user", "assign", argv[0], argv[1]};
	return srmctl_request(env, fields, 4);
}

static int exec_user_show(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 1)
		return srmctl_usage_error(&srmctl_user_cmds[5], "expected one JID");
	if (srmctl_check_field("the JID", argv[0]) < 0)
		return SRMCTL_USAGE;
	const char *fields[] = {"user", "show", argv[0]};
	return srmctl_request(env, fields, 3);
}

static int exec_user_list(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc != 0)
		return srmctl_usage_error(&srmctl_user_cmds[3], "no arguments expected");
	const char *fields[] = {"user", "list"};
	return srmctl_request(env, fields, 2);
}

/* The exec functions above index this table: keep the order. */
const struct srmctl_cmd srmctl_user_cmds[] = {
	{"user add", "[--local] JID PASSWORD",
	 "create an account (PASSWORD - reads it from stdin)", 0, 1, exec_user_add},
	{"user del", "[--local] JID [--yes]", "delete an account and end its sessions", 0, 1,
	 exec_user_del},
	{"user passwd", "[--local] JID PASSWORD", "change a password (- reads it from stdin)", 0,
	 1, exec_user_passwd},
	{"user list", "[--json]", "list accounts with their home node", 1, 0, exec_user_list},
	{"user assign", "[--local] JID NODE [--yes]", "set the home node (1, 2 or none)", 0, 1,
	 exec_user_assign},
	{"user show", "JID [--json]", "one account: home node, who serves it, contacts", 1, 0,
	 exec_user_show},
	{NULL, NULL, NULL, 0, 0, NULL},
};
