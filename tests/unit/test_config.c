/* The INI reader and the node configuration table (lib/ini.c, lib/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/config.h"
#include "lib/ini.h"

static char path[64];

static int load_text(const char *text, struct duet_config *cfg, char *err, size_t errlen)
{
	snprintf(path, sizeof path, "/tmp/duet-test-config.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void defaults_and_values(void **state)
{
	struct duet_config cfg;
	char err[256];
	assert_int_equal(load_text("# comment\n[node]\nid = 2\ndomain = example.org\n"
				   "run_dir = /tmp/x\n[xmpp]\nidle_timeout = 90s\n"
				   "keepalive = 1500ms\nmax_contacts = 0\nrequire_starttls = off\n",
				   &cfg, err, sizeof err),
			 0);
	assert_int_equal(cfg.node_id, 2);
	assert_string_equal(cfg.domain, "example.org");
	assert_int_equal(cfg.idle_timeout_ms, 90000);
	assert_int_equal(cfg.keepalive_ms, 1500);
	assert_int_equal(cfg.max_contacts, 0);
	assert_int_equal(cfg.require_starttls, 0);
	assert_int_equal(cfg.max_watchers, 200); /* the manual's default */
	assert_string_equal(cfg.control_socket, "/tmp/x/srmd.sock");
}

static void errors_name_the_line(void **state)
{
	struct duet_config cfg;
	char err[256];
	assert_int_equal(load_text("[node]\nid = 3\n", &cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "out of range"));
	assert_int_equal(load_text("[xmpp]\nno_such_key = 1\n", &cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, "unknown setting"));
	assert_int_equal(load_text("[xmpp]\nkeepalive = soon\n", &cfg, err, sizeof err), -1);
	assert_int_equal(load_text("[xmpp\n", &cfg, err, sizeof err), -1);
	assert_int_equal(load_text("[node]\njust a line\n", &cfg, err, sizeof err), -1);
	assert_int_equal(load_text("[xmpp]\nrequire_starttls = maybe\n", &cfg, err, sizeof err), -1);
}

static void durations(void **state)
{
	assert_int_equal(ini_parse_ms("60"), 60000);
	assert_int_equal(ini_parse_ms("250ms"), 250);
	assert_int_equal(ini_parse_ms("30m"), 1800000);
	assert_int_equal(ini_parse_ms("1h"), 3600000);
	assert_int_equal(ini_parse_ms("0.5s"), 500);
	assert_int_equal(ini_parse_ms("-1s"), -1);
	assert_int_equal(ini_parse_ms("5 weeks"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_and_values),
		cmocka_unit_test(errors_name_the_line),
		cmocka_unit_test(durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
