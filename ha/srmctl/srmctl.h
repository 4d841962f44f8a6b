/* srmctl, the operator CLI: a thin client of srmd's control socket
 * (docs/srmctl-protocol.md).  Each command group has its own file with a table of
 * {name, usage, exec} entries in the style of tmux's cmd-*.c and relayctl's parser.c. */
#ifndef DUET_SRMCTL_H
#define DUET_SRMCTL_H

/* Exit codes (docs/srmctl.8 "EXIT STATUS"). */
#define SRMCTL_OK 0
#define SRMCTL_ERROR 1       /* srmd answered "error" (other than the refusals below) */
#define SRMCTL_USAGE 2       /* nothing sent: usage error, or a change not confirmed */
#define SRMCTL_UNREACHABLE 3 /* no srmd on the socket, or it broke the conversation */
#define SRMCTL_REFUSED 4     /* srmd refused: not possible in this state, or no peer */

struct srmctl_env {
	const char *socket;
	int json;
	int local; /* --local: on a pair, change this node only */
	int yes;   /* --yes / -y: changes need no confirmation */
};

/* args: what follows the command words.  Returns the exit code. */
typedef int (*srmctl_exec_fn)(const struct srmctl_env *env, int argc, char **argv);

struct srmctl_cmd {
	const char *name;  /* "user add" */
	const char *args;  /* "JID PASSWORD" */
	const char *help;  /* one line */
	int json;          /* accepts --json */
	int local;         /* accepts --local */
	srmctl_exec_fn exec;
};

extern const struct srmctl_cmd srmctl_user_cmds[];
extern const struct srmctl_cmd srmctl_status_cmds[];
extern const struct srmctl_cmd srmctl_ha_cmds[];
extern const struct srmctl_cmd srmctl_profile_cmds[];
extern const struct srmctl_cmd srmctl_bulk_cmds[]; /* cmd_bulk.c */
extern const struct srmctl_cmd srmctl_help_cmds[];

/* The command whose words start argv (longest match); *nwords gets how many it used. */
const struct srmctl_cmd *srmctl_command_find(int argc, char **argv, int *nwords);
/* Call fn for every command, in the order `srmctl help` lists them. */
void srmctl_commands_each(void (*fn)(const struct srmctl_cmd *cmd, void *arg), void *arg);
/* The long help of a command (help.c), NULL when it has none. */
const char *srmctl_help_details(const char *name);

/* Send the request ("1", --json if asked, then fields), print the body on stdout and an
 * error on stderr.  Returns SRMCTL_OK, SRMCTL_ERROR or SRMCTL_UNREACHABLE. */
int srmctl_request(const struct srmctl_env *env, const char *const *fields, int nfields);
/* A field srmd cannot take (TAB or newline) gets a usage message; returns 0 when fine. */
int srmctl_check_field(const char *what, const char *s);
int srmctl_usage_error(const struct srmctl_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* For commands that change the pair or an account: removes --yes / -y from the arguments,
 * then, unless one was given (here or before the command), asks the question on the
 * terminal ("... [y/N] ").  Returns 0 to go on, or SRMCTL_USAGE after telling why not (no
 * terminal to ask on, or the answer was not yes). */
int srmctl_confirm(const struct srmctl_env *env, const struct srmctl_cmd *cmd, int *argc,
		   char **argv, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
