/* srmd, the Server Recovery Manager: supervises the node's presence engine and database and
 * serves operators on the control socket.  Runs in the foreground, logs to stderr (with
 * journald priorities under systemd, lib/log.h) and tells systemd when it is ready
 * (ha/sd_notify.h).  `srmd --check-config FILE` only reads and checks a config file. */
#include "ha/sd_notify.h"
#include "ha/srm.h"

#include "lib/config.h"
#include "lib/log.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRMD_DB_START_TIMEOUT_S 30

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: srmd -c CONFIG [-d]\n"
			"       srmd --check-config CONFIG\n");
	exit(2);
}

/* A file the config names that this user cannot read: worth a warning, not a refusal (the
 * check may run as another user than srmd, and presenced reads the XMPP files). */
static int file_warn(const char *path, const char *section, const char *key, int mode)
{
	if (!path[0] || access(path, mode) == 0)
		return 0;
	printf("warning: [%s] %s: %s: not %s by this user\n", section, key, path,
	       mode == X_OK ? "executable" : "readable");
	return 1;
}

/* srmd --check-config FILE: parse and validate as srmd would at start, print a summary. */
static void __attribute__((noreturn)) config_check(const char *path)
{
	static struct duet_config cfg;
	char err[1024];
	if (config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		exit(1);
	}
	int warnings = file_warn(cfg.tls_cert, "xmpp", "tls_cert", R_OK) +
		       file_warn(cfg.tls_key, "xmpp", "tls_key", R_OK) +
		       file_warn(cfg.peer_tls_ca, "peer", "tls_ca", R_OK) +
		       file_warn(cfg.peer_tls_cert, "peer", "tls_cert", R_OK) +
		       file_warn(cfg.peer_tls_key, "peer", "tls_key", R_OK) +
		       file_warn(cfg.engine_program, "srm", "engine_program", X_OK);
	if (srm_is_pair(&cfg))
		printf("%s: ok: node %ld (%s) of a pair, domain %s, peer at %s, control socket "
		       "%s%s\n",
		       path, cfg.node_id, cfg.node_name, cfg.domain,
		       cfg.peer_address[0] ? cfg.peer_address : "(accepted on [peer] listen)",
		       cfg.control_socket, warnings ? " (see the warnings)" : "");
	else
		printf("%s: ok: single node %ld (%s), domain %s, control socket %s%s\n", path,
		       cfg.node_id, cfg.node_name, cfg.domain, cfg.control_socket,
		       warnings ? " (see the warnings)" : "");
	exit(0);
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	int debug = 0;
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"debug", no_argument, NULL, 'd'},
		{"check-config", required_argument, NULL, 'C'},
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
		case 'C':
			if (optind != argc)
				usage();
			config_check(optarg);
		default:
			usage();
		}
	}
	if (!config_path || optind != argc)
		usage();
	sd_notify_init();
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
	/* The control socket listens: operators (and units ordered after us) can go on. */
	sd_notify_send("READY=1");
	event_base_dispatch(base);
	srm_free(&srm);
	event_base_free(base);
	log_info("srmd: exit");
	return 0;
}
