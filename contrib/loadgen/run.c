/* duet-loadgen main: options, arrivals at a fixed rate, the phases of each mode, stop. */
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "contrib/loadgen/creds.h"
#include "contrib/loadgen/fastcert.h"
#include "contrib/loadgen/failover.h"
#include "contrib/loadgen/loadgen.h"
#include "contrib/loadgen/sasl.h"

static struct lg G;
static struct event *arrive_ev, *tick_ev, *hard_ev, *sig_term, *sig_int, *sig_mark, *sig_end;
static int total_conns; /* messages/idle: connections to open */
static uint64_t login_phase_end; /* messages/idle: give up waiting for logins */
static uint64_t last_progress;
static int finished;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: duet-loadgen [options]\n"
		"       duet-loadgen --print-creds PASSWORD [--salt TEXT] [--iterations N]\n"
		"  --host H             server address (127.0.0.1)\n"
		"  --port P             client port (5222)\n"
		"  --domain D           XMPP domain (localhost)\n"
		"  --users N            users PREFIX1..PREFIXN exist on the server (1000)\n"
		"  --user-prefix S      (bench)\n"
		"  --password S         the same password for every user (bench)\n"
		"  --connect-rate R     arrivals per second (100)\n"
		"  --concurrency C      logins in progress at once (%d)\n"
		"  --duration S         seconds of arrivals / message exchange / holding (10)\n"
		"  --grace S            extra seconds before the hard stop (15)\n"
		"  --login-timeout S    a login slower than this fails (30)\n"
		"  --mode login|messages|idle|failover\n"
		"  --pairs P            message mode: users 2i-1 and 2i exchange messages (100)\n"
		"  --inflight K         message mode: messages in flight per pair (4)\n"
		"  --mech auto|sha1|sha256   SCRAM variant (auto: SHA-256 when offered)\n"
		"  --json               one JSON object on stdout\n"
		"failover mode (clients that follow the pair; SIGUSR1 marks the fault, SIGUSR2\n"
		"  ends the run: sending stops, in-flight messages drain, the report follows):\n"
		"  --first-user K       users PREFIXK..PREFIX(K+N-1) (1)\n"
		"  --alt-host H --alt-port P   the other node, tried when this one fails\n"
		"  --msg-interval S     seconds between one client's messages (5)\n"
		"  --timeline-ms MS     timeline bucket (1000)\n"
		"  --after-mark S       run at most this long after the fault (60)\n"
		"  --settle S           end this long after every client is back (2)\n"
		"  --expect-moved N     ... and at least N lost their session (a planned move\n"
		"                       that ends sessions over time: not done before)\n"
		"  --backoff-min S --backoff-max S   reconnect backoff (0.25, 4)\n"
		"  (--duration: without a mark, chat this long after all are up)\n"
		"  --quiet              no progress lines on stderr\n"
		"Refuses more than %d connections.\n",
		LG_MAX_CONNECTIONS, LG_MAX_CONNECTIONS);
}

static double arg_num(const char *name, const char *v, double lo, double hi)
{
	char *end;
	double d = strtod(v, &end);
	if (*v == 0 || *end || !isfinite(d) || d < lo || d > hi) {
		fprintf(stderr, "duet-loadgen: --%s must be a number in [%g, %g]\n", name, lo, hi);
		exit(2);
	}
	return d;
}

static void run_finish(void)
{
	if (finished)
		return;
	finished = 1;
	G.stopping = 1;
	G.measuring = 0;
	event_base_loopbreak(G.base);
}

void run_login_done(struct lg *lg, struct client *c, uint64_t lat_ns)
{
	uint64_t now = lg_now_ns();
	lg->logins_ok++;
	if (!lg->first_ok_ns)
		lg->first_ok_ns = now;
	lg->last_ok_ns = now;
	hist_add(&lg->login_lat, lat_ns / 1000);
	lg->online++;
	(void)c;
}

void run_client_gone(struct lg *lg, struct client *c, int user, int was_online)
{
	if (was_online)
		lg->online--;
	if (lg->clients && user >= 1 && user <= lg->nclients && lg->clients[user - 1] == c)
		lg->clients[user - 1] = NULL;
}

static void start_one(uint64_t sched)
{
	int user;
	if (G.cfg.mode == LG_FAILOVER) {
		fo_start(&G, G.cfg.first_user + (int)G.launched, sched);
		G.launched++;
		return;
	}
	if (G.cfg.mode == LG_LOGIN)
		user = (int)(G.launched % (uint64_t)G.cfg.users) + 1;
	else
		user = (int)G.launched + 1;
	G.launched++;
	struct client *c = client_start(&G, user, sched);
	if (c && G.clients) {
		G.clients[user - 1] = c;
		if (G.cfg.mode == LG_MESSAGES)
			client_set_partner(c, user % 2 ? user + 1 : user - 1);
	}
}

/* Start the connections due by now, then sleep until the next one is due: a timer every
 * millisecond woke the process three times per login at 300 logins/s for nothing.  While
 * the concurrency or connection limit holds arrivals back, look again every millisecond. */
static void on_arrive(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = lg_now_ns();
	double el = (double)(now - G.t0) / 1e9;
	uint64_t due = (uint64_t)(el * G.cfg.rate) + 1;
	uint64_t cap = G.cfg.mode == LG_LOGIN ? (uint64_t)ceil(G.cfg.duration * G.cfg.rate)
					      : (uint64_t)total_conns;
	int held = 0;

	if (due > cap)
		due = cap;
	while (G.launched < due) {
		if (G.in_login >= G.cfg.concurrency || G.open_conns >= LG_MAX_CONNECTIONS) {
			held = 1;
			break;
		}
		/* latency counts from when the login was due, so queueing here shows */
		uint64_t sched = G.t0 + (uint64_t)((double)G.launched / G.cfg.rate * 1e9);
		start_one(sched);
	}
	if (G.launched >= cap)
		return; /* every arrival made */
	uint64_t next = G.t0 + (uint64_t)ceil((double)G.launched / G.cfg.rate * 1e9);
	uint64_t wait = held ? 1000000u : next > now ? next - now : 0;
	struct timeval tv = {(time_t)(wait / 1000000000u),
			     (suseconds_t)((wait % 1000000000u + 999) / 1000)};
	/* libevent adds tv to the time it read when this loop round began: without a fresh
	 * one the timer fires early, finds nothing due and waits another millisecond. */
	event_base_update_cache_time(G.base);
	evtimer_add(arrive_ev, &tv);
}

static void start_messages(uint64_t now)
{
	G.measuring = 1;
	G.win_start = now;
	G.win_end = now + (uint64_t)(G.cfg.duration * 1e9);
	int pairs = 0;
	for (int i = 0; i + 1 < G.nclients; i += 2) {
		struct client *a = G.clients[i], *b = G.clients[i + 1];
		if (!a || !b || !client_is_online(a) || !client_is_online(b))
			continue;
		pairs++;
		for (int k = 0; k < G.cfg.inflight; k++)
			client_send_message(a);
	}
	fprintf(stderr, "duet-loadgen: %d pairs online, exchanging messages for %g s\n", pairs,
		G.cfg.duration);
	if (pairs == 0)
		run_finish();
}

static void progress(uint64_t now)
{
	if (G.cfg.quiet || now - last_progress < 1000000000u)
		return;
	last_progress = now;
	fprintf(stderr,
		"duet-loadgen: t=%.0fs launched=%llu logging-in=%d online=%d ok=%llu failed=%llu "
		"msgs=%llu\n",
		(double)(now - G.t0) / 1e9, (unsigned long long)G.launched, G.in_login, G.online,
		(unsigned long long)G.logins_ok, (unsigned long long)G.fail.total,
		(unsigned long long)G.msgs_recv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = lg_now_ns();
	client_sweep_timeouts(&G, now);
	progress(now);

	switch (G.cfg.mode) {
	case LG_LOGIN:
		if (now - G.t0 >= (uint64_t)(G.cfg.duration * 1e9) && G.in_login == 0 &&
		    G.launched >= (uint64_t)ceil(G.cfg.duration * G.cfg.rate))
			run_finish();
		break;
	case LG_MESSAGES:
		if (!G.measuring && !G.stopping) {
			int settled = G.launched == (uint64_t)total_conns && G.in_login == 0;
			if (settled || now > login_phase_end)
				start_messages(now);
		} else if (G.measuring && now >= G.win_end) {
			run_finish();
		}
		break;
	case LG_FAILOVER:
	case LG_IDLE:
		/* failover: every client online (a throttled login comes back later) */
		if (!G.all_up_reported && G.launched == (uint64_t)total_conns && G.in_login == 0 &&
		    (G.cfg.mode != LG_FAILOVER || G.online == total_conns)) {
			G.all_up_reported = 1;
			G.all_up_ns = now;
			fprintf(stderr,
				"duet-loadgen: all up: %d connections online, %llu failed, after %.1f s\n",
				G.online, (unsigned long long)G.fail.total,
				(double)(now - G.t0) / 1e9);
			fflush(stderr);
		}
		if (G.cfg.mode == LG_FAILOVER) {
			if (fo_tick(&G, now))
				run_finish();
		} else if (now - G.t0 >= (uint64_t)(G.cfg.duration * 1e9)) {
			run_finish();
		}
		break;
	}
}

static void on_hard_stop(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "duet-loadgen: hard time limit reached, stopping\n");
	failures_add(&G.fail, "hard-stop");
	run_finish();
}

static void on_mark(evutil_socket_t sig, short what, void *arg)
{
	if (G.cfg.mode == LG_FAILOVER)
		fo_mark(&G, lg_now_ns());
}

static void on_end(evutil_socket_t sig, short what, void *arg)
{
	if (G.cfg.mode == LG_FAILOVER)
		fo_end(&G, lg_now_ns());
	else
		run_finish();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	fprintf(stderr, "duet-loadgen: signal %d, stopping\n", (int)sig);
	run_finish();
}

static void resolve_into(const char *host, int port, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	int e = getaddrinfo(host, ps, &hints, &res);
	if (e) {
		fprintf(stderr, "duet-loadgen: %s: %s\n", host, gai_strerror(e));
		exit(2);
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
}

/* With SSL_VERIFY_NONE libssl still walks the server's chain (X509_verify_cert: about 46 k
 * instructions per login for a self-signed certificate, which fails the walk) and then
 * ignores the outcome.  The walk is skipped; the server's CertificateVerify signature, its
 * proof of holding the key, is checked by libssl as before. */
static int chain_unchecked(X509_STORE_CTX *x, void *arg)
{
	(void)x, (void)arg;
	return 1;
}

static SSL_CTX *tls_ctx_new(void)
{
	/* LOADGEN_FASTCERT=0 measures the load generator without it (docs/benchmarks.md). */
	const char *fc = getenv("LOADGEN_FASTCERT");
	if ((!fc || strcmp(fc, "0") != 0) && fastcert_enable() < 0)
		fprintf(stderr, "duet-loadgen: legacy EC key decoding refused, running without\n");
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* Bench servers use a throw-away self-signed certificate: no verification. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, chain_unchecked, NULL);
	/* Connections held open give their record buffers back between records (memory per
	 * idle connection); a login's short connection keeps them rather than allocating
	 * 17 KiB again for every record.  Writes go to client.c's wire BIO, which takes them
	 * whole. */
	if (G.cfg.mode != LG_LOGIN)
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Every login is a full handshake, as a fresh client's would be. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* Read whole socket buffers, not a record header and then its body: half the reads. */
	SSL_CTX_set_read_ahead(ctx, 1);
	return ctx;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{"host", 1, 0, 'h'},	    {"port", 1, 0, 'p'},      {"domain", 1, 0, 'd'},
		{"users", 1, 0, 'u'},	    {"user-prefix", 1, 0, 'U'}, {"password", 1, 0, 'w'},
		{"connect-rate", 1, 0, 'r'}, {"concurrency", 1, 0, 'c'}, {"duration", 1, 0, 't'},
		{"grace", 1, 0, 'g'},	    {"login-timeout", 1, 0, 'T'}, {"mode", 1, 0, 'm'},
		{"pairs", 1, 0, 'P'},	    {"inflight", 1, 0, 'k'},  {"mech", 1, 0, 'M'},
		{"json", 0, 0, 'j'},	    {"quiet", 0, 0, 'q'},     {"print-creds", 1, 0, 'C'},
		{"salt", 1, 0, 'S'},	    {"iterations", 1, 0, 'I'}, {"help", 0, 0, 'H'},
		{"first-user", 1, 0, 'F'},  {"alt-host", 1, 0, 'a'},  {"alt-port", 1, 0, 'A'},
		{"msg-interval", 1, 0, 'i'}, {"timeline-ms", 1, 0, 'L'},
		{"after-mark", 1, 0, 'K'},  {"settle", 1, 0, 's'},    {"backoff-min", 1, 0, 'b'},
		{"backoff-max", 1, 0, 'B'}, {"expect-moved", 1, 0, 'E'},
		{0, 0, 0, 0}};
	struct lg_config *c = &G.cfg;
	const char *creds_pw = NULL, *salt = NULL;
	unsigned iterations = 4096;
	int o;

	*c = (struct lg_config){.host = "127.0.0.1", .port = 5222, .domain = "localhost",
				.users = 1000, .prefix = "bench", .password = "bench",
				.rate = 100, .concurrency = LG_MAX_CONNECTIONS, .duration = 10,
				.grace = 15, .login_timeout = 30, .mode = LG_LOGIN, .pairs = 100,
				.inflight = 4, .mech = LG_MECH_AUTO, .first_user = 1,
				.msg_interval = 5, .timeline_ms = 1000, .after_mark = 60,
				.settle = 2, .backoff_min = 0.25, .backoff_max = 4};
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h': c->host = optarg; break;
		case 'p': c->port = (int)arg_num("port", optarg, 1, 65535); break;
		case 'd': c->domain = optarg; break;
		case 'u': c->users = (int)arg_num("users", optarg, 1, 100000000); break;
		case 'U': c->prefix = optarg; break;
		case 'w': c->password = optarg; break;
		case 'r': c->rate = arg_num("connect-rate", optarg, 0.1, 1e6); break;
		case 'c': c->concurrency = (int)arg_num("concurrency", optarg, 1, 1e9); break;
		case 't': c->duration = arg_num("duration", optarg, 0.1, 86400); break;
		case 'g': c->grace = arg_num("grace", optarg, 0, 3600); break;
		case 'T': c->login_timeout = arg_num("login-timeout", optarg, 0.1, 3600); break;
		case 'P': c->pairs = (int)arg_num("pairs", optarg, 1, LG_MAX_CONNECTIONS / 2); break;
		case 'k': c->inflight = (int)arg_num("inflight", optarg, 1, 1000); break;
		case 'j': c->json = 1; break;
		case 'q': c->quiet = 1; break;
		case 'C': creds_pw = optarg; break;
		case 'S': salt = optarg; break;
		case 'I': iterations = (unsigned)arg_num("iterations", optarg, 1, 10000000); break;
		case 'F': c->first_user = (int)arg_num("first-user", optarg, 1, 100000000); break;
		case 'a': c->alt_host = optarg; break;
		case 'A': c->alt_port = (int)arg_num("alt-port", optarg, 1, 65535); break;
		case 'i': c->msg_interval = arg_num("msg-interval", optarg, 0.01, 3600); break;
		case 'L': c->timeline_ms = arg_num("timeline-ms", optarg, 10, 60000); break;
		case 'K': c->after_mark = arg_num("after-mark", optarg, 1, 86400); break;
		case 's': c->settle = arg_num("settle", optarg, 0, 3600); break;
		case 'E':
			c->expect_moved = (int)arg_num("expect-moved", optarg, 0, LG_MAX_CONNECTIONS);
			break;
		case 'b': c->backoff_min = arg_num("backoff-min", optarg, 0.01, 60); break;
		case 'B': c->backoff_max = arg_num("backoff-max", optarg, 0.01, 600); break;
		case 'm':
			if (strcmp(optarg, "login") == 0) c->mode = LG_LOGIN;
			else if (strcmp(optarg, "messages") == 0) c->mode = LG_MESSAGES;
			else if (strcmp(optarg, "idle") == 0) c->mode = LG_IDLE;
			else if (strcmp(optarg, "failover") == 0) c->mode = LG_FAILOVER;
			else { usage(stderr); exit(2); }
			break;
		case 'M':
			if (strcmp(optarg, "auto") == 0) c->mech = LG_MECH_AUTO;
			else if (strcmp(optarg, "sha1") == 0) c->mech = LG_MECH_SHA1;
			else if (strcmp(optarg, "sha256") == 0) c->mech = LG_MECH_SHA256;
			else { usage(stderr); exit(2); }
			break;
		case 'H': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (creds_pw)
		exit(creds_print(creds_pw, salt, iterations) == 0 ? 0 : 1);
	if (strlen(c->prefix) > 40 || strlen(c->domain) > 200 || strlen(c->password) > 60 ||
	    strpbrk(c->prefix, "<>&'\"@/ ") || strpbrk(c->domain, "<>&'\"@/ ")) {
		fprintf(stderr, "duet-loadgen: prefix, domain or password too long or with "
				"characters that need escaping\n");
		exit(2);
	}
	if (c->mode == LG_MESSAGES && c->pairs * 2 > c->users) {
		fprintf(stderr, "duet-loadgen: --pairs %d needs --users >= %d\n", c->pairs,
			c->pairs * 2);
		exit(2);
	}
	if (c->backoff_max < c->backoff_min)
		c->backoff_max = c->backoff_min;
	if ((c->alt_host != NULL) != (c->alt_port != 0)) {
		fprintf(stderr, "duet-loadgen: --alt-host and --alt-port go together\n");
		exit(2);
	}
	if ((c->mode == LG_IDLE || c->mode == LG_FAILOVER) && c->users > LG_MAX_CONNECTIONS) {
		fprintf(stderr, "duet-loadgen: refusing %d connections (limit %d: the open-file "
				"limit here is 20,000)\n", c->users, LG_MAX_CONNECTIONS);
		exit(2);
	}
	if (c->concurrency > LG_MAX_CONNECTIONS)
		c->concurrency = LG_MAX_CONNECTIONS;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	resolve_into(G.cfg.host, G.cfg.port, &G.addr, &G.addrlen);
	if (G.cfg.alt_host)
		resolve_into(G.cfg.alt_host, G.cfg.alt_port, &G.alt_addr, &G.alt_addrlen);
	G.tls = tls_ctx_new();
	G.base = event_base_new();
	if (!G.tls || !G.base) {
		fprintf(stderr, "duet-loadgen: cannot set up TLS or the event loop\n");
		return 1;
	}
	double hard = G.cfg.duration + G.cfg.grace;
	if (G.cfg.mode == LG_FAILOVER) {
		total_conns = G.cfg.users;
		if (fo_init(&G) < 0)
			return 1;
		hard += total_conns / G.cfg.rate + G.cfg.login_timeout + G.cfg.after_mark +
			G.cfg.settle + 5;
	} else if (G.cfg.mode != LG_LOGIN) {
		total_conns = G.cfg.mode == LG_MESSAGES ? 2 * G.cfg.pairs : G.cfg.users;
		G.nclients = total_conns;
		G.clients = calloc((size_t)total_conns, sizeof *G.clients);
		if (!G.clients)
			return 1;
		double login_s = total_conns / G.cfg.rate + G.cfg.login_timeout;
		if (G.cfg.mode == LG_MESSAGES)
			hard += login_s;
	} else {
		hard += G.cfg.login_timeout;
	}
	struct timeval tick = {0, 100000};
	struct timeval hardtv = {(time_t)hard, (long)((hard - floor(hard)) * 1e6)};
	arrive_ev = evtimer_new(G.base, on_arrive, NULL); /* on_arrive sets it */
	tick_ev = event_new(G.base, -1, EV_PERSIST, on_tick, NULL);
	hard_ev = evtimer_new(G.base, on_hard_stop, NULL);
	sig_term = evsignal_new(G.base, SIGTERM, on_signal, NULL);
	sig_int = evsignal_new(G.base, SIGINT, on_signal, NULL);
	sig_mark = evsignal_new(G.base, SIGUSR1, on_mark, NULL);
	sig_end = evsignal_new(G.base, SIGUSR2, on_end, NULL);
	if (!arrive_ev || !tick_ev || !hard_ev || !sig_term || !sig_int || !sig_mark || !sig_end)
		return 1;
	event_add(tick_ev, &tick);
	event_add(hard_ev, &hardtv);
	event_add(sig_term, NULL);
	event_add(sig_int, NULL);
	event_add(sig_mark, NULL);
	event_add(sig_end, NULL);

	G.t0 = lg_now_ns();
	last_progress = G.t0;
	login_phase_end = G.t0 + (uint64_t)((total_conns / G.cfg.rate + G.cfg.login_timeout) * 1e9);
	on_arrive(-1, 0, NULL);
	event_base_dispatch(G.base);

	double elapsed = (double)(lg_now_ns() - G.t0) / 1e9;
	report_print(&G, elapsed);

	/* close what is still open, politely */
	for (int i = 0; i < G.nclients; i++)
		if (G.clients[i])
			client_close(G.clients[i]);
	while (G.login_head)
		client_close(G.login_head);
	if (G.cfg.mode == LG_FAILOVER)
		fo_free(&G);
	event_free(arrive_ev);
	event_free(sig_mark);
	event_free(sig_end);
	event_free(tick_ev);
	event_free(hard_ev);
	event_free(sig_term);
	event_free(sig_int);
	free(G.clients);
	SSL_CTX_free(G.tls);
	fastcert_disable(); /* after every TLS object: their keys hold the engine */
	client_cleanup();
	event_base_free(G.base);
	return 0;
}
