/* Tests for engine/subscription.c: one test per row of RFC 6121 Appendix A (plus the §3.4
 * pre-approval rows and our no-item / pending-in-record rows), then properties over every
 * (state, event) pair and a two-party simulation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/subscription.h"

#define STORE SUB_ACT_STORE
#define PUSH SUB_ACT_PUSH
#define ROUTE SUB_ACT_ROUTE
#define DELIVER SUB_ACT_DELIVER
#define AUTO SUB_ACT_AUTO_SUBSCRIBED
#define PRES SUB_ACT_SEND_PRESENCE
#define UNAV SUB_ACT_SEND_UNAVAILABLE
#define PROBE SUB_ACT_PROBE_REPLY

/* A visible roster item in one of the RFC states. */
#define IT(s, ask, pin, pre)                                                                 \
	{                                                                                    \
		.exists = true, .visible = true, .sub = SUB_##s, .ask_out = (ask),           \
		.pending_in = (pin), .preapproved = (pre)                                    \
	}
#define S_NONE IT(NONE, 0, 0, 0)
#define S_NONE_PO IT(NONE, 1, 0, 0)
#define S_NONE_PI IT(NONE, 0, 1, 0)
#define S_NONE_POPI IT(NONE, 1, 1, 0)
#define S_TO IT(TO, 0, 0, 0)
#define S_TO_PI IT(TO, 0, 1, 0)
#define S_FROM IT(FROM, 0, 0, 0)
#define S_FROM_PO IT(FROM, 1, 0, 0)
#define S_BOTH IT(BOTH, 0, 0, 0)
#define S_NONE_PA IT(NONE, 0, 0, 1)
#define S_NONE_PO_PA IT(NONE, 1, 0, 1)
#define S_TO_PA IT(TO, 0, 0, 1)
#define S_NOITEM {0}
/* An inbound request from someone not in the roster (§3.1.3): stored, not shown. */
#define S_HIDDEN_PI {.exists = true, .visible = false, .sub = SUB_NONE, .pending_in = true}

struct row_case {
	const char *rfc; /* the RFC 6121 row this case checks */
	enum sub_event ev;
	struct sub_item in;
	struct sub_item want;
	unsigned acts;
};

#define ROW(rfc, ev, in, want, acts) {rfc, SUB_##ev, in, want, acts}

/* Expected outcomes, written from RFC 6121 Appendix A (existing state, route/deliver, new
 * state) and §3.4 (pre-approval).  "same" = no state change in the RFC table. */
static const struct row_case rows[] = {
	/* A.2.1 Outbound subscribe: MUST route in every state. */
	ROW("A.2.1 None -> None+PendingOut", OUT_SUBSCRIBE, S_NONE, S_NONE_PO, ROUTE | STORE | PUSH),
	ROW("A.2.1 None+PendingOut same", OUT_SUBSCRIBE, S_NONE_PO, S_NONE_PO, ROUTE),
	ROW("A.2.1 None+PendingIn -> None+PendingOut+In", OUT_SUBSCRIBE, S_NONE_PI, S_NONE_POPI,
	    ROUTE | STORE | PUSH),
	ROW("A.2.1 None+PendingOut+In same", OUT_SUBSCRIBE, S_NONE_POPI, S_NONE_POPI, ROUTE),
	ROW("A.2.1 To same", OUT_SUBSCRIBE, S_TO, S_TO, ROUTE),
	ROW("A.2.1 To+PendingIn same", OUT_SUBSCRIBE, S_TO_PI, S_TO_PI, ROUTE),
	ROW("A.2.1 From -> From+PendingOut", OUT_SUBSCRIBE, S_FROM, S_FROM_PO, ROUTE | STORE | PUSH),
	ROW("A.2.1 From+PendingOut same", OUT_SUBSCRIBE, S_FROM_PO, S_FROM_PO, ROUTE),
	ROW("A.2.1 Both same", OUT_SUBSCRIBE, S_BOTH, S_BOTH, ROUTE),
	ROW("A.2.1+3.1.2 no item -> visible None+PendingOut", OUT_SUBSCRIBE, S_NOITEM, S_NONE_PO,
	    ROUTE | STORE | PUSH),
	ROW("A.2.1+3.1.3 hidden None+PendingIn -> visible None+PendingOut+In", OUT_SUBSCRIBE,
	    S_HIDDEN_PI, S_NONE_POPI, ROUTE | STORE | PUSH),
	ROW("A.2.1+3.4 None+Pre -> None+PendingOut+Pre", OUT_SUBSCRIBE, S_NONE_PA, S_NONE_PO_PA,
	    ROUTE | STORE | PUSH),
	ROW("A.2.1+3.4 None+PendingOut+Pre same", OUT_SUBSCRIBE, S_NONE_PO_PA, S_NONE_PO_PA, ROUTE),
	ROW("A.2.1+3.4 To+Pre same", OUT_SUBSCRIBE, S_TO_PA, S_TO_PA, ROUTE),

	/* A.2.2 Outbound unsubscribe: MUST route in every state. */
	ROW("A.2.2 None same", OUT_UNSUBSCRIBE, S_NONE, S_NONE, ROUTE),
	ROW("A.2.2 None+PendingOut -> None", OUT_UNSUBSCRIBE, S_NONE_PO, S_NONE, ROUTE | STORE | PUSH),
	ROW("A.2.2 None+PendingIn same", OUT_UNSUBSCRIBE, S_NONE_PI, S_NONE_PI, ROUTE),
	ROW("A.2.2 None+PendingOut+In -> None+PendingIn", OUT_UNSUBSCRIBE, S_NONE_POPI, S_NONE_PI,
	    ROUTE | STORE | PUSH),
	ROW("A.2.2 To -> None", OUT_UNSUBSCRIBE, S_TO, S_NONE, ROUTE | STORE | PUSH),
	ROW("A.2.2 To+PendingIn -> None+PendingIn", OUT_UNSUBSCRIBE, S_TO_PI, S_NONE_PI,
	    ROUTE | STORE | PUSH),
	ROW("A.2.2 From same", OUT_UNSUBSCRIBE, S_FROM, S_FROM, ROUTE),
	ROW("A.2.2 From+PendingOut -> From", OUT_UNSUBSCRIBE, S_FROM_PO, S_FROM, ROUTE | STORE | PUSH),
	ROW("A.2.2 Both -> From", OUT_UNSUBSCRIBE, S_BOTH, S_FROM, ROUTE | STORE | PUSH),
	ROW("A.2.2 no item same", OUT_UNSUBSCRIBE, S_NOITEM, S_NOITEM, ROUTE),
	ROW("A.2.2 hidden None+PendingIn same", OUT_UNSUBSCRIBE, S_HIDDEN_PI, S_HIDDEN_PI, ROUTE),
	ROW("A.2.2+3.4 None+Pre same", OUT_UNSUBSCRIBE, S_NONE_PA, S_NONE_PA, ROUTE),
	ROW("A.2.2+3.4 None+PendingOut+Pre -> None+Pre", OUT_UNSUBSCRIBE, S_NONE_PO_PA, S_NONE_PA,
	    ROUTE | STORE | PUSH),
	ROW("A.2.2+3.4 To+Pre -> None+Pre", OUT_UNSUBSCRIBE, S_TO_PA, S_NONE_PA, ROUTE | STORE | PUSH),

	/* A.2.3 Outbound subscribed: route only when approving Pending In; else pre-approval. */
	ROW("A.2.3 None -> pre-approval", OUT_SUBSCRIBED, S_NONE, S_NONE_PA, STORE | PUSH),
	ROW("A.2.3 None+PendingOut -> pre-approval", OUT_SUBSCRIBED, S_NONE_PO, S_NONE_PO_PA,
	    STORE | PUSH),
	ROW("A.2.3 None+PendingIn -> From", OUT_SUBSCRIBED, S_NONE_PI, S_FROM,
	    ROUTE | PRES | STORE | PUSH),
	ROW("A.2.3 None+PendingOut+In -> From+PendingOut", OUT_SUBSCRIBED, S_NONE_POPI, S_FROM_PO,
	    ROUTE | PRES | STORE | PUSH),
	ROW("A.2.3 To -> pre-approval", OUT_SUBSCRIBED, S_TO, S_TO_PA, STORE | PUSH),
	ROW("A.2.3 To+PendingIn -> Both", OUT_SUBSCRIBED, S_TO_PI, S_BOTH, ROUTE | PRES | STORE | PUSH),
	ROW("A.2.3 From same, not routed", OUT_SUBSCRIBED, S_FROM, S_FROM, 0),
	ROW("A.2.3 From+PendingOut same, not routed", OUT_SUBSCRIBED, S_FROM_PO, S_FROM_PO, 0),
	ROW("A.2.3 Both same, not routed", OUT_SUBSCRIBED, S_BOTH, S_BOTH, 0),
	ROW("A.2.3+3.4 no item -> visible None+Pre", OUT_SUBSCRIBED, S_NOITEM, S_NONE_PA, STORE | PUSH),
	ROW("A.2.3+3.1.5 hidden None+PendingIn -> visible From", OUT_SUBSCRIBED, S_HIDDEN_PI, S_FROM,
	    ROUTE | PRES | STORE | PUSH),
	ROW("A.2.3+3.4 None+Pre same", OUT_SUBSCRIBED, S_NONE_PA, S_NONE_PA, 0),
	ROW("A.2.3+3.4 None+PendingOut+Pre same", OUT_SUBSCRIBED, S_NONE_PO_PA, S_NONE_PO_PA, 0),
	ROW("A.2.3+3.4 To+Pre same", OUT_SUBSCRIBED, S_TO_PA, S_TO_PA, 0),

	/* A.2.4 Outbound unsubscribed: route only when denying Pending In or cancelling From. */
	ROW("A.2.4 None same, not routed", OUT_UNSUBSCRIBED, S_NONE, S_NONE, 0),
	ROW("A.2.4 None+PendingOut same, not routed", OUT_UNSUBSCRIBED, S_NONE_PO, S_NONE_PO, 0),
	ROW("A.2.4 None+PendingIn -> None", OUT_UNSUBSCRIBED, S_NONE_PI, S_NONE, ROUTE | STORE),
	ROW("A.2.4 None+PendingOut+In -> None+PendingOut", OUT_UNSUBSCRIBED, S_NONE_POPI, S_NONE_PO,
	    ROUTE | STORE),
	ROW("A.2.4 To same, not routed", OUT_UNSUBSCRIBED, S_TO, S_TO, 0),
	ROW("A.2.4 To+PendingIn -> To", OUT_UNSUBSCRIBED, S_TO_PI, S_TO, ROUTE | STORE),
	ROW("A.2.4 From -> None", OUT_UNSUBSCRIBED, S_FROM, S_NONE, ROUTE | UNAV | STORE | PUSH),
	ROW("A.2.4 From+PendingOut -> None+PendingOut", OUT_UNSUBSCRIBED, S_FROM_PO, S_NONE_PO,
	    ROUTE | UNAV | STORE | PUSH),
	ROW("A.2.4 Both -> To", OUT_UNSUBSCRIBED, S_BOTH, S_TO, ROUTE | UNAV | STORE | PUSH),
	ROW("A.2.4 no item same, not routed", OUT_UNSUBSCRIBED, S_NOITEM, S_NOITEM, 0),
	ROW("A.2.4+3.2.1 hidden None+PendingIn -> record deleted", OUT_UNSUBSCRIBED, S_HIDDEN_PI,
	    S_NOITEM, ROUTE | STORE),
	ROW("A.2.4+3.4 None+Pre -> None, not routed", OUT_UNSUBSCRIBED, S_NONE_PA, S_NONE,
	    STORE | PUSH),
	ROW("A.2.4+3.4 None+PendingOut+Pre -> None+PendingOut, not routed", OUT_UNSUBSCRIBED,
	    S_NONE_PO_PA, S_NONE_PO, STORE | PUSH),
	ROW("A.2.4+3.4 To+Pre -> To, not routed", OUT_UNSUBSCRIBED, S_TO_PA, S_TO, STORE | PUSH),

	/* A.3.1 Inbound subscribe. */
	ROW("A.3.1 None -> None+PendingIn", IN_SUBSCRIBE, S_NONE, S_NONE_PI, DELIVER | STORE),
	ROW("A.3.1 None+PendingOut -> None+PendingOut+In", IN_SUBSCRIBE, S_NONE_PO, S_NONE_POPI,
	    DELIVER | STORE),
	ROW("A.3.1 None+PendingIn same, not delivered", IN_SUBSCRIBE, S_NONE_PI, S_NONE_PI, 0),
	ROW("A.3.1 None+PendingOut+In same, not delivered", IN_SUBSCRIBE, S_NONE_POPI, S_NONE_POPI, 0),
	ROW("A.3.1 To -> To+PendingIn", IN_SUBSCRIBE, S_TO, S_TO_PI, DELIVER | STORE),
	ROW("A.3.1 To+PendingIn same, not delivered", IN_SUBSCRIBE, S_TO_PI, S_TO_PI, 0),
	ROW("A.3.1 From same, auto-reply subscribed", IN_SUBSCRIBE, S_FROM, S_FROM, AUTO | PRES),
	ROW("A.3.1 From+PendingOut same, auto-reply subscribed", IN_SUBSCRIBE, S_FROM_PO, S_FROM_PO,
	    AUTO | PRES),
	ROW("A.3.1 Both same, auto-reply subscribed", IN_SUBSCRIBE, S_BOTH, S_BOTH, AUTO | PRES),
	ROW("A.3.1+3.1.3 no item -> hidden None+PendingIn", IN_SUBSCRIBE, S_NOITEM, S_HIDDEN_PI,
	    DELIVER | STORE),
	ROW("A.3.1 hidden None+PendingIn same, not delivered", IN_SUBSCRIBE, S_HIDDEN_PI, S_HIDDEN_PI,
	    0),
	ROW("A.3.1+3.4 None+Pre -> From, auto-approved", IN_SUBSCRIBE, S_NONE_PA, S_FROM,
	    AUTO | PRES | STORE | PUSH),
	ROW("A.3.1+3.4 None+PendingOut+Pre -> From+PendingOut, auto-approved", IN_SUBSCRIBE,
	    S_NONE_PO_PA, S_FROM_PO, AUTO | PRES | STORE | PUSH),
	ROW("A.3.1+3.4 To+Pre -> Both, auto-approved", IN_SUBSCRIBE, S_TO_PA, S_BOTH,
	    AUTO | PRES | STORE | PUSH),

	/* A.3.2 Inbound unsubscribe. */
	ROW("A.3.2 None same, not delivered", IN_UNSUBSCRIBE, S_NONE, S_NONE, 0),
	ROW("A.3.2 None+PendingOut same, not delivered", IN_UNSUBSCRIBE, S_NONE_PO, S_NONE_PO, 0),
	ROW("A.3.2 None+PendingIn -> None", IN_UNSUBSCRIBE, S_NONE_PI, S_NONE, DELIVER | STORE),
	ROW("A.3.2 None+PendingOut+In -> None+PendingOut", IN_UNSUBSCRIBE, S_NONE_POPI, S_NONE_PO,
	    DELIVER | STORE),
	ROW("A.3.2 To same, not delivered", IN_UNSUBSCRIBE, S_TO, S_TO, 0),
	ROW("A.3.2 To+PendingIn -> To", IN_UNSUBSCRIBE, S_TO_PI, S_TO, DELIVER | STORE),
	ROW("A.3.2 From -> None", IN_UNSUBSCRIBE, S_FROM, S_NONE, DELIVER | UNAV | STORE | PUSH),
	ROW("A.3.2 From+PendingOut -> None+PendingOut", IN_UNSUBSCRIBE, S_FROM_PO, S_NONE_PO,
	    DELIVER | UNAV | STORE | PUSH),
	ROW("A.3.2 Both -> To", IN_UNSUBSCRIBE, S_BOTH, S_TO, DELIVER | UNAV | STORE | PUSH),
	ROW("A.3.2 no item same", IN_UNSUBSCRIBE, S_NOITEM, S_NOITEM, 0),
	ROW("A.3.2+3.3.3 hidden None+PendingIn -> record deleted", IN_UNSUBSCRIBE, S_HIDDEN_PI,
	    S_NOITEM, DELIVER | STORE),
	ROW("A.3.2+3.4 None+Pre same", IN_UNSUBSCRIBE, S_NONE_PA, S_NONE_PA, 0),
	ROW("A.3.2+3.4 None+PendingOut+Pre same", IN_UNSUBSCRIBE, S_NONE_PO_PA, S_NONE_PO_PA, 0),
	ROW("A.3.2+3.4 To+Pre same", IN_UNSUBSCRIBE, S_TO_PA, S_TO_PA, 0),

	/* A.3.3 Inbound subscribed: honoured only with Pending Out. */
	ROW("A.3.3 None same, ignored", IN_SUBSCRIBED, S_NONE, S_NONE, 0),
	ROW("A.3.3 None+PendingOut -> To", IN_SUBSCRIBED, S_NONE_PO, S_TO,
	    DELIVER | PROBE | STORE | PUSH),
	ROW("A.3.3 None+PendingIn same, ignored", IN_SUBSCRIBED, S_NONE_PI, S_NONE_PI, 0),
	ROW("A.3.3 None+PendingOut+In -> To+PendingIn", IN_SUBSCRIBED, S_NONE_POPI, S_TO_PI,
	    DELIVER | PROBE | STORE | PUSH),
	ROW("A.3.3 To same, ignored", IN_SUBSCRIBED, S_TO, S_TO, 0),
	ROW("A.3.3 To+PendingIn same, ignored", IN_SUBSCRIBED, S_TO_PI, S_TO_PI, 0),
	ROW("A.3.3 From same, ignored", IN_SUBSCRIBED, S_FROM, S_FROM, 0),
	ROW("A.3.3 From+PendingOut -> Both", IN_SUBSCRIBED, S_FROM_PO, S_BOTH,
	    DELIVER | PROBE | STORE | PUSH),
	ROW("A.3.3 Both same, ignored", IN_SUBSCRIBED, S_BOTH, S_BOTH, 0),
	ROW("A.3.3 no item same, ignored", IN_SUBSCRIBED, S_NOITEM, S_NOITEM, 0),
	ROW("A.3.3 hidden None+PendingIn same, ignored", IN_SUBSCRIBED, S_HIDDEN_PI, S_HIDDEN_PI, 0),
	ROW("A.3.3+3.4 None+Pre same, ignored", IN_SUBSCRIBED, S_NONE_PA, S_NONE_PA, 0),
	ROW("A.3.3+3.4 None+PendingOut+Pre -> To+Pre", IN_SUBSCRIBED, S_NONE_PO_PA, S_TO_PA,
	    DELIVER | PROBE | STORE | PUSH),
	ROW("A.3.3+3.4 To+Pre same, ignored", IN_SUBSCRIBED, S_TO_PA, S_TO_PA, 0),

	/* A.3.4 Inbound unsubscribed. */
	ROW("A.3.4 None same, not delivered", IN_UNSUBSCRIBED, S_NONE, S_NONE, 0),
	ROW("A.3.4 None+PendingOut -> None", IN_UNSUBSCRIBED, S_NONE_PO, S_NONE,
	    DELIVER | STORE | PUSH),
	ROW("A.3.4 None+PendingIn same, not delivered", IN_UNSUBSCRIBED, S_NONE_PI, S_NONE_PI, 0),
	ROW("A.3.4 None+PendingOut+In -> None+PendingIn", IN_UNSUBSCRIBED, S_NONE_POPI, S_NONE_PI,
	    DELIVER | STORE | PUSH),
	ROW("A.3.4 To -> None", IN_UNSUBSCRIBED, S_TO, S_NONE, DELIVER | STORE | PUSH),
	ROW("A.3.4 To+PendingIn -> None+PendingIn", IN_UNSUBSCRIBED, S_TO_PI, S_NONE_PI,
	    DELIVER | STORE | PUSH),
	ROW("A.3.4 From same, not delivered", IN_UNSUBSCRIBED, S_FROM, S_FROM, 0),
	ROW("A.3.4 From+PendingOut -> From", IN_UNSUBSCRIBED, S_FROM_PO, S_FROM, DELIVER | STORE | PUSH),
	ROW("A.3.4 Both -> From", IN_UNSUBSCRIBED, S_BOTH, S_FROM, DELIVER | STORE | PUSH),
	ROW("A.3.4 no item same", IN_UNSUBSCRIBED, S_NOITEM, S_NOITEM, 0),
	ROW("A.3.4 hidden None+PendingIn same", IN_UNSUBSCRIBED, S_HIDDEN_PI, S_HIDDEN_PI, 0),
	ROW("A.3.4+3.4 None+Pre same", IN_UNSUBSCRIBED, S_NONE_PA, S_NONE_PA, 0),
	ROW("A.3.4+3.4 None+PendingOut+Pre -> None+Pre", IN_UNSUBSCRIBED, S_NONE_PO_PA, S_NONE_PA,
	    DELIVER | STORE | PUSH),
	ROW("A.3.4+3.4 To+Pre -> None+Pre", IN_UNSUBSCRIBED, S_TO_PA, S_NONE_PA,
	    DELIVER | STORE | PUSH),
};

#define NROWS (sizeof rows / sizeof rows[0])

static void item_print(const char *label, struct sub_item it)
{
	print_message("%s: exists=%d visible=%d sub=%s ask_out=%d pending_in=%d pre=%d\n", label,
		      it.exists, it.visible, sub_state_name(it.sub), it.ask_out, it.pending_in,
		      it.preapproved);
}

static bool item_same(struct sub_item a, struct sub_item b)
{
	return a.exists == b.exists && a.visible == b.visible && a.sub == b.sub &&
	       a.ask_out == b.ask_out && a.pending_in == b.pending_in &&
	       a.preapproved == b.preapproved;
}

static void test_row(void **state)
{
	const struct row_case *rc = *state;
	struct sub_outcome o = sub_transition(rc->in, rc->ev);

	if (!item_same(o.next, rc->want)) {
		item_print("got ", o.next);
		item_print("want", rc->want);
	}
	assert_true(item_same(o.next, rc->want));
	assert_int_equal(o.actions, rc->acts);
}

/* --- properties over every input --------------------------------------------------- */

static bool has_to(enum sub_state s) { return s == SUB_TO || s == SUB_BOTH; }
static bool has_from(enum sub_state s) { return s == SUB_FROM || s == SUB_BOTH; }

/* The item invariants the engine relies on. */
static bool item_consistent(struct sub_item it)
{
	if (!it.exists)
		return !it.visible && it.sub == SUB_NONE && !it.ask_out && !it.pending_in &&
		       !it.preapproved;
	if (it.sub != SUB_NONE && it.sub != SUB_TO && it.sub != SUB_FROM && it.sub != SUB_BOTH)
		return false;
	if (it.ask_out && has_to(it.sub))
		return false;
	if (it.pending_in && has_from(it.sub))
		return false;
	if (it.preapproved && (has_from(it.sub) || it.pending_in))
		return false;
	if (!it.visible)
		return it.sub == SUB_NONE && !it.ask_out && !it.preapproved && it.pending_in;
	return true;
}

/* Every raw combination of the stored fields, including broken ones and a bad enum. */
#define RAW_SUBS 5
static struct sub_item raw_item(unsigned n)
{
	static const enum sub_state subs[RAW_SUBS] = {SUB_NONE, SUB_TO, SUB_FROM, SUB_BOTH,
						      (enum sub_state)7};
	struct sub_item it;

	it.exists = n & 1;
	it.visible = (n >> 1) & 1;
	it.ask_out = (n >> 2) & 1;
	it.pending_in = (n >> 3) & 1;
	it.preapproved = (n >> 4) & 1;
	it.sub = subs[(n >> 5) % RAW_SUBS];
	return it;
}
#define RAW_COUNT (32u * RAW_SUBS)

static bool is_outbound(enum sub_event ev) { return ev <= SUB_OUT_UNSUBSCRIBED; }

static void test_total_and_consistent(void **state)
{
	(void)state;
	for (unsigned n = 0; n < RAW_COUNT; n++) {
		struct sub_item in = raw_item(n);
		for (int e = -1; e <= SUB_EVENT_COUNT + 3; e++) {
			struct sub_outcome o = sub_transition(in, (enum sub_event)e);
			assert_true(item_consistent(o.next));
			if (e < 0 || e >= SUB_EVENT_COUNT) {
				/* unknown event: nothing to do beyond repairing the item */
				assert_int_equal(o.actions & ~(unsigned)(STORE | PUSH), 0);
				continue;
			}
			/* STORE exactly when the row changes ("no row" == "no row") */
			bool changed = !(in.exists == false && o.next.exists == false) &&
				       !item_same(in, o.next);
			assert_int_equal(!!(o.actions & STORE), changed);
			if (o.actions & PUSH)
				assert_true(o.next.visible);
			if (is_outbound((enum sub_event)e))
				assert_int_equal(o.actions & (DELIVER | AUTO | PROBE), 0);
			else
				assert_int_equal(o.actions & ROUTE, 0);
		}
	}
}

/* For consistent inputs: presence/unavailable follow the FROM bit, PUSH follows what the
 * roster shows, and visible items never disappear. */
static void test_actions_follow_state(void **state)
{
	(void)state;
	for (unsigned n = 0; n < RAW_COUNT; n++) {
		struct sub_item in = raw_item(n);
		if (!item_consistent(in))
			continue;
		for (int e = 0; e < SUB_EVENT_COUNT; e++) {
			struct sub_outcome o = sub_transition(in, (enum sub_event)e);
			struct sub_item nx = o.next;
			if (o.actions & PRES)
				assert_true(sub_contact_sees_user(nx));
			if (o.actions & UNAV)
				assert_true(sub_contact_sees_user(in) && !sub_contact_sees_user(nx));
			if (sub_contact_sees_user(in) && !sub_contact_sees_user(nx))
				assert_true(o.actions & UNAV);
			bool shown_change = nx.visible &&
					    (!in.visible || in.sub != nx.sub ||
					     in.ask_out != nx.ask_out ||
					     in.preapproved != nx.preapproved);
			assert_int_equal(!!(o.actions & PUSH), shown_change);
			if (in.visible)
				assert_true(nx.visible);
		}
	}
}

static void test_idempotent(void **state)
{
	(void)state;
	for (unsigned n = 0; n < RAW_COUNT; n++) {
		for (int e = 0; e < SUB_EVENT_COUNT; e++) {
			struct sub_outcome o1 = sub_transition(raw_item(n), (enum sub_event)e);
			struct sub_outcome o2 = sub_transition(o1.next, (enum sub_event)e);
			assert_true(item_same(o1.next, o2.next));
			assert_int_equal(o2.actions & (STORE | PUSH), 0);
		}
	}
}

/* Repair: a broken stored item is made consistent and written back once. */
static void test_repair(void **state)
{
	(void)state;
	struct sub_item bad = {.exists = true, .visible = false, .sub = SUB_BOTH, .ask_out = true,
			       .pending_in = true, .preapproved = true};
	struct sub_outcome o = sub_transition(bad, SUB_IN_SUBSCRIBED);
	assert_true(item_consistent(o.next));
	assert_int_equal(o.next.sub, SUB_BOTH);
	assert_true(o.next.visible);
	assert_true(o.actions & STORE);

	struct sub_item ghost = {.exists = true, .visible = false};
	o = sub_transition(ghost, SUB_IN_SUBSCRIBED);
	assert_false(o.next.exists);
	assert_true(o.actions & STORE);

	struct sub_item garbage_absent = {.exists = false, .sub = SUB_BOTH, .ask_out = true};
	o = sub_transition(garbage_absent, SUB_IN_SUBSCRIBED);
	assert_false(o.next.exists);
	assert_int_equal(o.actions, 0);
}

/* --- two parties ----------------------------------------------------------------------- */

/* user->contact item of each party (0 = user, 1 = contact) */
struct pair {
	struct sub_item it[2];
};

static const enum sub_event out_to_in[] = {
	[SUB_OUT_SUBSCRIBE] = SUB_IN_SUBSCRIBE,
	[SUB_OUT_SUBSCRIBED] = SUB_IN_SUBSCRIBED,
	[SUB_OUT_UNSUBSCRIBE] = SUB_IN_UNSUBSCRIBE,
	[SUB_OUT_UNSUBSCRIBED] = SUB_IN_UNSUBSCRIBED,
};

/* Party `who` sends `ev`; servers route, deliver and auto-reply with no loss. */
static void pair_send(struct pair *p, int who, enum sub_event ev)
{
	struct sub_outcome o = sub_transition(p->it[who], ev);
	p->it[who] = o.next;
	if (!(o.actions & ROUTE))
		return;
	struct sub_outcome in = sub_transition(p->it[!who], out_to_in[ev]);
	p->it[!who] = in.next;
	if (in.actions & AUTO)
		p->it[who] = sub_transition(p->it[who], SUB_IN_SUBSCRIBED).next;
}

static void test_one_way(void **state)
{
	(void)state;
	struct pair p = {{S_NOITEM, S_NOITEM}};

	/* user's item: outbound subscribe; contact's item: inbound subscribe (hidden record) */
	pair_send(&p, 0, SUB_OUT_SUBSCRIBE);
	assert_true(p.it[0].ask_out && p.it[0].visible);
	assert_true(p.it[1].exists && !p.it[1].visible && p.it[1].pending_in);
	/* contact's item: outbound subscribed; user's item: inbound subscribed */
	pair_send(&p, 1, SUB_OUT_SUBSCRIBED);
	assert_int_equal(p.it[0].sub, SUB_TO);
	assert_false(p.it[0].ask_out);
	assert_int_equal(p.it[1].sub, SUB_FROM);
	assert_true(p.it[1].visible);
	assert_false(p.it[1].pending_in);
	assert_true(sub_user_sees_contact(p.it[0]) && !sub_contact_sees_user(p.it[0]));
	assert_true(sub_contact_sees_user(p.it[1]) && !sub_user_sees_contact(p.it[1]));
}

static void test_mutual(void **state)
{
	(void)state;
	struct pair p = {{S_NOITEM, S_NOITEM}};

	pair_send(&p, 0, SUB_OUT_SUBSCRIBE);
	pair_send(&p, 1, SUB_OUT_SUBSCRIBED);
	pair_send(&p, 1, SUB_OUT_SUBSCRIBE);
	pair_send(&p, 0, SUB_OUT_SUBSCRIBED);
	assert_true(item_same(p.it[0], (struct sub_item)S_BOTH));
	assert_true(item_same(p.it[1], (struct sub_item)S_BOTH));

	/* crossing requests: both ask, both approve */
	struct pair q = {{S_NOITEM, S_NOITEM}};
	pair_send(&q, 0, SUB_OUT_SUBSCRIBE);
	pair_send(&q, 1, SUB_OUT_SUBSCRIBE);
	pair_send(&q, 0, SUB_OUT_SUBSCRIBED);
	pair_send(&q, 1, SUB_OUT_SUBSCRIBED);
	assert_true(item_same(q.it[0], (struct sub_item)S_BOTH));
	assert_true(item_same(q.it[1], (struct sub_item)S_BOTH));

	/* pre-approval: the contact approves first, the user's request is answered at once */
	struct pair r = {{S_NOITEM, S_NOITEM}};
	pair_send(&r, 1, SUB_OUT_SUBSCRIBED);
	assert_true(item_same(r.it[1], (struct sub_item)S_NONE_PA));
	assert_false(r.it[0].exists); /* pre-approval is not routed */
	pair_send(&r, 0, SUB_OUT_SUBSCRIBE);
	assert_int_equal(r.it[0].sub, SUB_TO);
	assert_int_equal(r.it[1].sub, SUB_FROM);
	assert_false(r.it[1].preapproved);
}

/* Every sequence of up to DEPTH stanzas from either side, delivered without loss, keeps
 * both rosters telling the same story: user TO <=> contact FROM, user Pending Out <=>
 * contact Pending In, and the reverse. */
#define DEPTH 6
static const enum sub_event out_events[] = {SUB_OUT_SUBSCRIBE, SUB_OUT_SUBSCRIBED,
					    SUB_OUT_UNSUBSCRIBE, SUB_OUT_UNSUBSCRIBED};

static void pair_check(const struct pair *p)
{
	for (int a = 0; a < 2; a++) {
		struct sub_item x = p->it[a], y = p->it[!a];
		assert_true(item_consistent(x));
		assert_int_equal(has_to(x.sub), has_from(y.sub));
		assert_int_equal(x.ask_out, y.pending_in);
	}
}

static unsigned long pair_explore(struct pair p, int depth)
{
	unsigned long visited = 1;

	pair_check(&p);
	if (depth == 0)
		return visited;
	for (int who = 0; who < 2; who++) {
		for (size_t i = 0; i < sizeof out_events / sizeof out_events[0]; i++) {
			struct pair q = p;
			pair_send(&q, who, out_events[i]);
			visited += pair_explore(q, depth - 1);
		}
	}
	return visited;
}

static void test_pair_sequences(void **state)
{
	(void)state;
	struct pair p = {{S_NOITEM, S_NOITEM}};
	unsigned long n = pair_explore(p, DEPTH);
	assert_true(n > 100000); /* 8^0 + ... + 8^6 */
}

/* --- names and views ------------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	static const char *const names[] = {"none", "to", "from", "both"};
	for (int s = SUB_NONE; s <= SUB_BOTH; s++) {
		enum sub_state back = SUB_BOTH;
		assert_string_equal(sub_state_name((enum sub_state)s), names[s]);
		assert_int_equal(sub_state_from_name(names[s], &back), 0);
		assert_int_equal(back, s);
	}
	enum sub_state out = SUB_TO;
	assert_int_equal(sub_state_from_name("None", &out), -1);
	assert_int_equal(sub_state_from_name("", &out), -1);
	assert_int_equal(sub_state_from_name("bothx", &out), -1);
	assert_int_equal(sub_state_from_name(NULL, &out), -1);
	assert_int_equal(sub_state_from_name("to", NULL), -1);
	assert_int_equal(out, SUB_TO);
	assert_string_equal(sub_state_name((enum sub_state)42), "unknown");

	for (int e = 0; e < SUB_EVENT_COUNT; e++) {
		const char *nm = sub_event_name((enum sub_event)e);
		assert_non_null(nm);
		assert_string_not_equal(nm, "unknown");
		for (int f = 0; f < e; f++)
			assert_string_not_equal(nm, sub_event_name((enum sub_event)f));
	}
	assert_string_equal(sub_event_name(SUB_IN_SUBSCRIBED), "in-subscribed");
	assert_string_equal(sub_event_name(SUB_EVENT_COUNT), "unknown");
	assert_string_equal(sub_event_name((enum sub_event)-1), "unknown");
}

static void test_views(void **state)
{
	(void)state;
	struct sub_item none = S_NONE, to = S_TO, from = S_FROM, both = S_BOTH, gone = S_NOITEM;
	assert_false(sub_user_sees_contact(none));
	assert_false(sub_contact_sees_user(none));
	assert_true(sub_user_sees_contact(to));
	assert_false(sub_contact_sees_user(to));
	assert_false(sub_user_sees_contact(from));
	assert_true(sub_contact_sees_user(from));
	assert_true(sub_user_sees_contact(both));
	assert_true(sub_contact_sees_user(both));
	gone.sub = SUB_BOTH; /* no row: nobody sees anything */
	assert_false(sub_user_sees_contact(gone));
	assert_false(sub_contact_sees_user(gone));
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_total_and_consistent),
		cmocka_unit_test(test_actions_follow_state),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_repair),
		cmocka_unit_test(test_one_way),
		cmocka_unit_test(test_mutual),
		cmocka_unit_test(test_pair_sequences),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_views),
	};
	const size_t nfixed = sizeof fixed / sizeof fixed[0];
	struct CMUnitTest *tests = calloc(NROWS + nfixed, sizeof *tests);
	char(*names)[128] = calloc(NROWS, sizeof *names);

	if (tests == NULL || names == NULL) {
		fprintf(stderr, "test_subscription: out of memory\n");
		return 1;
	}
	/* One named test per table row, so a failure names the RFC row. */
	for (size_t i = 0; i < NROWS; i++) {
		snprintf(names[i], sizeof names[i], "%s [%s]", rows[i].rfc,
			 sub_event_name(rows[i].ev));
		tests[i].name = names[i];
		tests[i].test_func = test_row;
		tests[i].initial_state = (void *)&rows[i];
	}
	memcpy(tests + NROWS, fixed, sizeof fixed);
	int rc = _cmocka_run_group_tests("subscription", tests, NROWS + nfixed, NULL, NULL);
	free(names);
	free(tests);
	return rc;
}
