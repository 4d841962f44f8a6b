/* Confirmation of commands that change the pair or an account, as pcs and crm ask before a
 * move: a question on the terminal, or --yes.  Without a terminal and without --yes the
 * command is refused, so that a script never changes the pair by accident and never hangs
 * on a prompt. */
#include "ha/srmctl/srmctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Drops --yes and -y from argv; 1 if there was one. */
static int yes_take(int *argc, char **argv)
{
	int found = 0, n = 0;
	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
			found = 1;
		else
			argv[n++] = argv[i];
	}
	*argc = n;
	return found;
}

int srmctl_confirm(const struct srmctl_env *env, const struct srmctl_cmd *cmd, int *argc,
		   char **argv, const char *fmt, ...)
{
	if (yes_take(argc, argv) || env->yes)
		return 0;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "srmctl: %s changes the %s and needs a confirmation: add --yes "
				"(standard input is not a terminal to ask on)\n",
			cmd->name, strncmp(cmd->name, "user", 4) == 0 ? "accounts" : "pair");
		return SRMCTL_USAGE;
	}
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " [y/N] ");
	fflush(stderr);
	char line[32] = "";
	if (fgets(line, sizeof line, stdin) &&
	    (strcmp(line, "y\n") == 0 || strcmp(line, "Y\n") == 0 || strcmp(line, "yes\n") == 0 ||
	     strcmp(line, "YES\n") == 0 || strcmp(line, "Yes\n") == 0))
		return 0;
	if (!strchr(line, '\n'))
		fprintf(stderr, "\n");
	fprintf(stderr, "srmctl: %s: not confirmed, nothing done\n", cmd->name);
	return SRMCTL_USAGE;
}
