/* presenced: shared state of the engine and the interfaces between its files.
 *
 *   listener.c   accepts, per-address limits          conn.c      one client connection:
 *   conn_auth.c  SASL glue, auth throttling                        TLS, stream, timeouts
 *   session.c    users, resources, binding            router.c    stanza routing rules
 *   roster.c     roster get/set, versions, storage    presence.c  broadcast, probes, subs
 *   message.c    IM forking/locking                   offline.c   offline store, XEP-0013
 *   iq_server.c  disco, ping, version, time, last     vcard.c     vcard-temp
 *   control.c    the srmd control protocol            stanza.c    replies and errors
 */
#ifndef DUET_ENGINE_H
#define DUET_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "engine/jid.h"
#include "engine/subscription.h"
#include "engine/xml.h"
#include "lib/config.h"

#define JID_BUF (3 * JID_PART_MAX + 3)
#define MAX_HOME_NODES 8

#define NS_CLIENT "jabber:client"
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_STREAM_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZA_ERR "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_ROSTER "jabber:iq:roster"
#define NS_ROSTERVER "urn:xmpp:features:rosterver"
#define NS_PREAPPROVAL "urn:xmpp:features:pre-approval"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING "urn:xmpp:ping"
#define NS_VERSION "jabber:iq:version"
#define NS_LAST "jabber:iq:last"
#define NS_TIME "urn:xmpp:time"
#define NS_VCARD "vcard-temp"
#define NS_OFFLINE "http://jabber.org/protocol/offline"
#define NS_DELAY "urn:xmpp:delay"
#define NS_DATA "jabber:x:data"
#define NS_RELOGIN "urn:duet:relogin:0" /* retry-after, disco form (relogin.c) */

#define DUET_VERSION "0.1.0"

struct conn;
struct user;
struct pg_pool;
struct pg_req;
struct pg_result;

/* One bound resource of a user: a session. */
struct resource {
	char *name; /* allocated to size: memory per session matters at 15,000 sessions */
	char *full;
	struct conn *conn;
	struct user *user;
	struct xml_node *presence; /* last available presence broadcast, NULL = unavailable */
	int priority;
	bool interested;           /* asked for the roster: gets roster pushes */
	bool sent_initial;         /* has sent initial presence */
	bool flexible_offline;     /* used XEP-0013 before initial presence: no auto flush */
	struct strmap *directed;   /* full/bare JIDs sent directed presence (not subscribers) */
	/* Presence Change Throttle Rate: one token bucket per resource */
	double presence_tokens;
	struct timespec presence_refill;
	struct xml_node *presence_pending; /* coalesced update waiting for a token */
	struct resource *next;
};

struct roster_item {
	char *contact;  /* bare JID */
	char *name;     /* NULL if none */
	char **groups;  /* NULL-terminated, may be NULL */
	struct sub_item st;
	int64_t ver;
	char *pending_in_stanza; /* the stored subscribe request, re-sent at login */
};

typedef void (*user_cb)(void *arg, struct user *u);

struct pg_result;
/* user_with_row(): also the load's result (the credentials are in it), NULL when the user
 * was already in memory. */
typedef void (*user_row_cb)(void *arg, struct user *u, struct pg_result *res);

struct user_waiter {
	user_cb cb;
	user_row_cb row_cb; /* instead of cb */
	void *arg;
	struct user_waiter *next;
};

struct user {
	char *name; /* localpart */
	char *bare;
	int home_node;
	bool loaded, missing;
	int64_t roster_ver;
	struct strmap *roster; /* contact bare JID -> struct roster_item */
	struct resource *resources;
	int nresources;
	int refs;              /* resources + pending loads + pending writes + holds */
	struct user_waiter *waiters;
	struct pg_req *load_req;
	struct strmap *im_lock; /* sender bare JID -> locked resource name (IM forking) */
	bool offline_flushing;
	bool offline_again; /* stored while a flush ran: its SELECT may have missed it */
	/* The load found no offline messages: the first flush after it can skip its query.
	 * Trusted once only (the peer's replicated messages arrive behind the engine's back). */
	bool offline_known_empty;
	struct user_write *writes, *writes_tail; /* this user's database writes, in order */
	time_t last_logout;
	char *last_status; /* of the last unavailable presence, NULL if none */
};

struct engine_stats {
	uint64_t logins, login_failures, messages, offline_stored, offline_delivered;
	uint64_t presence_broadcasts, stanzas_in, stream_errors;
	uint64_t logins_node[MAX_HOME_NODES + 1]; /* by the user's home node */
	uint64_t logins_throttled; /* refused by the login throttle (resource-constraint) */
};

struct server {
	struct duet_config cfg;
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	struct pg_pool *db;
	struct strmap *users;     /* loaded users by localpart */
	struct strmap *per_ip;    /* address -> connection count (as intptr_t) */
	struct strmap *auth_fail; /* address -> struct auth_fail_window */
	struct conn *conns;       /* every live connection */
	long nconns, nsessions;
	bool serve[MAX_HOME_NODES + 1];
	char redirect[MAX_HOME_NODES + 1][256];
	double login_rate;        /* throttle: logins per second, 0 = unlimited */
	double login_tokens;
	struct timespec login_refill;
	struct engine_stats stats;
	time_t started;
	bool stopping;
};

extern struct server server;

/* --- conn.c --- */
void conn_accept(int fd, const char *ip, bool direct_tls);
/* Queue a serialized stanza to the client; drops the connection if it is too slow. */
void conn_send(struct conn *c, const struct xml_node *stanza);
void conn_send_raw(struct conn *c, const char *data, size_t len);
/* Send a stream error and close once it is written.  text may be NULL.
 * For see-other-host, text is the host:port. */
void conn_stream_error(struct conn *c, const char *condition, const char *text);
/* The same with app_xml (trusted, already well-formed) as the application-specific
 * condition element. */
void conn_stream_error_app(struct conn *c, const char *condition, const char *text,
			   const char *app_xml);
/* End an established session the node no longer serves (see-other-host, or
 * system-shutdown): the stream error goes out, and what the client sent before it saw the
 * error is still read and its messages routed until the client closes its stream, for
 * CONN_DRAIN_MS at most (RFC 6120 §4.4). */
void conn_release(struct conn *c, const char *condition, const char *text);
#define CONN_DRAIN_MS 2000
/* The route link wrote more (route_link.c): replies held for it may go out now. */
void conn_route_written(void);
/* Database work a client's message started (its recipient's row loaded, an offline-store
 * INSERT): the sending session's output waits for it, so that an answer after the message
 * (a ping) means the message is in the database or handed on, not only in this process's
 * memory.  take: from the stanza's 'from', when that is a local session (else a no-op);
 * every take is released exactly once.  A hold older than CONN_HOLD_MAX_MS is dropped. */
struct conn_hold {
	char full[JID_BUF];
	uint64_t serial;    /* a local sender's connection, 0: none */
	uint64_t route_seq; /* or a STANZA from the peer engine being delivered: its ACK waits */
};
void conn_hold_take(const struct xml_node *st, struct conn_hold *h);
void conn_hold_release(struct conn_hold *h);
/* Hand what `from` holds over to `to` (which held nothing): the work continues there. */
void conn_hold_move(struct conn_hold *to, struct conn_hold *from);
#define CONN_HOLD_MAX_MS 10000
void conn_sweep(void); /* timeouts and keepalives, once a second */
bool conn_tls_active(const struct conn *c);
/* A login token for c (the throttle, control.c), taken once per connection. */
bool conn_take_admission(struct conn *c);
/* A login over the throttle: resource-constraint with retry-after (relogin.c). */
void conn_refuse_login(struct conn *c);
struct login_queue_entry;
void conn_set_queue_entry(struct conn *c, struct login_queue_entry *e);
void conn_queue_admitted(struct conn *c); /* its turn came: the held features go out */
const char *conn_ip(const struct conn *c);
struct resource *conn_resource(const struct conn *c);
int conn_established(const struct conn *c);
/* Close every connection with a stream error (stop/shutdown). */
void conn_close_all(const char *condition);

/* --- conn_auth.c (SASL glue called by conn.c) --- */
struct sasl_state;
void auth_start(struct conn *c, struct xml_node *auth);
void auth_response(struct conn *c, struct xml_node *resp);
void auth_abort(struct conn *c);
bool auth_throttled(const char *ip);
void auth_note_failure(const char *ip);
void auth_cleanup(struct conn *c);
/* conn.c hooks used by conn_auth.c */
struct sasl_server **conn_sasl_slot(struct conn *c);
struct pg_req **conn_req_slot(struct conn *c);
void conn_auth_succeeded(struct conn *c, const char *username);
void conn_auth_retry(struct conn *c); /* back to the pre-auth phase after a failure */
void conn_set_home(struct conn *c, int home_node);
void conn_prefetch_user(struct conn *c, const char *username);
/* SASL waits for the user's row (user_with_row with arg c): 0, or -1 out of memory. */
int conn_wait_user(struct conn *c, const char *username);
bool conn_waiting_user(const struct conn *c);
void conn_cancel_wait(struct conn *c);
/* The row came: the wait ends; u (if any) is held for the coming bind. */
void conn_adopt_user(struct conn *c, struct user *u);
void conn_set_mech(struct conn *c, int mech);
int conn_sasl_mech(const struct conn *c);
void auth_sweep(void);

/* --- session.c --- */
/* Get a loaded user (from memory or the database), then cb(arg, user or NULL if no such
 * account).  cb may run synchronously.  While cb runs the user is held. */
void user_with(const char *username, user_cb cb, void *arg);
/* The same, and for a user not yet in memory the load's row: its SCRAM credentials are in
 * columns USER_CREDS_COL.. (salt, iterations, stored key, server key in hex; SHA-1 then
 * SHA-256), so a login needs one query, not one for the credentials and one for the user.
 * res is NULL when u was in memory; a failed load gives u NULL and res NULL or not OK. */
#define USER_CREDS_COL 15
void user_with_row(const char *username, user_row_cb cb, void *arg);
/* Forget a pending user_with() callback with this arg (its owner went away). */
void user_cancel(const char *username, void *arg);
void user_hold(struct user *u);
void user_release(struct user *u);
struct user *user_find_loaded(const char *username);
/* Write to the database on behalf of u: writes of one user run one at a time, in order,
 * and hold u until done.  params are copied. */
void user_write(struct user *u, const char *sql, int nparams, const char *const *params);
/* The same queue with a result callback (res NULL on failure): reads queued behind a
 * user's writes see them. */
typedef void (*pg_cb_t)(void *arg, struct pg_result *res, const char *errmsg);
void user_query(struct user *u, const char *sql, int nparams, const char *const *params,
		pg_cb_t cb, void *arg);
struct resource *user_find_resource(struct user *u, const char *name);
/* Connected, available, non-negative priority: takes messages sent to the bare JID
 * (RFC 6121 §8.5.2.1). */
bool resource_takes_bare(const struct resource *r);
/* Bind a resource for an authenticated connection; NULL + condition on error. */
struct resource *session_bind(struct conn *c, struct user *u, const char *want,
			      const char **condition);
/* The connection is gone: unavailable presence, unlock IM forks, free the resource. */
void session_unbind(struct resource *r);
/* Look up a connected resource by full JID. */
struct resource *session_find(const struct jid *j);
long session_count_home(int node);

/* --- router.c --- */
/* A stanza from a local client, 'from' already stamped.  Takes ownership. */
void route_from_client(struct resource *from, struct xml_node *stanza);
/* Deliver a stanza addressed to a local user's JID (bare or full) from anywhere.
 * Takes ownership. */
void route_to_local(const struct jid *to, struct xml_node *stanza);
/* The same, on this node only (no route link decision): what route_to_local does for a
 * user served here, and what the route link does with stanzas it receives. */
void route_deliver_local(const struct jid *to, struct xml_node *stanza);
bool domain_is_local(const char *domain);

/* --- stanza.c --- */
/* Build an error reply to stanza (swaps to/from, type='error', adds the condition). */
struct xml_node *stanza_error_reply(const struct xml_node *stanza, const char *type,
				    const char *condition, const char *text);
/* An iq result for iq (swapped addresses, same id); payload may be NULL. */
struct xml_node *stanza_iq_result(const struct xml_node *iq, struct xml_node *payload);
/* Send an error reply for stanza back to res (no-op for errors: never answer an error). */
void stanza_bounce(struct resource *res, const struct xml_node *stanza, const char *type,
		   const char *condition);
/* Bounce an error for stanza to its sender, wherever that is (takes nothing). */
void stanza_bounce_to_sender(const struct xml_node *stanza, const char *type,
			     const char *condition);
void stanza_add_delay(struct xml_node *stanza, const char *from, time_t when);
void format_xmpp_time(time_t t, char *buf, size_t len); /* XEP-0082 */
/* Random id for streams and resources. */
void random_id(char *buf, size_t len);

/* --- roster.c --- */
void roster_iq(struct resource *res, struct xml_node *iq);
struct roster_item *roster_get(struct user *u, const char *contact);
/* Store a changed item (new version, database write, push to interested resources). */
void roster_update(struct user *u, struct roster_item *item, bool push);
void roster_item_free(struct roster_item *it);
int roster_load_rows(struct user *u, void *pgresult, int first_row);
size_t roster_count_visible(struct user *u);
size_t roster_count_watchers(struct user *u);

void roster_remove(struct user *u, const char *contact);
struct roster_item *roster_item_new(const char *contact);
void roster_push(struct user *u, const struct roster_item *it, bool removed);
/* srmd's roster-reload (roster_reload.c): 1 queued, 0 not in memory, -1 bad JID. */
int roster_reload(const char *bare);

/* --- presence.c --- */
/* Removing a roster item ends the subscription both ways (RFC 6121 §2.5.2). */
void subscription_cancel_all(struct user *u, struct roster_item *it);
void presence_tick(void); /* flushes throttled presence updates */
void presence_from_client(struct resource *res, struct xml_node *p);
void presence_to_local(const struct jid *to, struct xml_node *p);
/* A subscription stanza (from/to set) for the contact's side, received over the route
 * link: the inbound half of RFC 6121 §3, never forwarded again.  Takes ownership. */
void presence_subscription_in(const struct jid *to, struct xml_node *p);
/* A resource is going away: send unavailable to everyone who saw it. */
void presence_resource_gone(struct resource *r);

/* --- message.c --- */
void message_from_client(struct resource *res, struct xml_node *m);
/* A message read from a session already released (conn_release): routed as sent by
 * `full`, with no reply possible to it. */
void message_from_released(const char *full, struct xml_node *m);
void message_to_local(const struct jid *to, struct xml_node *m);
void message_resource_gone(struct resource *r);

/* --- offline.c --- */
void offline_store(struct user *u, struct xml_node *m); /* takes ownership */
/* The same, continuing the hold h (may be NULL or empty: then one is taken for m). */
void offline_store_held(struct user *u, struct xml_node *m, struct conn_hold *h);
void offline_replicated(struct user *u); /* replication stored one for u: deliver if online */
void offline_serve_started(int node);    /* serving home node again: flush its online users */
void offline_listen_start(void);          /* offline_listen.c */
void offline_flush(struct resource *res);               /* deliver and delete */
void offline_iq(struct resource *res, struct xml_node *iq); /* XEP-0013 */
/* XEP-0013 §2.2-2.3: disco#info (count) or disco#items (headers) on the offline node. */
void offline_disco(struct resource *res, struct xml_node *iq, bool items);

/* --- iq_server.c / vcard.c --- */
void iq_from_client(struct resource *res, struct xml_node *iq);
void iq_to_local(const struct jid *to, struct xml_node *iq);
void vcard_iq(struct resource *res, struct xml_node *iq, const char *owner);

/* --- last_activity.c: logout times, written in batches --- */
void last_store(struct user *u);
void last_activity_flush(void); /* write what is pending now */

/* --- listener.c --- */
bool listeners_alive(void);

/* --- relogin.c: the re-login window as clients see it --- */
void relogin_set_limits(long lower_ms, long upper_ms);
void relogin_throttle_window(long window_ms); /* 0: no window known */
long relogin_retry_after(void);               /* seconds, >= 1 */
long relogin_span_ms(void);                   /* upper - lower */
/* Refuse a login over the throttle: resource-constraint with <retry-after/>. */
void relogin_refuse(struct conn *c);
/* Append the XEP-0128 form urn:duet:relogin:0 to a disco#info query. */
void relogin_disco_form(struct xml_node *q);

/* --- login_capacity.c: CPU per login, for `srmctl profile --hardware auto` --- */
void login_capacity_start(void);
int login_capacity_calibrate(void); /* blocks for a few tens of ms; -1 without TLS */
void login_capacity_answer(char *buf, size_t len);
/* Logins per second to admit now, 0 = unlimited: srmd's throttle while it runs, capped at
 * 80% of this engine's capacity; the cap alone during the storm guard (the first re-login
 * span after the engine starts, and for as long as logins keep being refused). */
double login_rate_effective(void);
void login_capacity_refused(void);  /* a login was refused: the guard stays up */
void login_guard_raise(void);       /* more logins than admitted: the guard stays up */
void login_admitted(void);          /* a login took its admission (conn.c) */
double login_admission_rate(void);  /* logins/s admitted lately under pressure, 0 = unlimited */
/* srmd's throttle counts `crowd` users coming: retry-after spreads the refused over the time
 * the rest of them needs at the rate logins are admitted (0: none known). */
void login_crowd_set(double crowd);
long login_crowd_drain_ms(void);
long login_guard_left_ms(void);     /* ms the storm guard still runs, 0 = off */
/* Logins admitted and not bound yet (conn.c); full: refuse new ones while the guard is up */
void login_inflight_add(int d);
long login_inflight(void);
bool login_inflight_full(void);
double login_capacity_per_s(void); /* logins/s with headroom, 0 when unknown (ADMIT) */

/* --- login_queue.c: logins waiting for admission instead of being refused --- */
bool login_queue_enter(struct conn *c); /* false: no room, refuse it */
void login_queue_leave(struct login_queue_entry *e); /* NULL: nothing */
long login_queue_length(void);
uint64_t login_queue_total(void); /* logins that waited there, ever */

/* --- control.c --- */
void control_open(int fd);
void control_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Should a login of this home node be let in?  May fill redirect. */
bool engine_serves(int home_node);
bool login_admit(void); /* the throttle's token bucket */
void release_home_node(int node, const char *target, long window_ms);

#endif
