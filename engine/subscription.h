/* The presence subscription state machine of RFC 6121 (§3 and Appendix A) as a pure
 * transition table: (item state, event) -> (next state, what to do).  No I/O: the caller
 * (engine/presence.c) stores the new item and performs the actions.
 *
 * One item is the relationship "user -> contact" as seen in the user's roster. */
#ifndef DUET_SUBSCRIPTION_H
#define DUET_SUBSCRIPTION_H

#include <stdbool.h>

enum sub_state { SUB_NONE, SUB_TO, SUB_FROM, SUB_BOTH };

struct sub_item {
	bool exists;       /* there is a row at all (visible or only a pending-in record) */
	bool visible;      /* shown in the roster (false: only a stored inbound request) */
	enum sub_state sub;
	bool ask_out;      /* "Pending Out": the user asked to subscribe to the contact */
	bool pending_in;   /* "Pending In": the contact asked, the user has not answered */
	bool preapproved;  /* the user approved in advance (RFC 6121 §3.4) */
};

enum sub_event {
	/* stanzas the user sends about the contact (outbound, user's server side) */
	SUB_OUT_SUBSCRIBE,
	SUB_OUT_SUBSCRIBED,
	SUB_OUT_UNSUBSCRIBE,
	SUB_OUT_UNSUBSCRIBED,
	/* stanzas from the contact arriving for the user (inbound, user's server side) */
	SUB_IN_SUBSCRIBE,
	SUB_IN_SUBSCRIBED,
	SUB_IN_UNSUBSCRIBE,
	SUB_IN_UNSUBSCRIBED,
	SUB_EVENT_COUNT
};

/* Actions, as a bit set. */
enum sub_action {
	SUB_ACT_STORE = 1 << 0,          /* the item changed: write it */
	SUB_ACT_PUSH = 1 << 1,           /* roster push to the user's interested resources */
	SUB_ACT_ROUTE = 1 << 2,          /* outbound: send the stanza on to the contact */
	SUB_ACT_DELIVER = 1 << 3,        /* inbound: deliver the stanza to the user's
					    available resources (or keep it for later) */
	SUB_ACT_AUTO_SUBSCRIBED = 1 << 4, /* inbound subscribe already approved (FROM/BOTH or
					     preapproved): answer 'subscribed' for the user */
	SUB_ACT_SEND_PRESENCE = 1 << 5,  /* send the user's current presence from every
					    available resource to the contact */
	SUB_ACT_SEND_UNAVAILABLE = 1 << 6, /* send unavailable from every available resource
					      to the contact */
	SUB_ACT_PROBE_REPLY = 1 << 7,    /* inbound subscribed: contact's presence will follow;
					    nothing to do for a local contact but may probe */
};

struct sub_outcome {
	struct sub_item next;
	unsigned actions; /* enum sub_action bits */
};

/* The transition.  Pure: same input, same output. */
struct sub_outcome sub_transition(struct sub_item item, enum sub_event ev);

const char *sub_state_name(enum sub_state s); /* "none", "to", "from", "both" */
int sub_state_from_name(const char *name, enum sub_state *out); /* 0 or -1 */
const char *sub_event_name(enum sub_event ev);

/* Does the user receive the contact's presence (TO or BOTH)?  Does the contact receive the
 * user's (FROM or BOTH)? */
bool sub_user_sees_contact(struct sub_item item);
bool sub_contact_sees_user(struct sub_item item);

#endif
