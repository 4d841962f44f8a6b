/* srmctl main: options, the command tables, usage and `srmctl help [COMMAND]`. */
#include "ha/srmctl/srmctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRMCTL_DEFAULT_SOCKET "/run/duet/srmd.sock"

static const struct srmctl_cmd *const tables[] = {
	srmctl_user_cmds,
	srmctl_status_cmds,
	srmctl_ha_cmds,
	srmctl_profile_cmds,
	srmctl_bulk_cmds,
	srmctl_help_cmds,
};
#define NTABLES (sizeof tables / sizeof tables[0])

#define SYNOPSIS_WIDTH 35

static void exit_codes_print(FILE *f)
{
	fprintf(f, "exit status: 0 ok, 1 srmd reported an error, 2 usage error or not confirmed "
		   "(nothing sent),\n"
		   "  3 srmd unreachable, 4 refused (not possible in this state, or no peer)\n");
}

static void synopsis_print(FILE *f, const struct srmctl_cmd *c)
{
	char synopsis[160];
	snprintf(synopsis, sizeof synopsis, "%s%s%s", c->name, *c->args ? " " : "", c->args);
	if ((int)strlen(synopsis) < SYNOPSIS_WIDTH)
		fprintf(f, "  %-*s %s\n", SYNOPSIS_WIDTH, synopsis, c->help);
	else
		fprintf(f, "  %s\n  %-*s %s\n", synopsis, SYNOPSIS_WIDTH, "", c->help);
}

static void usage_print(FILE *f)
{
	fprintf(f, "usage: srmctl [-s SOCKET] [--json] [--local] [--yes] COMMAND [ARGS...]\n"
		   "  -s SOCKET   srmd's control socket (default $DUET_CTL, else %s)\n"
		   "  --json      JSON instead of text (views)\n"
		   "  --local     user commands on a pair: change this node's database only\n"
		   "  -y, --yes   do not ask before changing the pair or an account (needed "
		   "without a terminal)\n"
		   "commands (`srmctl help COMMAND` for details):\n",
		SRMCTL_DEFAULT_SOCKET);
	for (size_t t = 0; t < NTABLES; t++)
		for (const struct srmctl_cmd *c = tables[t]; c->name; c++)
			synopsis_print(f, c);
	exit_codes_print(f);
}

int srmctl_usage_error(const struct srmctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "srmctl: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: srmctl %s%s%s\n", cmd->name, *cmd->args ? " " : "", cmd->args);
	return SRMCTL_USAGE;
}

void srmctl_commands_each(void (*fn)(const struct srmctl_cmd *cmd, void *arg), void *arg)
{
	for (size_t t = 0; t < NTABLES; t++)
		for (const struct srmctl_cmd *c = tables[t]; c->name; c++)
			fn(c, arg);
}

const struct srmctl_cmd *srmctl_command_find(int argc, char **argv, int *nwords)
{
	const struct srmctl_cmd *best = NULL;
	*nwords = 0;
	for (size_t t = 0; t < NTABLES; t++)
		for (const struct srmctl_cmd *c = tables[t]; c->name; c++) {
			const char *w = c->name;
			int i = 0;
			while (*w && i < argc) {
				size_t n = strcspn(w, " ");
				if (strlen(argv[i]) != n || strncmp(argv[i], w, n) != 0)
					break;
				i++;
				w += n + (w[n] == ' ');
			}
			if (!*w && i > *nwords) {
				best = c;
				*nwords = i;
			}
		}
	return best;
}

struct prefix_match {
	char words[160];
	int found;
};

/* `srmctl help user`: every command whose words start with "user". */
static void prefix_print(const struct srmctl_cmd *c, void *arg)
{
	struct prefix_match *m = arg;
	size_t n = strlen(m->words);
	if (strncmp(c->name, m->words, n) == 0 && (c->name[n] == ' ' || c->name[n] == '\0')) {
		synopsis_print(stdout, c);
		m->found++;
	}
}

static int exec_help(const struct srmctl_env *env, int argc, char **argv)
{
	if (argc == 0) {
		usage_print(stdout);
		return SRMCTL_OK;
	}
	int nwords;
	const struct srmctl_cmd *c = srmctl_command_find(argc, argv, &nwords);
	if (c && nwords == argc) {
		printf("usage: srmctl %s%s%s\n%s.\n", c->name, *c->args ? " " : "", c->args,
		       c->help);
		const char *details = srmctl_help_details(c->name);
		if (details)
			printf("\n%s", details);
		printf("\n");
		exit_codes_print(stdout);
		return SRMCTL_OK;
	}
	struct prefix_match m = {"", 0};
	for (int i = 0; i < argc; i++) {
		size_t used = strlen(m.words);
		snprintf(m.words + used, sizeof m.words - used, "%s%s", i ? " " : "", argv[i]);
	}
	srmctl_commands_each(prefix_print, &m);
	if (m.found)
		return SRMCTL_OK;
	fprintf(stderr, "srmctl: help: no command %s\n", m.words);
	return SRMCTL_USAGE;
}

const struct srmctl_cmd srmctl_help_cmds[] = {
	{"help", "[COMMAND]", "this list, or the details of one command", 0, 0, exec_help},
	{0, 0, 0, 0, 0, 0},
};

static int is_yes(const char *arg) { return !strcmp(arg, "--yes") || !strcmp(arg, "-y"); }

int main(int argc, char **argv)
{
	struct srmctl_env env = {getenv("DUET_CTL"), 0, 0, 0};
	if (!env.socket || !*env.socket)
		env.socket = SRMCTL_DEFAULT_SOCKET;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			env.socket = argv[++i];
		} else if (strncmp(argv[i], "-s", 2) == 0 && argv[i][2]) {
			env.socket = argv[i] + 2;
		} else if (strcmp(argv[i], "--json") == 0) {
			env.json = 1;
		} else if (strcmp(argv[i], "--local") == 0) {
			env.local = 1;
		} else if (is_yes(argv[i])) {
			env.yes = 1;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage_print(stdout);
			return SRMCTL_OK;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else {
			fprintf(stderr, "srmctl: unknown option %s\n", argv[i]);
			usage_print(stderr);
			return SRMCTL_USAGE;
		}
	}
	if (i == argc) {
		usage_print(stderr);
		return SRMCTL_USAGE;
	}
	int nwords;
	const struct srmctl_cmd *cmd = srmctl_command_find(argc - i, argv + i, &nwords);
	if (!cmd) {
		fprintf(stderr, "srmctl: unknown command: %s%s%s\n", argv[i], i + 1 < argc ? " " : "",
			i + 1 < argc ? argv[i + 1] : "");
		usage_print(stderr);
		return SRMCTL_USAGE;
	}
	/* Arguments after the command words; --json among them only for read commands (for
	 * the others it is an argument, e.g. a password). */
	int cargc = 0;
	char **cargv = calloc((size_t)argc + 1, sizeof *cargv);
	if (!cargv) {
		fprintf(stderr, "srmctl: out of memory\n");
		return SRMCTL_UNREACHABLE;
	}
	int k = i + nwords;
	/* --local and --yes right after the command words (before a password that could read
	 * like them); commands that confirm also take --yes at the end. */
	for (; k < argc; k++) {
		if (cmd->local && strcmp(argv[k], "--local") == 0)
			env.local = 1;
		else if (is_yes(argv[k]))
			env.yes = 1;
		else
			break;
	}
	for (; k < argc; k++) {
		if (cmd->json && strcmp(argv[k], "--json") == 0)
			env.json = 1;
		else
			cargv[cargc++] = argv[k];
	}
	int rc;
	if (env.json && !cmd->json)
		rc = srmctl_usage_error(cmd, "--json is not available for this command");
	else if (env.local && !cmd->local)
		rc = srmctl_usage_error(cmd, "--local is not available for this command");
	else
		rc = cmd->exec(&env, cargc, cargv);
	free(cargv);
	return rc;
}
