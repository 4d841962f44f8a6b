/* Routing between the two engines of a pair (docs/route-protocol.md, DESIGN §5b): for a
 * stanza to a user of our domain, "which engine serves that user's home node now" decides
 * between local delivery, the route link, or the single-node fallback (messages stored
 * offline in our replicated database, presence dropped, iq refused).  Also the presence
 * fan-out and probes for contacts on the peer, the acknowledged delivery of messages and
 * subscription stanzas (unacknowledged ones fall back locally when the link is lost), and
 * the table of remote presences each local user has seen, which turns into 'unavailable'
 * when the link is lost or the peer stops serving a home node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/rand.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/strmap.h"

#define HOME_CACHE_TTL 10       /* seconds a looked-up home node is trusted */
#define HOME_CACHE_MAX 65536    /* entries; the cache is emptied when it is full */
#define RETRY_MAX 100000        /* unacknowledged stanzas before the link counts as stuck */
#define HOLD_MIN_MS 10000       /* unacknowledged stanzas wait this long for the link */

_Static_assert(ROUTE_MAX_NODE == MAX_HOME_NODES, "route.h and engine.h disagree");

/* A forwarded stanza the peer has not acknowledged yet: sent again (same seq) when the link
 * comes back, handled locally if it does not come back in time. */
struct retry {
	uint64_t seq;
	int home; /* the recipient's home node */
	char *xml;
	size_t len;
	struct retry *next;
};

struct home_entry {
	int node;
	time_t expires;
};

static struct {
	bool peer_serves[MAX_HOME_NODES + 1];
	bool peer_serve_known;
	uint64_t instance;      /* ours, in HELLO */
	uint64_t tx_seq;        /* last STANZA seq sent; never reset while we run */
	/* Per sender instance, the highest seq handed to local delivery.  A few instances are
	 * remembered so that a short-lived other connection (a restarted peer that is killed
	 * again, a misbehaving one with the peer's certificate) does not make us forget. */
	struct {
		uint64_t instance, delivered;
	} seen[4];
	uint64_t *rx_delivered; /* into seen[], for the instance of the current link */
	uint64_t rx_conn_last;  /* highest seq seen on this connection (what ACK says) */
	uint64_t rx_acked;
	struct retry *retry_head, *retry_tail;
	size_t retry_count;
	struct event *hold; /* link lost with stanzas unacknowledged: when to stop waiting */
	/* Seqs received on this connection whose delivery waits on the database (conn_hold):
	 * the ACK stops below the lowest.  With when each began: one forgotten by a bug must
	 * not stall the ACKs for ever. */
	struct rx_wait {
		uint64_t seq;
		int64_t since_ms;
	} *rx_waiting;
	size_t n_rx_waiting, cap_rx_waiting;
	uint64_t rx_current; /* on_stanza: the seq being delivered */
	uint64_t duplicates, resent;
	struct strmap *remote;     /* local bare -> strmap of remote full JIDs seen available */
	struct strmap *home_cache; /* localpart -> struct home_entry */
	uint64_t forwarded, received, fallbacks, losses;
} R;

/* ---- small helpers ---- */

static bool is_subscription(const struct xml_node *st)
{
	const char *t = xml_get_attr(st, "type");
	return !strcmp(st->name, "presence") && t &&
	       (!strcmp(t, "subscribe") || !strcmp(t, "subscribed") ||
		!strcmp(t, "unsubscribe") || !strcmp(t, "unsubscribed"));
}

/* What must not be lost in flight: messages that would be stored offline, and
 * subscription stanzas (they change rosters). */
static bool needs_ack(const struct xml_node *st)
{
	if (!strcmp(st->name, "message")) {
		const char *t = xml_get_attr(st, "type");
		return !t || !strcmp(t, "chat") || !strcmp(t, "normal");
	}
	return is_subscription(st);
}

static struct home_entry *home_cache_get(const char *local)
{
	struct home_entry *e = R.home_cache ? strmap_get(R.home_cache, local) : NULL;
	if (e && e->expires < time(NULL)) {
		free(strmap_del(R.home_cache, local));
		return NULL;
	}
	return e;
}

static void home_cache_clear(void)
{
	void *v;
	for (size_t i = 0; R.home_cache && strmap_next(R.home_cache, &i, NULL, &v);)
		free(v);
	strmap_free(R.home_cache);
	R.home_cache = NULL;
}

void route_home_forget(const char *local)
{
	if (R.home_cache)
		free(strmap_del(R.home_cache, local));
}

static void home_cache_put(const char *local, int node)
{
	if (R.home_cache && strmap_count(R.home_cache) >= HOME_CACHE_MAX)
		home_cache_clear();
	if (!R.home_cache && !(R.home_cache = strmap_new()))
		return;
	struct home_entry *e = strmap_get(R.home_cache, local);
	if (!e) {
		if (!(e = malloc(sizeof *e)))
			return;
		if (strmap_put(R.home_cache, local, e) < 0) {
			free(e);
			return;
		}
	}
	e->node = node;
	e->expires = time(NULL) + HOME_CACHE_TTL;
}

/* Parse "to" of a stanza from the link: a user of our domain. */
static int local_to(const struct xml_node *st, struct jid *to)
{
	const char *s = xml_get_attr(st, "to");
	if (!s || jid_parse(s, to) < 0 || !domain_is_local(to->domain) || !to->local[0])
		return -1;
	return 0;
}

/* Local delivery, as a single node would do it, plus what the router does not: an iq
 * request for a resource that is not here is refused. */
static void deliver_local(const struct jid *to, struct xml_node *st)
{
	if (is_subscription(st)) {
		presence_subscription_in(to, st);
		return;
	}
	const char *t = xml_get_attr(st, "type");
	if (!strcmp(st->name, "iq") && to->resource[0] && t &&
	    (!strcmp(t, "get") || !strcmp(t, "set")) && !session_find(to)) {
		stanza_bounce_to_sender(st, "cancel", "service-unavailable");
		xml_free(st);
		return;
	}
	route_deliver_local(to, st);
}

/* ---- the remote presence table ---- */

static void remote_note(const char *local_bare, const struct xml_node *p)
{
	const char *from = xml_get_attr(p, "from"), *t = xml_get_attr(p, "type");
	struct jid fj;
	if (!from || jid_parse(from, &fj) < 0 || !fj.resource[0])
		return;
	bool available = !t;
	if (!available && strcmp(t, "unavailable"))
		return;
	if (!R.remote && !(R.remote = strmap_new()))
		return;
	struct strmap *seen = strmap_get(R.remote, local_bare);
	if (!seen) {
		if (!available || !(seen = strmap_new()))
			return;
		if (strmap_put(R.remote, local_bare, seen) < 0) {
			strmap_free(seen);
			return;
		}
	}
	if (available)
		strmap_put(seen, from, (void *)1);
	else
		strmap_del(seen, from);
}

void route_forget_user(const char *bare)
{
	struct strmap *seen = R.remote ? strmap_del(R.remote, bare) : NULL;
	if (seen)
		strmap_free(seen);
}

/* DESIGN §5b: every remote contact resource a local user saw available is now
 * unavailable to it.  They show up again as presences arrive after recovery. */
static void remote_flush(void)
{
	struct strmap *all = R.remote;
	R.remote = NULL;
	const char *bare, *full;
	void *v;
	long n = 0;
	for (size_t i = 0; all && strmap_next(all, &i, &bare, &v);) {
		struct strmap *seen = v;
		struct jid to;
		bool ok = jid_parse(bare, &to) == 0;
		for (size_t k = 0; ok && strmap_next(seen, &k, &full, NULL);) {
			struct xml_node *p = xml_elem_new("presence");
			if (!p)
				continue;
			xml_set_attr(p, "type", "unavailable");
			xml_set_attr(p, "from", full);
			xml_set_attr(p, "to", bare);
			presence_to_local(&to, p);
			n++;
		}
		strmap_free(seen);
	}
	strmap_free(all);
	if (n)
		log_info("route: told local users %ld remote resources are unavailable", n);
}

uint64_t route_instance(void)
{
	while (!R.instance)
		if (RAND_bytes((unsigned char *)&R.instance, sizeof R.instance) != 1)
			R.instance = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	return R.instance;
}

/* ---- sending ---- */

static int send_stanza_frame(uint64_t seq, const char *xml, size_t len)
{
	char head[32];
	int hl = snprintf(head, sizeof head, "%llu\n", (unsigned long long)seq);
	return route_link_send(ROUTE_STANZA, head, (size_t)hl, xml, len);
}

/* One STANZA frame for a user of home node `home`; kept until acknowledged when it must
 * not be lost.  0, or -1 if it could not be queued (the caller falls back). */
static int forward(const struct xml_node *st, int home)
{
	size_t len;
	char *xml = xml_to_string(st, &len);
	if (!xml)
		return -1;
	bool keep = needs_ack(st);
	struct retry *rt = keep ? calloc(1, sizeof *rt) : NULL;
	if (keep && !rt) {
		free(xml);
		return -1;
	}
	uint64_t seq = R.tx_seq + 1;
	if (send_stanza_frame(seq, xml, len) < 0) {
		free(xml);
		free(rt);
		return -1;
	}
	R.tx_seq = seq;
	R.forwarded++;
	if (!rt) {
		free(xml);
		return 0;
	}
	rt->seq = seq;
	rt->home = home;
	rt->xml = xml;
	rt->len = len;
	if (R.retry_tail)
		R.retry_tail->next = rt;
	else
		R.retry_head = rt;
	R.retry_tail = rt;
	if (++R.retry_count > RETRY_MAX)
		route_link_close("too many unacknowledged stanzas");
	return 0;
}

/* Frames of "<first> <bare> <bare>...\n" + body, split so that none is too big. */
static void send_listed(enum route_frame_type type, const char *first,
			const char *const *bares, size_t n, const char *body, size_t body_len)
{
	size_t room = ROUTE_MAX_PAYLOAD - body_len, i = 0, need = first ? strlen(first) + 2 : 2;
	for (size_t k = 0; k < n && need < room; k++)
		need += strlen(bares[k]) + 1;
	char *head = malloc((need < room ? need : room) + 1);
	if (!head)
		return;
	while (i < n && route_link_up()) {
		size_t hl = 0;
		if (first) {
			hl = strlen(first);
			if (hl + 2 > room)
				break;
			memcpy(head, first, hl);
		}
		size_t start = i;
		for (; i < n; i++) {
			size_t bl = strlen(bares[i]);
			if (hl + bl + 2 > room)
				break;
			if (hl)
				head[hl++] = ' ';
			memcpy(head + hl, bares[i], bl);
			hl += bl;
		}
		if (i == start) { /* one name alone does not fit: skip it */
			i++;
			continue;
		}
		if (body)
			head[hl++] = '\n';
		route_link_send(type, head, hl, body, body_len);
	}
	free(head);
}

void route_send_presence(const struct xml_node *p, const char *const *bares, size_t n)
{
	if (!route_link_up() || n == 0)
		return;
	size_t len;
	char *xml = xml_to_string(p, &len);
	if (!xml || len + 1024 > ROUTE_MAX_PAYLOAD) {
		free(xml);
		return;
	}
	send_listed(ROUTE_PRESENCE, NULL, bares, n, xml, len);
	free(xml);
}

void route_send_probe(const char *prober, const char *const *bares, size_t n)
{
	if (route_link_up() && n > 0)
		send_listed(ROUTE_PROBE, prober, bares, n, NULL, 0);
}

static void send_serve(void)
{
	char buf[4 * MAX_HOME_NODES + 2];
	size_t off = 0;
	for (int n = 1; n <= MAX_HOME_NODES; n++)
		if (engine_serves(n))
			off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%d", off ? "," : "", n);
	if (!off)
		buf[off++] = '-';
	route_link_send(ROUTE_SERVE, buf, off, NULL, 0);
}

/* After the link comes up or the peer serves more: every local user with an available
 * resource asks the peer for the presences it should see ("shows them available again"). */
static void resync_probes(void)
{
	void *v;
	size_t cap = 0;
	const char **list = NULL;
	for (size_t i = 0; strmap_next(server.users, &i, NULL, &v);) {
		struct user *u = v;
		if (!u->loaded || !engine_serves(u->home_node))
			continue;
		bool online = false;
		for (struct resource *r = u->resources; r; r = r->next)
			online = online || r->presence;
		if (!online)
			continue;
		size_t n = 0;
		void *iv;
		for (size_t k = 0; strmap_next(u->roster, &k, NULL, &iv);) {
			struct roster_item *it = iv;
			struct jid j;
			if (!sub_user_sees_contact(it->st) || jid_parse(it->contact, &j) < 0 ||
			    !domain_is_local(j.domain) || !route_contact_remote(j.local))
				continue;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				const char **nl = realloc(list, ncap * sizeof *nl);
				if (!nl)
					break;
				list = nl;
				cap = ncap;
			}
			list[n++] = it->contact;
		}
		route_send_probe(u->bare, list, n);
	}
	free(list);
}

/* ---- decisions ---- */

bool route_contact_remote(const char *local)
{
	if (!route_link_up() || !local || !local[0])
		return false;
	struct user *u = user_find_loaded(local);
	if (u && engine_serves(u->home_node))
		return false;
	struct home_entry *e = u ? NULL : home_cache_get(local);
	int home = u ? u->home_node : e ? e->node : 0;
	if (home && (engine_serves(home) || home > MAX_HOME_NODES || !R.peer_serves[home]))
		return false;
	return true; /* served by the peer, or unknown here: the peer filters */
}

/* A message for a user whose home node we no longer serve, but who still has a session
 * here: a planned move ends the sessions one by one (release.c), and until this one ends
 * the user is here.  The peer would store the message for the user's next login there. */
static bool still_here(const struct jid *to, const struct xml_node *st)
{
	if (strcmp(st->name, "message"))
		return false;
	struct user *u = user_find_loaded(to->local);
	if (!u)
		return false;
	if (to->resource[0]) {
		struct resource *r = user_find_resource(u, to->resource);
		return r && r->conn;
	}
	for (struct resource *r = u->resources; r; r = r->next)
		if (resource_takes_bare(r))
			return true;
	return false;
}

/* true: taken (forwarded or refused); false: deliver locally. */
static bool decide(int home, const struct jid *to, struct xml_node *st)
{
	if (engine_serves(home) || still_here(to, st))
		return false;
	if (route_link_up() && home >= 1 && home <= MAX_HOME_NODES && R.peer_serves[home]) {
		if (forward(st, home) == 0) {
			xml_free(st);
			return true;
		}
	}
	/* Nobody reachable serves the user: what a single node would do (messages are
	 * stored offline in our database, which replication carries to the peer). */
	R.fallbacks++;
	const char *t = xml_get_attr(st, "type");
	if (!strcmp(st->name, "iq") && t && (!strcmp(t, "get") || !strcmp(t, "set"))) {
		stanza_bounce_to_sender(st, "cancel", "service-unavailable");
		xml_free(st);
		return true;
	}
	return false;
}

struct intercept_ctx {
	struct jid to;
	struct xml_node *st;
	struct conn_hold hold; /* the sender's replies wait for the lookup */
};

/* Whether any home node is served by the peer right now. */
static bool peer_serves_any(void)
{
	for (int n = 1; n <= MAX_HOME_NODES; n++)
		if (R.peer_serves[n])
			return true;
	return false;
}

static void intercept_loaded(void *arg, struct user *u, struct pg_result *res)
{
	struct intercept_ctx *ic = arg;
	if (u)
		home_cache_put(u->name, u->home_node);
	bool lookup_failed = !u && (!res || PQresultStatus(res) != PGRES_TUPLES_OK);
	if (lookup_failed && route_link_up() && peer_serves_any() && forward(ic->st, 0) == 0) {
		/* Our database cannot say where the user lives (it is down: we are about to
		 * fail over): the peer, whose database works, decides, and never sends it back
		 * (stanzas from the link end where they arrive). */
		xml_free(ic->st);
	} else if (!u || !decide(u->home_node, &ic->to, ic->st)) {
		deliver_local(&ic->to, ic->st);
	}
	conn_hold_release(&ic->hold);
	free(ic);
}

bool route_intercept(const struct jid *to, struct xml_node *st)
{
	if (!route_link_configured() || !to->local[0] || !domain_is_local(to->domain))
		return false;
	struct user *u = user_find_loaded(to->local);
	if (u)
		return decide(u->home_node, to, st);
	struct home_entry *e = home_cache_get(to->local);
	if (e)
		return decide(e->node, to, st);
	/* The home node is in the user's row: load it (in order behind any pending load). */
	struct intercept_ctx *ic = calloc(1, sizeof *ic); /* hold: none until taken */
	if (!ic)
		return false;
	ic->to = *to;
	ic->st = st;
	if (!strcmp(st->name, "message"))
		conn_hold_take(st, &ic->hold);
	user_with_row(to->local, intercept_loaded, ic);
	return true;
}

bool route_subscription_remote(const struct user *cu, const struct xml_node *p)
{
	if (!route_link_configured() || engine_serves(cu->home_node))
		return false;
	int home = cu->home_node;
	if (route_link_up() && home >= 1 && home <= MAX_HOME_NODES && R.peer_serves[home])
		return forward(p, home) == 0;
	/* Nobody reachable serves the contact: its roster in our (replicated) database is
	 * updated here, as the node taking it over would do. */
	R.fallbacks++;
	return false;
}

/* ---- the link's life ---- */

/* Held stanzas for which `pick` says so are handed to local delivery (messages stored
 * offline or given to a session here, subscriptions applied to our replicated roster). */
static void fallback_held(bool (*pick)(const struct retry *))
{
	struct retry **pp = &R.retry_head, *last = NULL;
	long n = 0;
	while (*pp) {
		struct retry *rt = *pp;
		if (!pick(rt)) {
			last = rt;
			pp = &rt->next;
			continue;
		}
		*pp = rt->next;
		R.retry_count--;
		struct xml_node *st = xml_parse_string(rt->xml, rt->len);
		struct jid to;
		if (st && local_to(st, &to) == 0) {
			deliver_local(&to, st);
			n++;
		} else {
			xml_free(st);
		}
		free(rt->xml);
		free(rt);
	}
	R.retry_tail = last;
	if (n)
		log_info("route: %ld unacknowledged stanzas handled locally", n);
}

static bool pick_all(const struct retry *rt) { return true; }
static bool pick_served_here(const struct retry *rt) { return engine_serves(rt->home); }

static void on_hold_expired(evutil_socket_t fd, short what, void *arg)
{
	if (!route_link_up())
		fallback_held(pick_all);
}

/* The link is gone with stanzas unacknowledged: they wait for it to come back (then they
 * are sent again and the peer drops those it had delivered), at most this long. */
static void hold_start(void)
{
	if (!R.retry_head)
		return;
	if (!R.hold && !(R.hold = evtimer_new(server.base, on_hold_expired, NULL))) {
		fallback_held(pick_all);
		return;
	}
	long ms = 3 * server.cfg.route_dead_timeout_ms;
	if (ms < HOLD_MIN_MS)
		ms = HOLD_MIN_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(R.hold, &tv);
}

void route_serve_changed(void)
{
	if (route_link_up())
		send_serve();
	else if (R.retry_head) /* we took a home node over: its users' stanzas are ours now */
		fallback_held(pick_served_here);
}

void route_on_up(void)
{
	uint64_t peer = route_link_peer_instance();
	size_t k = 0;
	while (k < 4 && R.seen[k].instance != peer)
		k++;
	if (k == 4) { /* a process not seen before: forget the oldest one */
		memmove(&R.seen[1], &R.seen[0], 3 * sizeof R.seen[0]);
		R.seen[0].instance = peer;
		R.seen[0].delivered = 0;
		k = 0;
	}
	R.rx_delivered = &R.seen[k].delivered;
	R.rx_conn_last = R.rx_acked = 0;
	R.n_rx_waiting = 0; /* their ACKs went with the old connection; copies are re-sent */
	R.peer_serve_known = false;
	memset(R.peer_serves, 0, sizeof R.peer_serves);
	if (R.hold)
		evtimer_del(R.hold);
	send_serve();
	/* What the peer had not acknowledged goes again, with the same seqs, before anything
	 * new: the peer delivers those it had not delivered yet and acknowledges all. */
	long n = 0;
	for (struct retry *rt = R.retry_head; rt; rt = rt->next, n++)
		if (send_stanza_frame(rt->seq, rt->xml, rt->len) < 0)
			break;
	R.resent += (uint64_t)n;
	if (n)
		log_info("route: %ld unacknowledged stanzas sent again", n);
	route_admit_start();
}

void route_on_down(void)
{
	route_admit_stop();
	R.losses++;
	memset(R.peer_serves, 0, sizeof R.peer_serves);
	R.peer_serve_known = false;
	hold_start();
	remote_flush();
}

/* ---- receiving ---- */

/* Stanzas on the link are parsed with the client stream's limits (a little looser: the
 * sender stamped addresses and may have added a delay element). */
static struct xml_node *parsed_stanza;
static int parsed_count;

static void ps_open(void *arg, const char *name, const char **attrs) {}
static void ps_stanza(void *arg, struct xml_node *st)
{
	if (parsed_count++ == 0)
		parsed_stanza = st;
	else
		xml_free(st);
}
static void ps_close(void *arg) {}
static void ps_error(void *arg, enum xml_stream_error err) {}

struct xml_node *route_stanza_parse(const char *s, size_t len)
{
	static const char header[] = "<stream:stream xmlns='jabber:client'"
				     " xmlns:stream='http://etherx.jabber.org/streams'>";
	static const struct xml_stream_cb cb = {ps_open, ps_stanza, ps_close, ps_error};
	struct xml_stream_limits lim = {
		.max_stanza_bytes = ROUTE_MAX_PAYLOAD,
		.max_depth = (int)server.cfg.max_xml_depth + 4,
		.max_attrs = 128,
		.max_header_bytes = sizeof header,
	};
	struct xml_stream *xs = xml_stream_new(&lim, &cb, NULL);
	if (!xs)
		return NULL;
	parsed_stanza = NULL;
	parsed_count = 0;
	bool ok = xml_stream_feed(xs, header, sizeof header - 1) == 0 &&
		  xml_stream_feed(xs, s, len) == 0 && parsed_count == 1;
	xml_stream_free(xs);
	struct xml_node *st = parsed_stanza;
	parsed_stanza = NULL;
	if (!ok || !st || (strcmp(st->name, "message") && strcmp(st->name, "presence") &&
			   strcmp(st->name, "iq"))) {
		xml_free(st);
		return NULL;
	}
	return st;
}

/* Delivered at most once per sender instance: a seq at or below the highest one already
 * delivered is a copy sent again after a lost ACK, acknowledged but not delivered. */
static int on_stanza(const char *p, size_t len)
{
	uint64_t seq;
	const char *body;
	size_t body_len;
	if (route_seq_split(p, len, &seq, &body, &body_len) < 0 || seq <= R.rx_conn_last)
		return -1;
	struct xml_node *st = route_stanza_parse(body, body_len);
	struct jid to;
	if (!st || local_to(st, &to) < 0) {
		xml_free(st);
		return -1;
	}
	R.rx_conn_last = seq;
	if (!R.rx_delivered)
		return -1; /* not after route_on_up: cannot happen */
	if (seq <= *R.rx_delivered) {
		R.duplicates++;
		xml_free(st);
		return 0;
	}
	*R.rx_delivered = seq;
	R.received++;
	if (!strcmp(st->name, "presence") && !is_subscription(st)) {
		char bare[JID_BUF];
		if (user_find_loaded(to.local))
			remote_note(jid_bare(&to, bare, sizeof bare), st);
	}
	/* Never forwarded again from here: whatever the peer thinks, it ends on this node. */
	R.rx_current = seq;
	deliver_local(&to, st);
	R.rx_current = 0;
	return 0;
}

uint64_t route_rx_current(void) { return R.rx_current; }

void route_rx_wait(uint64_t seq)
{
	if (R.n_rx_waiting == R.cap_rx_waiting) {
		size_t cap = R.cap_rx_waiting ? 2 * R.cap_rx_waiting : 64;
		struct rx_wait *w = realloc(R.rx_waiting, cap * sizeof *w);
		if (!w)
			return; /* not held: acknowledged as before this existed */
		R.rx_waiting = w;
		R.cap_rx_waiting = cap;
	}
	R.rx_waiting[R.n_rx_waiting++] = (struct rx_wait){seq, clock_mono_ms()};
}

void route_rx_done(uint64_t seq)
{
	for (size_t i = 0; i < R.n_rx_waiting; i++) {
		if (R.rx_waiting[i].seq == seq) {
			R.rx_waiting[i] = R.rx_waiting[--R.n_rx_waiting];
			route_on_batch_end();
			return;
		}
	}
}

/* What the ACK may say: everything received, below the lowest seq still waiting. */
static uint64_t rx_ackable(void)
{
	uint64_t ack = R.rx_conn_last;
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < R.n_rx_waiting;) {
		if (now - R.rx_waiting[i].since_ms > CONN_HOLD_MAX_MS) {
			log_warnx("route: seq %llu waited %d s for the database: acknowledged anyway",
				  (unsigned long long)R.rx_waiting[i].seq, CONN_HOLD_MAX_MS / 1000);
			R.rx_waiting[i] = R.rx_waiting[--R.n_rx_waiting];
			continue;
		}
		if (R.rx_waiting[i].seq <= ack)
			ack = R.rx_waiting[i].seq - 1;
		i++;
	}
	return ack;
}

/* "<a> <b> ...\n<body>" or "<a> <b> ...": the list copied into *list (malloc'd). */
static int split_list(const char *p, size_t len, bool with_body, char **list,
		      const char **body, size_t *body_len)
{
	if (!(*list = malloc(len + 1)))
		return -1;
	if (route_list_split(p, len, with_body, *list, len + 1, body, body_len) < 0) {
		free(*list);
		return -1;
	}
	return 0;
}

static int on_presence(const char *p, size_t len)
{
	char *list;
	const char *body;
	size_t body_len;
	if (split_list(p, len, true, &list, &body, &body_len) < 0)
		return -1;
	struct xml_node *pr = route_stanza_parse(body, body_len);
	if (!pr || strcmp(pr->name, "presence") || is_subscription(pr) ||
	    !xml_get_attr(pr, "from")) {
		xml_free(pr);
		free(list);
		return -1;
	}
	int rc = 0;
	char *save = NULL;
	for (char *b = strtok_r(list, " ", &save); b; b = strtok_r(NULL, " ", &save)) {
		struct jid j;
		if (jid_parse(b, &j) < 0 || !j.local[0] || j.resource[0]) {
			rc = -1;
			break;
		}
		struct user *u = domain_is_local(j.domain) ? user_find_loaded(j.local) : NULL;
		if (!u || !engine_serves(u->home_node))
			continue; /* offline here, or not ours: nothing to show */
		struct xml_node *copy = xml_copy(pr);
		if (!copy)
			continue;
		xml_set_attr(copy, "to", u->bare);
		remote_note(u->bare, copy);
		presence_to_local(&j, copy);
	}
	R.received++;
	xml_free(pr);
	free(list);
	return rc;
}

/* Answer a probe: the presence of every available resource of each listed user that
 * lets the prober see it, sent back over the link. */
static int on_probe(const char *p, size_t len)
{
	char *list;
	if (split_list(p, len, false, &list, NULL, NULL) < 0)
		return -1;
	char *save = NULL;
	const char *prober = strtok_r(list, " ", &save);
	struct jid pj;
	char prober_bare[JID_BUF];
	if (!prober || jid_parse(prober, &pj) < 0 || !pj.local[0] || !domain_is_local(pj.domain)) {
		free(list);
		return -1;
	}
	jid_bare(&pj, prober_bare, sizeof prober_bare);
	int rc = 0;
	for (char *b = strtok_r(NULL, " ", &save); b; b = strtok_r(NULL, " ", &save)) {
		struct jid j;
		if (jid_parse(b, &j) < 0 || !j.local[0] || j.resource[0]) {
			rc = -1;
			break;
		}
		struct user *u = domain_is_local(j.domain) ? user_find_loaded(j.local) : NULL;
		if (!u || !engine_serves(u->home_node))
			continue;
		struct roster_item *it = roster_get(u, prober_bare);
		if (!it || !sub_contact_sees_user(it->st))
			continue;
		for (struct resource *r = u->resources; r; r = r->next) {
			if (!r->presence)
				continue;
			struct xml_node *copy = xml_copy(r->presence);
			if (!copy)
				continue;
			xml_set_attr(copy, "from", r->full);
			xml_set_attr(copy, "to", prober);
			forward(copy, 0); /* presence: not kept */
			xml_free(copy);
		}
	}
	free(list);
	return rc;
}

static int on_ack(const char *p, size_t len)
{
	uint64_t seq;
	if (route_parse_u64(p, len, &seq) < 0 || seq > R.tx_seq)
		return -1;
	while (R.retry_head && R.retry_head->seq <= seq) {
		struct retry *rt = R.retry_head;
		R.retry_head = rt->next;
		if (!R.retry_head)
			R.retry_tail = NULL;
		R.retry_count--;
		free(rt->xml);
		free(rt);
	}
	return 0;
}

static int on_serve(const char *p, size_t len)
{
	bool next[MAX_HOME_NODES + 1];
	if (route_serve_parse(p, len, next) < 0)
		return -1;
	bool lost = false, gained = !R.peer_serve_known;
	for (int n = 1; n <= MAX_HOME_NODES; n++) {
		lost = lost || (R.peer_serves[n] && !next[n]);
		gained = gained || (!R.peer_serves[n] && next[n]);
		R.peer_serves[n] = next[n];
	}
	R.peer_serve_known = true;
	char shown[4 * MAX_HOME_NODES + 2];
	snprintf(shown, sizeof shown, "%.*s", (int)len, p);
	log_info("route: the peer engine serves home nodes %s", shown);
	/* Which remote resource belonged to the node it dropped is not recorded: all of them
	 * go unavailable, then a probe brings back those it still serves. */
	if (lost)
		remote_flush();
	if (lost || gained)
		resync_probes();
	return 0;
}

int route_on_frame(enum route_frame_type type, const char *payload, size_t len)
{
	if (type != ROUTE_SERVE && type != ROUTE_ACK && type != ROUTE_PING &&
	    type != ROUTE_ADMIT && !R.peer_serve_known)
		return -1; /* SERVE comes first after HELLO */
	switch (type) {
	case ROUTE_SERVE:
		return on_serve(payload, len);
	case ROUTE_STANZA:
		return on_stanza(payload, len);
	case ROUTE_PRESENCE:
		return on_presence(payload, len);
	case ROUTE_PROBE:
		return on_probe(payload, len);
	case ROUTE_ACK:
		return on_ack(payload, len);
	case ROUTE_PING:
		return len == 0 ? 0 : -1;
	case ROUTE_ADMIT:
		return route_admit_received(payload, len);
	default:
		return -1;
	}
}

void route_on_batch_end(void)
{
	uint64_t ack = rx_ackable();
	if (ack <= R.rx_acked || !route_link_up())
		return;
	char buf[24];
	int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)ack);
	if (route_link_send(ROUTE_ACK, buf, (size_t)n, NULL, 0) == 0)
		R.rx_acked = ack;
}

void route_stats(char *buf, size_t len)
{
	char serves[4 * MAX_HOME_NODES + 2] = "";
	size_t off = 0;
	for (int n = 1; n <= MAX_HOME_NODES; n++)
		if (R.peer_serves[n])
			off += (size_t)snprintf(serves + off, sizeof serves - off, "%s%d",
						off ? "," : "", n);
	snprintf(buf, len,
		 "route_up=%d route_peer_serves=%s route_forwarded=%llu route_received=%llu"
		 " route_unacked=%zu route_fallbacks=%llu route_losses=%llu route_resent=%llu"
		 " route_duplicates=%llu route_out_pending=%llu",
		 route_link_up() ? 1 : 0, off ? serves : "-", (unsigned long long)R.forwarded,
		 (unsigned long long)R.received, R.retry_count, (unsigned long long)R.fallbacks,
		 (unsigned long long)R.losses, (unsigned long long)R.resent,
		 (unsigned long long)R.duplicates, (unsigned long long)route_link_unwritten());
}
