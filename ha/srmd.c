/* srmd, the Server Recovery Manager: supervises the node's presence engine and database and
 * serves operators on the control socket.  Runs in the foreground, logs to stderr. */
#include "ha/srm.h"

#include "lib/config.h"
#include "lib/log.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRMD_DB_START_TIMEOUT_S 30

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: srmd -c CONFIG [-d]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	int debug = 0;
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"debug", no_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:d", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		default:
			usage();
		}
	}
	if (!config_path || optind != argc)
		usage();
	log_init("srmd", debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);

	static struct srm srm; /* large (config paths): not on the stack */
	char err[1024];
	if (config_load(&srm.cfg, config_path, err, sizeof err) < 0)
		fatalx("%s: %s", config_path, err);
	/* A client that vanishes mid-reply must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (srm_db_prepare(&srm.cfg, SRMD_DB_START_TIMEOUT_S, err, sizeof err) < 0)
		fatalx("database: %s", err);

	struct event_base *base = event_base_new();
	if (!base)
		fatalx("event_base_new failed");
	if (srm_start(&srm, base, config_path, err, sizeof err) < 0) {
		srm_free(&srm);
		event_base_free(base);
		fatalx("%s", err);
	}
	event_base_dispatch(base);
	srm_free(&srm);
	event_base_free(base);
	log_info("srmd: exit");
	return 0;
}
