/* duet-loadgen: many concurrent XMPP clients on one libevent loop, for `make bench`.
 * Shared run configuration and counters; client.c runs one connection, run.c schedules
 * arrivals and the phases of each mode, report.c prints the figures. */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "contrib/loadgen/stats.h"

/* The per-process open-file limit here is 20,000; keep room for everything else. */
#define LG_MAX_CONNECTIONS 15000

enum lg_mode { LG_LOGIN, LG_MESSAGES, LG_IDLE, LG_FAILOVER };
enum lg_mech { LG_MECH_AUTO, LG_MECH_SHA1, LG_MECH_SHA256 };

struct lg_config {
	const char *host;
	int port;
	const char *domain;
	int users;
	const char *prefix;
	const char *password;
	double rate;     /* arrivals per second */
	int concurrency; /* logins in progress at once */
	double duration; /* seconds */
	double grace;    /* extra seconds before the hard stop */
	double login_timeout;
	enum lg_mode mode;
	int pairs;
	int inflight;
	int json;
	enum lg_mech mech;
	int quiet;
	/* failover mode (failover.h) */
	int first_user;       /* users first_user .. first_user + users - 1 */
	const char *alt_host; /* the other node (NULL: none) */
	int alt_port;
	double msg_interval;  /* seconds between one client's messages */
	double timeline_ms;   /* timeline bucket */
	double after_mark;    /* run at most this long after the fault mark */
	double settle;        /* end this long after every client is back */
	int expect_moved;     /* ... once at least this many lost their session (0: any) */
	double backoff_min, backoff_max;
};

struct client;

struct lg {
	struct lg_config cfg;
	struct event_base *base;
	SSL_CTX *tls;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct sockaddr_storage alt_addr; /* failover: --alt-host/--alt-port */
	socklen_t alt_addrlen;

	struct client **clients; /* messages/idle: one per connection, index = user - 1 */
	int nclients;
	struct client *login_head, *login_tail; /* logins in progress, oldest first */

	uint64_t t0;                 /* ns, arrivals start */
	uint64_t launched;           /* connections started */
	int in_login;                /* logins in progress */
	int online;                  /* logged in and held open */
	int open_conns;              /* sockets open */
	uint64_t logins_ok;
	uint64_t first_ok_ns, last_ok_ns;
	struct hist login_lat;
	struct failures fail;
	const char *mech_used;

	/* message mode */
	int measuring, stopping;
	uint64_t win_start, win_end;
	uint64_t msgs_sent, msgs_recv, msgs_in_window;
	struct hist msg_lat;

	/* idle mode */
	int all_up_reported;
	uint64_t all_up_ns;
	uint64_t dropped;
};

uint64_t lg_now_ns(void);

/* client.c */
struct client *client_start(struct lg *lg, int user, uint64_t sched_ns);
struct client *client_start_at(struct lg *lg, int user, uint64_t sched_ns,
			       const struct sockaddr *sa, socklen_t salen);
/* failover mode: one chat message with its seq, then a ping whose answer confirms it */
int client_send_chat(struct client *c, int to_user, uint32_t seq);
void client_send_disco(struct client *c); /* disco#info of the server, id 'd' */
const char *client_redirect(const struct client *c); /* see-other-host target, or "" */
long client_retry_after(const struct client *c);     /* retry-after seconds, or -1 */
/* Send one timestamped message to the partner (message mode). */
void client_send_message(struct client *c);
/* Close a connection that is online (end of a run); the client is freed. */
void client_close(struct client *c);
/* Fail logins older than the login timeout. */
void client_sweep_timeouts(struct lg *lg, uint64_t now);
void client_set_partner(struct client *c, int partner_user);
int client_is_online(const struct client *c);
/* At exit, after the last client: what client.c keeps for all connections. */
void client_cleanup(void);

/* run.c: called by client.c */
void run_login_done(struct lg *lg, struct client *c, uint64_t lat_ns);
void run_client_gone(struct lg *lg, struct client *c, int user, int was_online);

/* report.c */
void report_print(const struct lg *lg, double elapsed_s);

#endif
