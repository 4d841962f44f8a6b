/* The HA layer's APP payloads (ha/ha_wire.c): round trips, and hostile input refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha/ha_wire.h"

static void state_round_trip(void **state)
{
	struct ha_wire_state a, b;
	memset(&a, 0, sizeof a);
	a.info.state = HA_ST_TAKING_BACK;
	a.info.reason = HA_RS_AUTO_FALLBACK;
	a.info.resume = HA_ST_FAILED_OVER;
	a.info.serve = 1;
	a.info.services_ok = true;
	a.info.manual_failover = true;
	a.info.txid = 0xfffffffeu;
	a.since_unix = 1732452795;
	a.engine_up = 1;
	a.sessions[0] = 7;
	a.sessions[1] = UINT32_MAX;
	a.accounts[1] = 5000;
	uint8_t buf[HA_WIRE_STATE_SIZE];
	assert_int_equal(ha_wire_state_encode(&a, buf, sizeof buf), HA_WIRE_STATE_SIZE);
	assert_int_equal(ha_wire_state_decode(buf, sizeof buf, &b), 0);
	assert_int_equal(b.info.state, a.info.state);
	assert_int_equal(b.info.reason, a.info.reason);
	assert_int_equal(b.info.resume, a.info.resume);
	assert_int_equal(b.info.txid, a.info.txid);
	assert_true(b.info.manual_failover && b.info.services_ok && b.engine_up && !b.db_up);
	assert_int_equal(b.since_unix, a.since_unix);
	assert_int_equal(b.sessions[1], UINT32_MAX);
	assert_int_equal(b.accounts[1], 5000);
	/* Every single-byte corruption of the enums, flags or version is refused. */
	uint8_t bad[HA_WIRE_STATE_SIZE];
	memcpy(bad, buf, sizeof bad);
	bad[1] = HA_ST_COUNT;
	assert_int_equal(ha_wire_state_decode(bad, sizeof bad, &b), -1);
	memcpy(bad, buf, sizeof bad);
	bad[4] = 4; /* serve bit of a third node */
	assert_int_equal(ha_wire_state_decode(bad, sizeof bad, &b), -1);
	memcpy(bad, buf, sizeof bad);
	bad[5] |= 0x80;
	assert_int_equal(ha_wire_state_decode(bad, sizeof bad, &b), -1);
	memcpy(bad, buf, sizeof bad);
	bad[0] = 2;
	assert_int_equal(ha_wire_state_decode(bad, sizeof bad, &b), -1);
	assert_int_equal(ha_wire_state_decode(buf, sizeof buf - 1, &b), -1);
}

static void msg_round_trip(void **state)
{
	struct ha_msg m = {HA_MSG_REQ_FALLBACK, 42, 0, 2, HA_RS_ADMIN}, back;
	uint8_t buf[HA_WIRE_MSG_SIZE];
	assert_int_equal(ha_wire_msg_encode(&m, buf, sizeof buf), HA_WIRE_MSG_SIZE);
	assert_int_equal(ha_wire_msg_decode(buf, sizeof buf, &back), 0);
	assert_int_equal(back.type, m.type);
	assert_int_equal(back.txid, 42);
	assert_int_equal(back.home, 2);
	buf[1] = HA_MSG_COUNT;
	assert_int_equal(ha_wire_msg_decode(buf, sizeof buf, &back), -1);
	m.txid = 0; /* a request needs a transaction */
	assert_int_equal(ha_wire_msg_encode(&m, buf, sizeof buf), -1);
}

static void fill_creds(struct ha_prov_creds *c)
{
	snprintf(c->salt, sizeof c->salt, "\\x00112233445566778899aabbccddeeff");
	snprintf(c->iter, sizeof c->iter, "4096");
	snprintf(c->stored, sizeof c->stored, "\\x0123456789abcdef0123456789abcdef01234567");
	snprintf(c->server, sizeof c->server, "\\xfedcba9876543210fedcba9876543210fedcba98");
}

static void prov_round_trip(void **state)
{
	struct ha_prov_req r, back;
	memset(&r, 0, sizeof r);
	r.id = 9;
	r.op = HA_PROV_UPSERT;
	r.home = 2;
	snprintf(r.user, sizeof r.user, "zoë");
	fill_creds(&r.sha1);
	fill_creds(&r.sha256);
	uint8_t buf[HA_PROV_REQ_MAX];
	int n = ha_prov_req_encode(&r, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(ha_prov_req_decode(buf, (size_t)n, &back), 0);
	assert_string_equal(back.user, "zoë");
	assert_string_equal(back.sha256.server, r.sha256.server);
	assert_int_equal(back.home, 2);
	/* Truncated at every length, or with a byte more: refused. */
	for (int len = 0; len < n; len++)
		assert_int_equal(ha_prov_req_decode(buf, (size_t)len, &back), -1);
	assert_int_equal(ha_prov_req_decode(buf, (size_t)n + 1, &back), -1);
	/* Names and credentials that the SQL must never see. */
	snprintf(r.user, sizeof r.user, "Alice");
	assert_int_equal(ha_prov_req_encode(&r, buf, sizeof buf), -1);
	snprintf(r.user, sizeof r.user, "a b");
	assert_int_equal(ha_prov_req_encode(&r, buf, sizeof buf), -1);
	snprintf(r.user, sizeof r.user, "alice");
	snprintf(r.sha1.salt, sizeof r.sha1.salt, "\\x0g");
	assert_int_equal(ha_prov_req_encode(&r, buf, sizeof buf), -1);
	r.op = HA_PROV_DELETE; /* credentials are not part of a delete */
	n = ha_prov_req_encode(&r, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(ha_prov_req_decode(buf, (size_t)n, &back), 0);
	assert_int_equal(back.op, HA_PROV_DELETE);
	buf[1] = 9; /* unknown op */
	assert_int_equal(ha_prov_req_decode(buf, (size_t)n, &back), -1);

	struct ha_prov_resp a = {5, HA_PROV_NOT_FOUND, "no such user"}, b;
	uint8_t rb[HA_PROV_RESP_MAX];
	n = ha_prov_resp_encode(&a, rb, sizeof rb);
	assert_true(n > 0);
	assert_int_equal(ha_prov_resp_decode(rb, (size_t)n, &b), 0);
	assert_int_equal(b.id, 5);
	assert_int_equal(b.status, HA_PROV_NOT_FOUND);
	assert_string_equal(b.msg, "no such user");
	rb[8] = '\n'; /* control characters never reach a terminal */
	assert_int_equal(ha_prov_resp_decode(rb, (size_t)n, &b), 0);
	assert_int_equal(b.msg[0], '?');
	assert_int_equal(ha_prov_resp_decode(rb, (size_t)n - 1, &b), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_round_trip),
		cmocka_unit_test(msg_round_trip),
		cmocka_unit_test(prov_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
