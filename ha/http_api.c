/* The HTTP admin's resources (docs/http-admin.md): the status page, the JSON API and
 * /metrics.  The API runs the control socket's own commands (ctl_run_*: `status --json`,
 * `failover`, ...), so the answers and the rules are those of srmctl. */
#include "ha/http_api.h"

#include "ha/ctl_server.h"
#include "ha/metrics.h"
#include "ha/srm.h"
#include "lib/log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- query strings ---- */

/* Only the keys in allowed ("node" or ""); each at most once.  0, or -1 with the request
 * answered 400.  *node gets 1 or 2 when given, else 0. */
static int query_node(struct evhttp_request *req, const char *query, int node_allowed,
		      int *node)
{
	*node = 0;
	if (!*query)
		return 0;
	struct evkeyvalq kv;
	TAILQ_INIT(&kv);
	if (evhttp_parse_query_str(query, &kv) < 0) {
		http_reply_error(req, 400, "bad-request", "the query string cannot be parsed");
		return -1;
	}
	int rc = 0;
	for (struct evkeyval *e = TAILQ_FIRST(&kv); e && rc == 0; e = TAILQ_NEXT(e, next)) {
		if (!node_allowed || strcmp(e->key, "node") != 0 || *node) {
			http_reply_error(req, 400, "bad-request",
					 node_allowed ? "the only parameter is node=1 or node=2"
						      : "this resource takes no parameters");
			rc = -1;
		} else if (strcmp(e->value, "1") == 0 || strcmp(e->value, "2") == 0) {
			*node = e->value[0] - '0';
		} else {
			http_reply_error(req, 400, "bad-request", "node must be 1 or 2");
			rc = -1;
		}
	}
	evhttp_clear_headers(&kv);
	return rc;
}

/* ---- control commands ---- */

struct ctl_op {
	struct http_pending pend;
	struct ctl_conn *ctl;
	int json;           /* the command answers JSON (a view); else an action's sentence */
	char action[24];
	char origin[96];
};

/* The control protocol's error codes as HTTP statuses. */
static int status_of_code(const char *code, size_t n)
{
	static const struct {
		const char *code;
		int status;
	} map[] = {
		{"refused", 409}, {"no-peer", 409}, {"usage", 400},      {"too-long", 400},
		{"busy", 503},    {"database", 503}, {"unknown-command", 404},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strlen(map[i].code) == n && strncmp(map[i].code, code, n) == 0)
			return map[i].status;
	return 500;
}

static void on_ctl_done(void *arg, const char *status, const char *body, size_t len)
{
	struct ctl_op *op = arg;
	struct evhttp_request *req = op->pend.req;
	http_pending_done(&op->pend);
	int ok = strcmp(status, "ok") == 0;
	if (!ok) {
		/* "error CODE MESSAGE" */
		const char *code = strncmp(status, "error ", 6) == 0 ? status + 6 : "internal";
		size_t n = strcspn(code, " ");
		const char *msg = code[n] ? code + n + 1 : "";
		char word[32];
		snprintf(word, sizeof word, "%.*s", (int)(n < sizeof word ? n : sizeof word - 1),
			 code);
		int http = status_of_code(code, n);
		if (!op->json)
			log_info("http: %s %s: %d %s", op->origin, op->action, http, msg);
		http_reply_error(req, http, word, msg);
	} else if (op->json) {
		struct evbuffer *b = evbuffer_new();
		if (b)
			evbuffer_add(b, body, len);
		http_reply(req, 200, "application/json", b);
		if (b)
			evbuffer_free(b);
	} else {
		struct evbuffer *b = evbuffer_new();
		if (b) {
			/* The sentence without its newline. */
			char *msg = strndup(body, strcspn(body, "\n"));
			evbuffer_add_printf(b, "{\"ok\":true,\"action\":");
			http_json_string(b, op->action);
			evbuffer_add_printf(b, ",\"message\":");
			http_json_string(b, msg ? msg : "");
			evbuffer_add_printf(b, "}\n");
			log_info("http: %s %s: 200 %s", op->origin, op->action, msg ? msg : "");
			free(msg);
		}
		http_reply(req, 200, "application/json", b);
		if (b)
			evbuffer_free(b);
	}
	free(op);
}

static void ctl_op_cancel(struct http_pending *p)
{
	struct ctl_op *op = (struct ctl_op *)p;
	ctl_run_abandon(op->ctl);
	free(op);
}

/* Run "words..." (TAB-separated, protocol version first) as a control command. */
static void ctl_op_run(struct http_admin *h, struct evhttp_request *req, const char *line,
		       int json, const char *action, const char *origin)
{
	struct srm *srm = http_admin_srm(h);
	struct ctl_op *op = calloc(1, sizeof *op);
	char buf[128];
	snprintf(buf, sizeof buf, "%s", line);
	if (op) {
		snprintf(op->action, sizeof op->action, "%s", action);
		snprintf(op->origin, sizeof op->origin, "%s", origin);
		op->json = json;
		op->ctl = ctl_run_new(srm->ctl, origin, on_ctl_done, op);
	}
	if (!op || !op->ctl) {
		free(op);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_pending_add(h, &op->pend, req, ctl_op_cancel);
	ctl_run_start(op->ctl, buf); /* may answer (and free op) at once */
}

static void api_status(struct http_admin *h, struct evhttp_request *req, const char *query,
		       const char *origin)
{
	int node;
	if (query_node(req, query, 0, &node) == 0)
		ctl_op_run(h, req, CTL_PROTOCOL_VERSION "\t--json\tstatus", 1, "status", origin);
}

static void api_digest(struct http_admin *h, struct evhttp_request *req, const char *query,
		       const char *origin)
{
	int node;
	if (query_node(req, query, 0, &node) == 0)
		ctl_op_run(h, req, CTL_PROTOCOL_VERSION "\t--json\tdigest", 1, "digest", origin);
}

/* An operator action; node= (failover, fallback) names the node whose users move. */
static void api_action(struct http_admin *h, struct evhttp_request *req, const char *query,
		       const char *origin, const char *words, int takes_node)
{
	int node;
	if (query_node(req, query, takes_node, &node) < 0)
		return;
	char line[96], action[32];
	snprintf(line, sizeof line, CTL_PROTOCOL_VERSION "\t%s", words);
	if (node)
		snprintf(line + strlen(line), sizeof line - strlen(line), "\t%d", node);
	snprintf(action, sizeof action, "%s", words);
	for (char *t = action; *t; t++)
		if (*t == '\t')
			*t = ' ';
	ctl_op_run(h, req, line, 0, action, origin);
}

static void api_failover(struct http_admin *h, struct evhttp_request *req, const char *q,
			 const char *o)
{
	api_action(h, req, q, o, "failover", 1);
}

static void api_fallback(struct http_admin *h, struct evhttp_request *req, const char *q,
			 const char *o)
{
	api_action(h, req, q, o, "fallback", 1);
}

static void api_recover(struct http_admin *h, struct evhttp_request *req, const char *q,
			const char *o)
{
	api_action(h, req, q, o, "recover", 0);
}

static void api_ha_enable(struct http_admin *h, struct evhttp_request *req, const char *q,
			  const char *o)
{
	api_action(h, req, q, o, "ha\tenable", 0);
}

static void api_ha_disable(struct http_admin *h, struct evhttp_request *req, const char *q,
			   const char *o)
{
	api_action(h, req, q, o, "ha\tdisable", 0);
}

/* ---- the page ---- */

static void page(struct http_admin *h, struct evhttp_request *req, const char *query,
		 const char *origin)
{
	/* The query is the page's own business (it reads nothing from it); the token travels
	 * in the fragment, which browsers never send. */
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add_reference(b, http_page_html, strlen(http_page_html), NULL, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy",
			  http_page_csp());
	http_reply(req, 200, "text/html; charset=utf-8", b);
	if (b)
		evbuffer_free(b);
}

/* ---- /metrics ---- */

struct metrics_req {
	struct http_pending pend;
	struct metrics_op *m;
};

static void on_metrics(void *arg, struct evbuffer *text)
{
	struct metrics_req *mr = arg;
	http_pending_done(&mr->pend);
	http_reply(mr->pend.req, 200, "text/plain; version=0.0.4; charset=utf-8", text);
	free(mr);
}

static void metrics_req_cancel(struct http_pending *p)
{
	struct metrics_req *mr = (struct metrics_req *)p;
	metrics_cancel(mr->m);
	free(mr);
}

static void metrics(struct http_admin *h, struct evhttp_request *req, const char *query,
		    const char *origin)
{
	int node;
	if (query_node(req, query, 0, &node) < 0)
		return;
	struct metrics_req *mr = calloc(1, sizeof *mr);
	if (mr)
		mr->m = metrics_op_new(http_admin_srm(h), on_metrics, mr);
	if (!mr || !mr->m) {
		free(mr);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_pending_add(h, &mr->pend, req, metrics_req_cancel);
	metrics_op_start(mr->m); /* may answer (and free mr) at once */
}

const struct http_route http_routes[] = {
	{"/", EVHTTP_REQ_GET, HTTP_READ, page},
	{"/metrics", EVHTTP_REQ_GET, HTTP_READ, metrics},
	{"/api/status", EVHTTP_REQ_GET, HTTP_READ, api_status},
	{"/api/digest", EVHTTP_REQ_GET, HTTP_READ, api_digest},
	{"/api/failover", EVHTTP_REQ_POST, HTTP_WRITE, api_failover},
	{"/api/fallback", EVHTTP_REQ_POST, HTTP_WRITE, api_fallback},
	{"/api/recover", EVHTTP_REQ_POST, HTTP_WRITE, api_recover},
	{"/api/ha/enable", EVHTTP_REQ_POST, HTTP_WRITE, api_ha_enable},
	{"/api/ha/disable", EVHTTP_REQ_POST, HTTP_WRITE, api_ha_disable},
	{NULL, 0, 0, NULL},
};
