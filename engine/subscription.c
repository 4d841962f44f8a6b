/* RFC 6121 presence subscription state machine as one transition table.
 *
 * The table is indexed by event and by the item's RFC state.  The RFC names nine states
 * (Appendix A.1); pre-approval (§3.4) is only possible while the contact has no subscription
 * and has not asked for one, so it adds three more: "None + Pre", "None + Pending Out + Pre"
 * and "To + Pre".  Every (event, state) cell is filled in; a row says the next state, the
 * stanza actions, and whether the row makes the item a visible roster item.  STORE and PUSH
 * are not in the table: they follow from comparing the input with the result. */
#include "engine/subscription.h"

#include <stddef.h>
#include <string.h>

enum sub_st {
	ST_INVALID,   /* 0: an unfilled table cell; never a real state */
	ST_NONE,      /* "None" (also: no item at all) */
	ST_NONE_PO,   /* "None + Pending Out" */
	ST_NONE_PI,   /* "None + Pending In" */
	ST_NONE_POPI, /* "None + Pending Out+In" */
	ST_TO,        /* "To" */
	ST_TO_PI,     /* "To + Pending In" */
	ST_FROM,      /* "From" */
	ST_FROM_PO,   /* "From + Pending Out" */
	ST_BOTH,      /* "Both" */
	ST_NONE_PA,   /* "None", pre-approved */
	ST_NONE_PO_PA, /* "None + Pending Out", pre-approved */
	ST_TO_PA,     /* "To", pre-approved */
	ST_COUNT
};

struct sub_st_bits {
	enum sub_state sub;
	bool ask_out;
	bool pending_in;
	bool preapproved;
};

static const struct sub_st_bits st_bits[ST_COUNT] = {
	[ST_NONE] = {SUB_NONE, false, false, false},
	[ST_NONE_PO] = {SUB_NONE, true, false, false},
	[ST_NONE_PI] = {SUB_NONE, false, true, false},
	[ST_NONE_POPI] = {SUB_NONE, true, true, false},
	[ST_TO] = {SUB_TO, false, false, false},
	[ST_TO_PI] = {SUB_TO, false, true, false},
	[ST_FROM] = {SUB_FROM, false, false, false},
	[ST_FROM_PO] = {SUB_FROM, true, false, false},
	[ST_BOTH] = {SUB_BOTH, false, false, false},
	[ST_NONE_PA] = {SUB_NONE, false, false, true},
	[ST_NONE_PO_PA] = {SUB_NONE, true, false, true},
	[ST_TO_PA] = {SUB_TO, false, false, true},
};

struct sub_row {
	unsigned char next; /* enum sub_st */
	unsigned char actions; /* SUB_ACT_ROUTE ... SUB_ACT_PROBE_REPLY */
	bool show; /* the item becomes (or stays) a visible roster item */
};

#define ROUTE SUB_ACT_ROUTE
#define DELIVER SUB_ACT_DELIVER
#define AUTO SUB_ACT_AUTO_SUBSCRIBED
#define PRES SUB_ACT_SEND_PRESENCE
#define UNAV SUB_ACT_SEND_UNAVAILABLE
#define PROBE SUB_ACT_PROBE_REPLY
#define R(nx, act, sh) {(unsigned char)(nx), (unsigned char)(act), (sh)}
#define SHOW true
#define KEEP false

/* sub_fsm[event][state].  Comments name the RFC 6121 row; "pre" rows come from §3.4. */
static const struct sub_row sub_fsm[SUB_EVENT_COUNT][ST_COUNT] = {
	/* A.2.1 outbound subscribe: always routed; creates a visible item (§3.1.2). */
	[SUB_OUT_SUBSCRIBE] = {
		[ST_NONE] = R(ST_NONE_PO, ROUTE, SHOW),
		[ST_NONE_PO] = R(ST_NONE_PO, ROUTE, SHOW),
		[ST_NONE_PI] = R(ST_NONE_POPI, ROUTE, SHOW),
		[ST_NONE_POPI] = R(ST_NONE_POPI, ROUTE, SHOW),
		[ST_TO] = R(ST_TO, ROUTE, SHOW),
		[ST_TO_PI] = R(ST_TO_PI, ROUTE, SHOW),
		[ST_FROM] = R(ST_FROM_PO, ROUTE, SHOW),
		[ST_FROM_PO] = R(ST_FROM_PO, ROUTE, SHOW),
		[ST_BOTH] = R(ST_BOTH, ROUTE, SHOW),
		[ST_NONE_PA] = R(ST_NONE_PO_PA, ROUTE, SHOW),
		[ST_NONE_PO_PA] = R(ST_NONE_PO_PA, ROUTE, SHOW),
		[ST_TO_PA] = R(ST_TO_PA, ROUTE, SHOW),
	},
	/* A.2.2 outbound unsubscribe: always routed; drops TO and Pending Out. */
	[SUB_OUT_UNSUBSCRIBE] = {
		[ST_NONE] = R(ST_NONE, ROUTE, KEEP),
		[ST_NONE_PO] = R(ST_NONE, ROUTE, KEEP),
		[ST_NONE_PI] = R(ST_NONE_PI, ROUTE, KEEP),
		[ST_NONE_POPI] = R(ST_NONE_PI, ROUTE, KEEP),
		[ST_TO] = R(ST_NONE, ROUTE, KEEP),
		[ST_TO_PI] = R(ST_NONE_PI, ROUTE, KEEP),
		[ST_FROM] = R(ST_FROM, ROUTE, KEEP),
		[ST_FROM_PO] = R(ST_FROM, ROUTE, KEEP),
		[ST_BOTH] = R(ST_FROM, ROUTE, KEEP),
		[ST_NONE_PA] = R(ST_NONE_PA, ROUTE, KEEP),
		[ST_NONE_PO_PA] = R(ST_NONE_PA, ROUTE, KEEP),
		[ST_TO_PA] = R(ST_NONE_PA, ROUTE, KEEP),
	},
	/* A.2.3 outbound subscribed: approves a pending request (route, then send presence);
	 * without one it is a pre-approval (§3.4: not routed, item created and pushed); when
	 * the contact is already subscribed it is silently ignored. */
	[SUB_OUT_SUBSCRIBED] = {
		[ST_NONE] = R(ST_NONE_PA, 0, SHOW),
		[ST_NONE_PO] = R(ST_NONE_PO_PA, 0, SHOW),
		[ST_NONE_PI] = R(ST_FROM, ROUTE | PRES, SHOW),
		[ST_NONE_POPI] = R(ST_FROM_PO, ROUTE | PRES, SHOW),
		[ST_TO] = R(ST_TO_PA, 0, SHOW),
		[ST_TO_PI] = R(ST_BOTH, ROUTE | PRES, SHOW),
		[ST_FROM] = R(ST_FROM, 0, KEEP),
		[ST_FROM_PO] = R(ST_FROM_PO, 0, KEEP),
		[ST_BOTH] = R(ST_BOTH, 0, KEEP),
		[ST_NONE_PA] = R(ST_NONE_PA, 0, KEEP),
		[ST_NONE_PO_PA] = R(ST_NONE_PO_PA, 0, KEEP),
		[ST_TO_PA] = R(ST_TO_PA, 0, KEEP),
	},
	/* A.2.4 outbound unsubscribed: denies a pending request or cancels FROM (route; when
	 * FROM is cancelled the contact first gets unavailable, §3.2.2).  It also withdraws a
	 * pre-approval, and that alone is not routed (§3.4). */
	[SUB_OUT_UNSUBSCRIBED] = {
		[ST_NONE] = R(ST_NONE, 0, KEEP),
		[ST_NONE_PO] = R(ST_NONE_PO, 0, KEEP),
		[ST_NONE_PI] = R(ST_NONE, ROUTE, KEEP),
		[ST_NONE_POPI] = R(ST_NONE_PO, ROUTE, KEEP),
		[ST_TO] = R(ST_TO, 0, KEEP),
		[ST_TO_PI] = R(ST_TO, ROUTE, KEEP),
		[ST_FROM] = R(ST_NONE, ROUTE | UNAV, KEEP),
		[ST_FROM_PO] = R(ST_NONE_PO, ROUTE | UNAV, KEEP),
		[ST_BOTH] = R(ST_TO, ROUTE | UNAV, KEEP),
		[ST_NONE_PA] = R(ST_NONE, 0, KEEP),
		[ST_NONE_PO_PA] = R(ST_NONE_PO, 0, KEEP),
		[ST_TO_PA] = R(ST_TO, 0, KEEP),
	},
	/* A.3.1 inbound subscribe: a new request is delivered and remembered as Pending In
	 * (without a roster item if there is none, §3.1.3); a repeated one is not delivered
	 * again; an already subscribed or pre-approved contact gets an automatic 'subscribed'
	 * and the user's presence. */
	[SUB_IN_SUBSCRIBE] = {
		[ST_NONE] = R(ST_NONE_PI, DELIVER, KEEP),
		[ST_NONE_PO] = R(ST_NONE_POPI, DELIVER, KEEP),
		[ST_NONE_PI] = R(ST_NONE_PI, 0, KEEP),
		[ST_NONE_POPI] = R(ST_NONE_POPI, 0, KEEP),
		[ST_TO] = R(ST_TO_PI, DELIVER, KEEP),
		[ST_TO_PI] = R(ST_TO_PI, 0, KEEP),
		[ST_FROM] = R(ST_FROM, AUTO | PRES, KEEP),
		[ST_FROM_PO] = R(ST_FROM_PO, AUTO | PRES, KEEP),
		[ST_BOTH] = R(ST_BOTH, AUTO | PRES, KEEP),
		[ST_NONE_PA] = R(ST_FROM, AUTO | PRES, KEEP),
		[ST_NONE_PO_PA] = R(ST_FROM_PO, AUTO | PRES, KEEP),
		[ST_TO_PA] = R(ST_BOTH, AUTO | PRES, KEEP),
	},
	/* A.3.3 inbound subscribed: honoured only while the user has asked (Pending Out);
	 * otherwise ignored, not delivered. */
	[SUB_IN_SUBSCRIBED] = {
		[ST_NONE] = R(ST_NONE, 0, KEEP),
		[ST_NONE_PO] = R(ST_TO, DELIVER | PROBE, KEEP),
		[ST_NONE_PI] = R(ST_NONE_PI, 0, KEEP),
		[ST_NONE_POPI] = R(ST_TO_PI, DELIVER | PROBE, KEEP),
		[ST_TO] = R(ST_TO, 0, KEEP),
		[ST_TO_PI] = R(ST_TO_PI, 0, KEEP),
		[ST_FROM] = R(ST_FROM, 0, KEEP),
		[ST_FROM_PO] = R(ST_BOTH, DELIVER | PROBE, KEEP),
		[ST_BOTH] = R(ST_BOTH, 0, KEEP),
		[ST_NONE_PA] = R(ST_NONE_PA, 0, KEEP),
		[ST_NONE_PO_PA] = R(ST_TO_PA, DELIVER | PROBE, KEEP),
		[ST_TO_PA] = R(ST_TO_PA, 0, KEEP),
	},
	/* A.3.2 inbound unsubscribe: the contact withdraws its request (Pending In) or stops
	 * watching (FROM; the contact then gets unavailable from the user's resources,
	 * §3.3.3).  Ignored when there is nothing to withdraw. */
	[SUB_IN_UNSUBSCRIBE] = {
		[ST_NONE] = R(ST_NONE, 0, KEEP),
		[ST_NONE_PO] = R(ST_NONE_PO, 0, KEEP),
		[ST_NONE_PI] = R(ST_NONE, DELIVER, KEEP),
		[ST_NONE_POPI] = R(ST_NONE_PO, DELIVER, KEEP),
		[ST_TO] = R(ST_TO, 0, KEEP),
		[ST_TO_PI] = R(ST_TO, DELIVER, KEEP),
		[ST_FROM] = R(ST_NONE, DELIVER | UNAV, KEEP),
		[ST_FROM_PO] = R(ST_NONE_PO, DELIVER | UNAV, KEEP),
		[ST_BOTH] = R(ST_TO, DELIVER | UNAV, KEEP),
		[ST_NONE_PA] = R(ST_NONE_PA, 0, KEEP),
		[ST_NONE_PO_PA] = R(ST_NONE_PO_PA, 0, KEEP),
		[ST_TO_PA] = R(ST_TO_PA, 0, KEEP),
	},
	/* A.3.4 inbound unsubscribed: the contact denies the user's request (Pending Out) or
	 * cancels the user's subscription (TO).  Ignored when there is nothing to cancel. */
	[SUB_IN_UNSUBSCRIBED] = {
		[ST_NONE] = R(ST_NONE, 0, KEEP),
		[ST_NONE_PO] = R(ST_NONE, DELIVER, KEEP),
		[ST_NONE_PI] = R(ST_NONE_PI, 0, KEEP),
		[ST_NONE_POPI] = R(ST_NONE_PI, DELIVER, KEEP),
		[ST_TO] = R(ST_NONE, DELIVER, KEEP),
		[ST_TO_PI] = R(ST_NONE_PI, DELIVER, KEEP),
		[ST_FROM] = R(ST_FROM, 0, KEEP),
		[ST_FROM_PO] = R(ST_FROM, DELIVER, KEEP),
		[ST_BOTH] = R(ST_FROM, DELIVER, KEEP),
		[ST_NONE_PA] = R(ST_NONE_PA, 0, KEEP),
		[ST_NONE_PO_PA] = R(ST_NONE_PA, DELIVER, KEEP),
		[ST_TO_PA] = R(ST_NONE_PA, DELIVER, KEEP),
	},
};

#undef ROUTE
#undef DELIVER
#undef AUTO
#undef PRES
#undef UNAV
#undef PROBE
#undef R
#undef SHOW
#undef KEEP

static bool state_has_to(enum sub_state s) { return s == SUB_TO || s == SUB_BOTH; }

static bool state_has_from(enum sub_state s) { return s == SUB_FROM || s == SUB_BOTH; }

/* Bring a stored item into one of the twelve states.  Items come from the database (or a
 * replica), so a broken combination must not crash or wedge the machine: flags that the
 * primary state contradicts are dropped, and anything but a bare Pending In record is a
 * visible roster item. */
static struct sub_item item_normalize(struct sub_item in)
{
	struct sub_item it = {0};

	if (!in.exists)
		return it;
	it.exists = true;
	switch (in.sub) {
	case SUB_NONE:
	case SUB_TO:
	case SUB_FROM:
	case SUB_BOTH:
		it.sub = in.sub;
		break;
	default:
		it.sub = SUB_NONE;
		break;
	}
	it.ask_out = in.ask_out && !state_has_to(it.sub);
	it.pending_in = in.pending_in && !state_has_from(it.sub);
	/* A pre-approval is consumed by the next request, so it cannot coexist with one. */
	it.preapproved = in.preapproved && !state_has_from(it.sub) && !it.pending_in;
	it.visible = in.visible || it.sub != SUB_NONE || it.ask_out || it.preapproved;
	if (!it.visible && !it.pending_in)
		return (struct sub_item){0}; /* an invisible record of nothing */
	return it;
}

static enum sub_st item_state(const struct sub_item *it)
{
	switch (it->sub) {
	case SUB_TO:
		if (it->preapproved)
			return ST_TO_PA;
		return it->pending_in ? ST_TO_PI : ST_TO;
	case SUB_FROM:
		return it->ask_out ? ST_FROM_PO : ST_FROM;
	case SUB_BOTH:
		return ST_BOTH;
	case SUB_NONE:
	default:
		if (it->preapproved)
			return it->ask_out ? ST_NONE_PO_PA : ST_NONE_PA;
		if (it->ask_out)
			return it->pending_in ? ST_NONE_POPI : ST_NONE_PO;
		return it->pending_in ? ST_NONE_PI : ST_NONE;
	}
}

/* Two items are the same row; "no row" equals "no row" whatever the other fields say. */
static bool item_equal(const struct sub_item *a, const struct sub_item *b)
{
	if (!a->exists && !b->exists)
		return true;
	return a->exists == b->exists && a->visible == b->visible && a->sub == b->sub &&
	       a->ask_out == b->ask_out && a->pending_in == b->pending_in &&
	       a->preapproved == b->preapproved;
}

/* What the user's roster shows about the item changed (RFC 6121 §2.1.2: subscription, ask,
 * approved). */
static bool item_roster_changed(const struct sub_item *a, const struct sub_item *b)
{
	return a->sub != b->sub || a->ask_out != b->ask_out || a->preapproved != b->preapproved;
}

struct sub_outcome sub_transition(struct sub_item item, enum sub_event ev)
{
	struct sub_item cur = item_normalize(item);
	struct sub_outcome out = {.next = cur, .actions = 0};
	enum sub_st st = item_state(&cur);

	if ((unsigned)ev < SUB_EVENT_COUNT && sub_fsm[ev][st].next != ST_INVALID) {
		const struct sub_row *row = &sub_fsm[ev][st];
		const struct sub_st_bits *bits = &st_bits[row->next];
		struct sub_item nx;

		nx.sub = bits->sub;
		nx.ask_out = bits->ask_out;
		nx.pending_in = bits->pending_in;
		nx.preapproved = bits->preapproved;
		nx.visible = cur.visible || row->show;
		/* An invisible record lives only as long as the request it stores. */
		nx.exists = nx.visible || nx.pending_in;
		if (!nx.exists)
			nx = (struct sub_item){0};
		out.next = nx;
		out.actions = row->actions;
	}
	if (!item_equal(&out.next, &item))
		out.actions |= SUB_ACT_STORE;
	if (out.next.visible && (!cur.visible || item_roster_changed(&cur, &out.next)))
		out.actions |= SUB_ACT_PUSH;
	return out;
}

static const char *const sub_state_names[] = {
	[SUB_NONE] = "none",
	[SUB_TO] = "to",
	[SUB_FROM] = "from",
	[SUB_BOTH] = "both",
};

const char *sub_state_name(enum sub_state s)
{
	if ((unsigned)s >= sizeof sub_state_names / sizeof sub_state_names[0])
		return "unknown";
	return sub_state_names[s];
}

int sub_state_from_name(const char *name, enum sub_state *out)
{
	if (name == NULL || out == NULL)
		return -1;
	for (size_t i = 0; i < sizeof sub_state_names / sizeof sub_state_names[0]; i++) {
		if (strcmp(name, sub_state_names[i]) == 0) {
			*out = (enum sub_state)i;
			return 0;
		}
	}
	return -1;
}

static const char *const sub_event_names[SUB_EVENT_COUNT] = {
	[SUB_OUT_SUBSCRIBE] = "out-subscribe",
	[SUB_OUT_SUBSCRIBED] = "out-subscribed",
	[SUB_OUT_UNSUBSCRIBE] = "out-unsubscribe",
	[SUB_OUT_UNSUBSCRIBED] = "out-unsubscribed",
	[SUB_IN_SUBSCRIBE] = "in-subscribe",
	[SUB_IN_SUBSCRIBED] = "in-subscribed",
	[SUB_IN_UNSUBSCRIBE] = "in-unsubscribe",
	[SUB_IN_UNSUBSCRIBED] = "in-unsubscribed",
};

const char *sub_event_name(enum sub_event ev)
{
	if ((unsigned)ev >= SUB_EVENT_COUNT)
		return "unknown";
	return sub_event_names[ev];
}

bool sub_user_sees_contact(struct sub_item item)
{
	return item.exists && state_has_to(item.sub);
}

bool sub_contact_sees_user(struct sub_item item)
{
	return item.exists && state_has_from(item.sub);
}
