/* Where a stanza goes (RFC 6121 §8): from a client to a local user, the server itself, or
 * nowhere (no server-to-server: other domains are unreachable).  Each kind of stanza has
 * its own file; this one only decides the addressee. */
#include <string.h>
#include <strings.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "lib/log.h"

bool domain_is_local(const char *domain) { return !strcasecmp(domain, server.cfg.domain); }

void route_from_client(struct resource *from, struct xml_node *st)
{
	const char *to = xml_get_attr(st, "to");
	struct jid j;
	if (to && jid_parse(to, &j) < 0) {
		stanza_bounce(from, st, "modify", "jid-malformed");
		xml_free(st);
		return;
	}
	if (to && !domain_is_local(j.domain)) {
		/* No federation in a presence redundancy group. */
		stanza_bounce(from, st, "cancel", "remote-server-not-found");
		xml_free(st);
		return;
	}
	if (!strcmp(st->name, "message"))
		message_from_client(from, st);
	else if (!strcmp(st->name, "presence"))
		presence_from_client(from, st);
	else
		iq_from_client(from, st);
}

void route_to_local(const struct jid *to, struct xml_node *st)
{
	/* Pair hook (engine/route.c): a user served by the peer engine gets it over the route
	 * link; with no route link configured this is always false. */
	if (route_intercept(to, st))
		return;
	route_deliver_local(to, st);
}

void route_deliver_local(const struct jid *to, struct xml_node *st)
{
	if (!strcmp(st->name, "message"))
		message_to_local(to, st);
	else if (!strcmp(st->name, "presence"))
		presence_to_local(to, st);
	else
		iq_to_local(to, st);
}
