/* Tests for heartbeat/peer_link.c: two real links in one process on loopback, with a CA and
 * node certificates made by the openssl command in a temporary directory.
 *   - they connect (both dial; node 1's connection is the one kept), exchange heartbeats,
 *     state, APP frames (up to the 1 MiB limit) and RTT samples;
 *   - goodbye -> the other reports PEER_DOWN_GOODBYE with the reason, and no timeout after;
 *   - freed without goodbye -> the other reports PEER_DOWN_TIMEOUT within the dead timeout;
 *   - restarted without goodbye -> PEER_DOWN_RESTARTED, then up with the new boot id;
 *   - a certificate from another CA, or naming another node, is rejected (both directions);
 *     a CN-only certificate with the right name is accepted;
 *   - a hand-made TLS client speaking garbage after HELLO -> PEER_DOWN_PROTOCOL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "heartbeat/peer_link.h"
#include "lib/log.h"

#define INTERVAL_MS 50
#define DEAD_MS 500
#define CONNECT_MS 500

static char dir[256];

struct side {
	const char *label;
	struct peer_link *link;
	int ups, downs, heartbeats, apps, reconnects, closed;
	enum peer_down_reason last_down;
	int goodbye_reason;
	uint64_t down_at_ms;
	uint8_t peer_boot[FRAME_BOOT_ID_SIZE];
	struct frame_hello hello;
	struct hb_state last_hb;
	uint16_t app_subtype;
	uint8_t *app_data;
	size_t app_len;
	enum peer_down_reason downs_seen[8];
};

struct world {
	struct event_base *base;
	struct event *tick;
	int port1, port2;
	struct side a, b; /* a is node 1, b is node 2 */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- certificates ---- */

static void run(const char *cmd)
{
	char full[2048];
	snprintf(full, sizeof full, "cd %s && %s >/dev/null 2>&1", dir, cmd);
	if (system(full) != 0)
		fail_msg("command failed: %s", cmd);
}

/* name: file stem; cn; san (NULL = none); ca: which CA signs it. */
static void make_cert(const char *name, const char *cn, const char *san, const char *ca)
{
	char cmd[1024], ext[512];
	FILE *f;

	snprintf(ext, sizeof ext, "%s/%s.ext", dir, name);
	f = fopen(ext, "w");
	assert_non_null(f);
	fprintf(f, "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
		   "extendedKeyUsage=serverAuth,clientAuth\n");
	if (san)
		fprintf(f, "subjectAltName=%s\n", san);
	fclose(f);
	snprintf(cmd, sizeof cmd,
		 "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s.key -out %s.csr -subj /CN=%s && "
		 "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial "
		 "-days 2 -extfile %s.ext -out %s.pem",
		 name, name, cn, name, ca, ca, name, name);
	run(cmd);
}

static void make_ca(const char *name)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s.key -out %s.pem -days 2 -subj /CN=%s "
		 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign",
		 name, name, name);
	run(cmd);
}

static int group_setup(void **state)
{
	const char *base = getenv("DUET_TEST_TMP");
	snprintf(dir, sizeof dir, "%s/peerlinkXXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	make_ca("ca");
	make_ca("otherca");
	make_cert("node1", "node1", "DNS:node1", "ca");
	make_cert("node2", "node2", "DNS:node2,IP:127.0.0.1", "ca");
	make_cert("node2cn", "node2", NULL, "ca");            /* CN only, no SAN */
	make_cert("node3", "node3", "DNS:node3", "ca");       /* right CA, wrong name */
	make_cert("node2x", "node2", "DNS:node2", "otherca"); /* right name, wrong CA */
	make_cert("sanwins", "node2", "DNS:node9", "ca");     /* SAN present: CN ignored */
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- callbacks ---- */

static void on_up(void *arg, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
		  const struct frame_hello *hello)
{
	struct side *s = arg;
	s->ups++;
	memcpy(s->peer_boot, boot_id, FRAME_BOOT_ID_SIZE);
	s->hello = *hello;
}

static void on_down(void *arg, enum peer_down_reason reason, int goodbye_reason)
{
	struct side *s = arg;
	if (s->downs < 8)
		s->downs_seen[s->downs] = reason;
	s->downs++;
	s->last_down = reason;
	s->goodbye_reason = goodbye_reason;
	s->down_at_ms = mono_ms();
}

static void on_heartbeat(void *arg, const struct hb_state *st)
{
	struct side *s = arg;
	s->heartbeats++;
	s->last_hb = *st;
}

static void on_app(void *arg, uint16_t subtype, const uint8_t *payload, size_t len)
{
	struct side *s = arg;
	s->apps++;
	s->app_subtype = subtype;
	free(s->app_data);
	s->app_data = malloc(len ? len : 1);
	assert_non_null(s->app_data);
	memcpy(s->app_data, payload, len);
	s->app_len = len;
}

static void on_reconnect(void *arg)
{
	((struct side *)arg)->reconnects++;
}

static void on_closed(void *arg)
{
	((struct side *)arg)->closed++;
}

static const struct peer_link_callbacks cbs = {on_up, on_down, on_heartbeat,
					       on_app, on_reconnect, on_closed};

/* ---- the world ---- */

static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof *w);
	struct timeval tv = {0, 5000};

	assert_non_null(w);
	w->base = event_base_new();
	assert_non_null(w->base);
	/* Keeps EVLOOP_ONCE from sleeping longer than 5 ms, so conditions are polled. */
	w->tick = event_new(w->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(w->tick, &tv);
	w->port1 = free_port();
	w->port2 = free_port();
	w->a.label = "node1";
	w->b.label = "node2";
	return w;
}

/* Start node `id` (1 or 2) with certificate stem `cert`, expecting the peer to be named
 * `peer_name`. */
static struct peer_link *side_start(struct world *w, int id, const char *cert,
				    const char *peer_name)
{
	struct side *s = id == 1 ? &w->a : &w->b;
	struct peer_link_config cfg = {0};
	char listen[64], peer[64], ca[512], crt[512], key[512];

	snprintf(listen, sizeof listen, "127.0.0.1:%d", id == 1 ? w->port1 : w->port2);
	snprintf(peer, sizeof peer, "127.0.0.1:%d", id == 1 ? w->port2 : w->port1);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(crt, sizeof crt, "%s/%s.pem", dir, cert);
	snprintf(key, sizeof key, "%s/%s.key", dir, cert);
	cfg.node_id = (uint32_t)id;
	cfg.listen = listen;
	cfg.peer_address = peer;
	cfg.peer_name = peer_name;
	cfg.tls_ca = ca;
	cfg.tls_cert = crt;
	cfg.tls_key = key;
	cfg.heartbeat_interval_ms = INTERVAL_MS;
	cfg.dead_timeout_ms = DEAD_MS;
	cfg.connect_timeout_ms = CONNECT_MS;
	s->link = peer_link_new(w->base, &cfg, &cbs, s);
	assert_non_null(s->link);
	return s->link;
}

static void side_reset(struct side *s)
{
	const char *label = s->label;
	free(s->app_data);
	memset(s, 0, sizeof *s);
	s->label = label;
}

static void world_free(struct world *w)
{
	peer_link_free(w->a.link);
	peer_link_free(w->b.link);
	free(w->a.app_data);
	free(w->b.app_data);
	event_free(w->tick);
	event_base_free(w->base);
	free(w);
}

typedef int (*cond_fn)(struct world *w);

/* Run the loop until cond holds or timeout_ms passes; returns whether cond held. */
static int run_until(struct world *w, cond_fn cond, uint64_t timeout_ms)
{
	uint64_t end = mono_ms() + timeout_ms;

	while (!(cond && cond(w))) {
		if (mono_ms() >= end)
			return 0;
		event_base_loop(w->base, EVLOOP_ONCE);
	}
	return 1;
}

static void run_for(struct world *w, uint64_t ms)
{
	run_until(w, NULL, ms);
}

static int both_up_3hb(struct world *w)
{
	return w->a.ups && w->b.ups && w->a.heartbeats >= 3 && w->b.heartbeats >= 3;
}

static struct world *world_pair_up(void)
{
	struct world *w = world_new();
	side_start(w, 1, "node1", "node2");
	side_start(w, 2, "node2", "node1");
	assert_true(run_until(w, both_up_3hb, 3000));
	return w;
}

/* ---- tests ---- */

static int app_both(struct world *w)
{
	return w->a.apps >= 1 && w->b.apps >= 1;
}

static int state_seen(struct world *w)
{
	return w->b.last_hb.state == 9 && w->b.last_hb.reason == 4 &&
	       w->b.last_hb.users_served == 201;
}

static void test_connect_and_exchange(void **state)
{
	struct world *w = world_pair_up();
	struct peer_link_stats sa, sb;
	struct hb_state st = {.state = 9, .reason = 4, .services = 0x5, .users_home = 100,
			      .users_served = 200, .repl_pos = {1, 2, 3, UINT64_MAX}};
	size_t big = FRAME_MAX_PAYLOAD - 2;
	uint8_t *blob = malloc(big);
	uint64_t t0;

	assert_int_equal(w->a.ups, 1);
	assert_int_equal(w->b.ups, 1);
	assert_int_equal(w->a.downs + w->b.downs, 0);
	/* Each saw the other's boot id and node id. */
	assert_memory_equal(w->a.peer_boot, peer_link_boot_id(w->b.link), FRAME_BOOT_ID_SIZE);
	assert_memory_equal(w->b.peer_boot, peer_link_boot_id(w->a.link), FRAME_BOOT_ID_SIZE);
	assert_int_equal(w->a.hello.node_id, 2);
	assert_int_equal(w->b.hello.node_id, 1);
	assert_int_equal(w->a.hello.heartbeat_interval_ms, INTERVAL_MS);

	/* One connection, opened by node 1, and it stays that way. */
	run_for(w, 300);
	peer_link_stats_get(w->a.link, &sa);
	peer_link_stats_get(w->b.link, &sb);
	assert_true(sa.connected && sb.connected);
	assert_int_equal(sa.session_outgoing, 1);
	assert_int_equal(sb.session_outgoing, 0);
	{
		uint64_t sessions_a = sa.sessions, sessions_b = sb.sessions;
		run_for(w, 300);
		peer_link_stats_get(w->a.link, &sa);
		peer_link_stats_get(w->b.link, &sb);
		assert_int_equal(sa.sessions, sessions_a);
		assert_int_equal(sb.sessions, sessions_b);
	}

	/* A state change goes out at once, not a heartbeat interval later. */
	peer_link_stats_get(w->a.link, &sa);
	t0 = sa.heartbeats_tx;
	peer_link_set_local_state(w->a.link, &st);
	peer_link_stats_get(w->a.link, &sa);
	assert_int_equal(sa.heartbeats_tx, t0 + 1);
	/* Counts alone wait for the next periodic heartbeat. */
	st.users_served++;
	peer_link_set_local_state(w->a.link, &st);
	peer_link_stats_get(w->a.link, &sa);
	assert_int_equal(sa.heartbeats_tx, t0 + 1);
	assert_true(run_until(w, state_seen, 1000));
	assert_memory_equal(&w->b.last_hb, &st, sizeof st);

	/* APP both ways: a small one and the largest allowed. */
	assert_non_null(blob);
	for (size_t i = 0; i < big; i++)
		blob[i] = (uint8_t)(i ^ (i >> 8));
	assert_int_equal(peer_link_send_app(w->a.link, 7, "hello", 5), 0);
	assert_int_equal(peer_link_send_app(w->b.link, 0xffff, blob, big), 0);
	assert_true(run_until(w, app_both, 3000));
	assert_int_equal(w->b.app_subtype, 7);
	assert_int_equal(w->b.app_len, 5);
	assert_memory_equal(w->b.app_data, "hello", 5);
	assert_int_equal(w->a.app_subtype, 0xffff);
	assert_int_equal(w->a.app_len, big);
	assert_memory_equal(w->a.app_data, blob, big);
	/* Refused: too big, subtype 0. */
	assert_int_equal(peer_link_send_app(w->a.link, 7, blob, big + 1), -1);
	assert_int_equal(peer_link_send_app(w->a.link, 0, "x", 1), -1);
	free(blob);

	/* RTT statistics from the echoes. */
	peer_link_stats_get(w->a.link, &sa);
	assert_true(sa.rtt_samples >= 2);
	assert_true(sa.rtt_min_us <= sa.rtt_srtt_us && sa.rtt_srtt_us <= sa.rtt_max_us);
	assert_true(sa.rtt_max_us < 1000000);
	assert_true(sa.heartbeats_rx >= 3 && sa.heartbeats_tx >= 3);
	assert_int_equal(sa.app_tx, 1);
	assert_int_equal(sa.app_rx, 1);
	assert_int_equal(sa.protocol_errors + sa.tls_failures, 0);
	assert_true(sa.up);
	print_message("rtt: %u samples, min %u us, srtt %u us, max %u us\n",
		      (unsigned)sa.rtt_samples, sa.rtt_min_us, sa.rtt_srtt_us, sa.rtt_max_us);
	world_free(w);
}

static int b_down_a_closed(struct world *w)
{
	return w->b.downs >= 1 && w->a.closed;
}

static int b_up_twice(struct world *w)
{
	return w->b.ups >= 2;
}

static void test_goodbye(void **state)
{
	struct world *w = world_pair_up();
	uint8_t old_boot[FRAME_BOOT_ID_SIZE];

	memcpy(old_boot, w->b.peer_boot, sizeof old_boot);
	peer_link_goodbye(w->a.link, GOODBYE_RESTART);
	assert_int_equal(w->a.closed, 0); /* never from inside the call */
	assert_int_equal(peer_link_send_app(w->a.link, 1, "x", 1), -1);
	assert_true(run_until(w, b_down_a_closed, 2000));
	assert_int_equal(w->b.downs, 1);
	assert_int_equal(w->b.last_down, PEER_DOWN_GOODBYE);
	assert_int_equal(w->b.goodbye_reason, GOODBYE_RESTART);
	assert_int_equal(w->a.downs, 0); /* saying goodbye is not losing the peer */
	/* No timeout follows the goodbye. */
	run_for(w, DEAD_MS * 2);
	assert_int_equal(w->b.downs, 1);
	assert_int_equal(w->a.closed, 1);

	/* The node comes back as a new process: up again with a new boot id. */
	peer_link_free(w->a.link);
	side_reset(&w->a);
	side_start(w, 1, "node1", "node2");
	assert_true(run_until(w, b_up_twice, 3000));
	assert_memory_not_equal(w->b.peer_boot, old_boot, FRAME_BOOT_ID_SIZE);
	assert_memory_equal(w->b.peer_boot, peer_link_boot_id(w->a.link), FRAME_BOOT_ID_SIZE);
	world_free(w);
}

static int a_down(struct world *w)
{
	return w->a.downs >= 1;
}

static void test_timeout_without_goodbye(void **state)
{
	struct world *w = world_pair_up();
	uint64_t t0, elapsed;

	peer_link_free(w->b.link);
	w->b.link = NULL;
	t0 = mono_ms();
	assert_true(run_until(w, a_down, DEAD_MS * 3));
	elapsed = w->a.down_at_ms - t0;
	print_message("timeout reported %llu ms after the peer vanished\n",
		      (unsigned long long)elapsed);
	assert_int_equal(w->a.last_down, PEER_DOWN_TIMEOUT);
	/* The last frame came at most one interval before the free. */
	assert_true(elapsed + INTERVAL_MS + 20 >= DEAD_MS);
	assert_true(elapsed <= DEAD_MS + 100);
	/* Reported once, and node 1 keeps dialing quietly. */
	run_for(w, DEAD_MS * 2);
	assert_int_equal(w->a.downs, 1);
	world_free(w);
}

static int a_up_twice(struct world *w)
{
	return w->a.ups >= 2;
}

static void test_restart_without_goodbye(void **state)
{
	struct world *w = world_pair_up();
	uint8_t old_boot[FRAME_BOOT_ID_SIZE];

	memcpy(old_boot, w->a.peer_boot, sizeof old_boot);
	peer_link_free(w->b.link);
	side_reset(&w->b);
	side_start(w, 2, "node2", "node1");
	assert_true(run_until(w, a_up_twice, DEAD_MS));
	assert_int_equal(w->a.downs, 1);
	assert_int_equal(w->a.last_down, PEER_DOWN_RESTARTED);
	assert_memory_not_equal(w->a.peer_boot, old_boot, FRAME_BOOT_ID_SIZE);
	/* A reconnect with the same boot id, by contrast, is no event at all. */
	run_for(w, 200);
	assert_int_equal(w->a.ups, 2);
	world_free(w);
}

static int anyone_up(struct world *w)
{
	return w->a.ups || w->b.ups;
}

/* Run a pair where node 2 uses `cert` and expects node 1 under `b_expects`; assert that
 * nobody comes up and that `rejecter` logged TLS failures. */
static void expect_rejected(const char *cert, const char *b_expects, int rejecter)
{
	struct world *w = world_new();
	struct peer_link_stats st;

	side_start(w, 1, "node1", "node2");
	side_start(w, 2, cert, b_expects);
	assert_false(run_until(w, anyone_up, 1200));
	peer_link_stats_get(rejecter == 1 ? w->a.link : w->b.link, &st);
	assert_true(st.tls_failures > 0);
	assert_int_equal(st.sessions, 0);
	peer_link_stats_get(rejecter == 1 ? w->b.link : w->a.link, &st);
	assert_int_equal(st.sessions, 0);
	world_free(w);
}

static void test_reject_other_ca(void **state)
{
	expect_rejected("node2x", "node1", 1);
}

static void test_reject_wrong_name(void **state)
{
	expect_rejected("node3", "node1", 1);
	/* The CN is not consulted when the certificate has DNS names. */
	expect_rejected("sanwins", "node1", 1);
	/* And node 2 checks node 1 the same way. */
	expect_rejected("node2", "node7", 2);
}

static void test_accept_cn_only(void **state)
{
	struct world *w = world_new();

	side_start(w, 1, "node1", "node2");
	side_start(w, 2, "node2cn", "node1");
	assert_true(run_until(w, both_up_3hb, 3000));
	world_free(w);
}

/* ---- a hand-made client that misbehaves after a valid HELLO ---- */

struct rogue {
	struct bufferevent *bev;
	int connected;
	const uint8_t *script;
	size_t script_len;
};

static void rogue_event(struct bufferevent *bev, short what, void *arg)
{
	struct rogue *r = arg;
	if (what & BEV_EVENT_CONNECTED) {
		r->connected = 1;
		bufferevent_write(bev, r->script, r->script_len);
	}
}

static void rogue_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static size_t rogue_hello(uint8_t *buf, size_t cap)
{
	struct frame f = {.h.type = FRAME_HELLO};
	f.u.hello.version_min = 1;
	f.u.hello.version_max = 1;
	f.u.hello.node_id = 2;
	memset(f.u.hello.boot_id, 0x5a, FRAME_BOOT_ID_SIZE);
	f.u.hello.heartbeat_interval_ms = INTERVAL_MS;
	f.u.hello.dead_timeout_ms = DEAD_MS;
	long n = frame_encode(&f, 1, buf, cap);
	assert_true(n > 0);
	return (size_t)n;
}

static struct rogue *rogue_start(struct world *w, const uint8_t *script, size_t len)
{
	struct rogue *r = calloc(1, sizeof *r);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char path[512];
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)w->port1)};
	SSL *ssl;

	assert_non_null(r);
	assert_non_null(ctx);
	snprintf(path, sizeof path, "%s/node2.pem", dir);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, path), 1);
	snprintf(path, sizeof path, "%s/node2.key", dir);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL keeps its own reference */
	r->script = script;
	r->script_len = len;
	r->bev = bufferevent_openssl_socket_new(w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						 BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(r->bev);
	bufferevent_setcb(r->bev, rogue_read, NULL, rogue_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	assert_int_equal(bufferevent_socket_connect(r->bev, (struct sockaddr *)&sa, sizeof sa), 0);
	return r;
}

static void rogue_free(struct rogue *r)
{
	bufferevent_free(r->bev);
	free(r);
}

static int a_down_or_error(struct world *w)
{
	struct peer_link_stats st;
	peer_link_stats_get(w->a.link, &st);
	return w->a.downs >= 1 || (st.protocol_errors >= 1 && !st.connected);
}

static void protocol_case(const uint8_t *tail, size_t tail_len, int hello_first,
			  int expect_up)
{
	struct world *w = world_new();
	uint8_t script[256];
	size_t n = 0;
	struct rogue *r;
	struct peer_link_stats st;

	side_start(w, 1, "node1", "node2");
	if (hello_first)
		n = rogue_hello(script, sizeof script);
	memcpy(script + n, tail, tail_len);
	n += tail_len;
	r = rogue_start(w, script, n);
	assert_true(run_until(w, a_down_or_error, 2000));
	peer_link_stats_get(w->a.link, &st);
	assert_int_equal(st.protocol_errors, 1);
	assert_int_equal(w->a.ups, expect_up);
	if (expect_up) {
		assert_int_equal(w->a.downs, 1);
		assert_int_equal(w->a.last_down, PEER_DOWN_PROTOCOL);
	}
	rogue_free(r);
	world_free(w);
}

static void test_protocol_errors(void **state)
{
	static const uint8_t garbage[16] = "XXXXXXXXXXXXXXXX";
	/* Valid header, APP of 2 MiB: refused from the header alone. */
	static const uint8_t huge[12] = {0x44, 0x55, 0x50, 0x4c, 1, FRAME_APP, 0, 0,
					 0x00, 0x20, 0x00, 0x00};
	uint8_t hello[64];
	size_t n = rogue_hello(hello, sizeof hello);

	protocol_case(garbage, sizeof garbage, 1, 1);
	protocol_case(huge, sizeof huge, 1, 1);
	protocol_case(hello, n, 1, 1); /* a second HELLO */
	/* Something other than HELLO first: never up. */
	{
		struct frame f = {.h.type = FRAME_GOODBYE, .u.bye.reason = 1};
		uint8_t buf[32];
		long m = frame_encode(&f, 1, buf, sizeof buf);
		assert_true(m > 0);
		protocol_case(buf, (size_t)m, 0, 0);
	}
}

/* Configuration errors are refused up front. */
static void test_bad_config(void **state)
{
	struct event_base *base = event_base_new();
	char ca[512], crt[512], key[512];
	struct peer_link_config cfg = {.node_id = 1, .listen = "127.0.0.1:0",
				       .peer_address = "127.0.0.1:1", .peer_name = "node2",
				       .heartbeat_interval_ms = 100, .dead_timeout_ms = 1000,
				       .connect_timeout_ms = 1000};
	struct peer_link *l;

	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(crt, sizeof crt, "%s/node1.pem", dir);
	snprintf(key, sizeof key, "%s/node1.key", dir);
	cfg.tls_ca = ca;
	cfg.tls_cert = crt;
	cfg.tls_key = key;
	l = peer_link_new(base, &cfg, &cbs, NULL);
	assert_non_null(l);
	assert_true(peer_link_listen_port(l) > 0);
	peer_link_free(l);

	struct peer_link_config bad = cfg;
	bad.dead_timeout_ms = 150; /* under two intervals */
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	bad = cfg;
	bad.node_id = 0;
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	bad = cfg;
	bad.peer_address = "no-port";
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	bad = cfg;
	bad.listen = "[::1:5";
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	bad = cfg;
	bad.tls_key = ca; /* not a key */
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	bad = cfg;
	bad.tls_ca = "/nonexistent/ca.pem";
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	bad = cfg;
	bad.peer_name = "";
	assert_null(peer_link_new(base, &bad, &cbs, NULL));
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_and_exchange),
		cmocka_unit_test(test_goodbye),
		cmocka_unit_test(test_timeout_without_goodbye),
		cmocka_unit_test(test_restart_without_goodbye),
		cmocka_unit_test(test_reject_other_ca),
		cmocka_unit_test(test_reject_wrong_name),
		cmocka_unit_test(test_accept_cn_only),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_bad_config),
	};
	signal(SIGPIPE, SIG_IGN); /* as srmd does: peer_link.h requires it */
	log_init("test_peer_link", LOG_LVL_INFO);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
