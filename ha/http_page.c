/* The HTTP admin's status page: one self-contained HTML document (no external assets) that
 * polls /api/status every 1.5 s and draws both nodes; its Failover, Fallback and Recovery
 * buttons confirm first and POST with the bearer token (taken from the URL fragment
 * "#token=...", else asked for once, kept in sessionStorage).  Every value from the API goes
 * into the page with textContent, never as HTML. */
#include "ha/http_api.h"

#include "lib/base64.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define PAGE_SCRIPT \
	"\n'use strict';\n" \
	"const $ = (s, e) => (e || document).querySelector(s);\n" \
	"let token = sessionStorage.getItem('duetToken') || '';\n" \
	"const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);\n" \
	"if (m) {\n" \
	"  token = decodeURIComponent(m[1]);\n" \
	"  sessionStorage.setItem('duetToken', token);\n" \
	"  history.replaceState(null, '', location.pathname + location.search);\n" \
	"}\n" \
	"let last = null, busy = false;\n" \
	"function el(tag, cls, text) {\n" \
	"  const e = document.createElement(tag);\n" \
	"  if (cls) e.className = cls;\n" \
	"  if (text !== undefined) e.textContent = String(text);\n" \
	"  return e;\n" \
	"}\n" \
	"function ago(unix) {\n" \
	"  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));\n" \
	"  if (s < 120) return s + ' s ago';\n" \
	"  if (s < 7200) return Math.round(s / 60) + ' min ago';\n" \
	"  return Math.round(s / 3600) + ' h ago';\n" \
	"}\n" \
	"function tone(state) {\n" \
	"  if (state === 'Normal') return 'ok';\n" \
	"  if (!state || /Failed Mode|Unknown|Critical/.test(state)) return 'bad';\n" \
	"  return 'warn';\n" \
	"}\n" \
	"function row(dl, name, value, cls) {\n" \
	"  dl.append(el('dt', '', name));\n" \
	"  const dd = el('dd', cls || '', value);\n" \
	"  dd.dataset.field = name;\n" \
	"  dl.append(dd);\n" \
	"}\n" \
	"function sessionsText(s) {\n" \
	"  if (!s) return '-';\n" \
	"  return Object.keys(s).map(h => 'home ' + h + ': ' + (s[h] === null ? '-' : s[h]))" \
	".join(', ');\n" \
	"}\n" \
	"function nodeCard(n, st) {\n" \
	"  const card = el('section', 'node');\n" \
	"  card.dataset.node = n.node_id;\n" \
	"  const h = el('h2', '', 'Node ' + n.node_id + (n.self ? ' (this node)' : ' (peer)'));\n" \
	"  card.append(h);\n" \
	"  const state = el('div', 'state ' + tone(n.state), n.state || 'unknown');\n" \
	"  state.dataset.testid = 'state';\n" \
	"  card.append(state);\n" \
	"  if (n.known === false) card.append(el('div', 'stale', 'last known state'));\n" \
	"  const dl = el('dl');\n" \
	"  row(dl, 'Reason', n.reason || '-');\n" \
	"  row(dl, 'Since', n.since_unix ? n.since + ' (' + ago(n.since_unix) + ')' : '-');\n" \
	"  row(dl, 'Serves', n.serve && n.serve.length ? 'home nodes ' + n.serve.join(', ') " \
	": 'nobody');\n" \
	"  row(dl, 'Sessions', sessionsText(n.sessions));\n" \
	"  const cs = n.critical_services;\n" \
	"  row(dl, 'Critical services', cs ? (cs.ok ? 'ok' : 'failed') + ' (engine ' + " \
	"(cs.engine ? 'up' : 'down') + ', database ' + (cs.database ? 'up' : 'down') + ')' : " \
	"'-', cs && !cs.ok ? 'bad' : '');\n" \
	"  card.append(dl);\n" \
	"  const acts = el('div', 'actions');\n" \
	"  const peer = n.node_id === 1 ? 2 : 1;\n" \
	"  const fo = el('button', '', 'Failover');\n" \
	"  fo.dataset.action = 'failover';\n" \
	"  fo.title = 'Move the users of node ' + n.node_id + ' to node ' + peer;\n" \
	"  fo.onclick = () => act('failover', n.node_id, 'Fail over node ' + n.node_id + \n" \
	"    ': its users move to node ' + peer + '. Continue?');\n" \
	"  const fb = el('button', '', 'Fallback');\n" \
	"  fb.dataset.action = 'fallback';\n" \
	"  fb.title = 'Node ' + n.node_id + ' takes its users back';\n" \
	"  fb.onclick = () => act('fallback', n.node_id, 'Fall back: node ' + n.node_id + \n" \
	"    ' takes its users back from node ' + peer + '. Continue?');\n" \
	"  acts.append(fo, fb);\n" \
	"  if (st.pair) card.append(acts);\n" \
	"  return card;\n" \
	"}\n" \
	"function singleNode(st) {\n" \
	"  return {node_id: st.node_id, self: true, known: true, state: st.state, reason: " \
	"st.reason, since: st.since, since_unix: st.since_unix, serve: [st.node_id], " \
	"sessions: null, critical_services: {ok: st.engine.state === 'ready' && " \
	"st.database.up, engine: st.engine.state === 'ready', database: st.database.up}};\n" \
	"}\n" \
	"function draw(st) {\n" \
	"  last = st;\n" \
	"  $('#title').textContent = 'Duet ' + st.domain + ' — node ' + st.node_id + ' (' + " \
	"st.node_name + ')';\n" \
	"  const nodes = $('#nodes');\n" \
	"  nodes.replaceChildren();\n" \
	"  const p = st.pair;\n" \
	"  const list = p ? p.nodes : [singleNode(st)];\n" \
	"  for (const n of list) nodes.append(nodeCard(n, st));\n" \
	"  const g = $('#group');\n" \
	"  g.replaceChildren();\n" \
	"  if (p) {\n" \
	"    const link = p.peer_link;\n" \
	"    row(g, 'Peer link', link.up ? 'up, round trip ' + (link.rtt_us / 1000).toFixed(1) " \
	"+ ' ms' : 'down' + (link.down_reason ? ' (' + link.down_reason + ')' : ''), link.up ? " \
	"'' : 'bad');\n" \
	"    const r = p.replication;\n" \
	"    row(g, 'Replication', r.ship + ', lag in ' + r.lag_in.entries + ' (' + " \
	"r.lag_in.seconds.toFixed(1) + ' s), out ' + r.lag_out.entries + (r.lag_out.seconds " \
	"=== null ? '' : ' (' + r.lag_out.seconds.toFixed(1) + ' s)'));\n" \
	"    row(g, 'HA', (p.ha_enabled ? 'enabled' : 'disabled') + (p.manual_failover ? ', " \
	"manual failover mode' : ''));\n" \
	"    row(g, 'Alarms', p.alarms.length ? p.alarms.join(', ') : 'none', p.alarms.length ? " \
	"'bad' : '');\n" \
	"    row(g, 'Accounts', 'home node 1: ' + p.accounts['1'] + ', home node 2: ' + " \
	"p.accounts['2'] + ', unassigned: ' + p.accounts.unassigned);\n" \
	"  } else {\n" \
	"    row(g, 'Peer link', 'none (single node)');\n" \
	"  }\n" \
	"  const rl = st.relogin;\n" \
	"  if (rl) row(g, 'Re-login window', (rl.lower_ms / 1000) + ' to ' + (rl.upper_ms / " \
	"1000) + ' s' + (rl.mismatch ? ' (the peer has ' + (rl.peer_lower_ms / 1000) + ' to ' " \
	"+ (rl.peer_upper_ms / 1000) + ' s: mismatch)' : ''), rl.mismatch ? 'bad' : '');\n" \
	"  row(g, 'Sessions here', st.sessions === null ? '-' : st.sessions);\n" \
	"  $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();\n" \
	"  $('#conn').textContent = '';\n" \
	"  document.body.classList.remove('offline');\n" \
	"}\n" \
	"async function poll() {\n" \
	"  try {\n" \
	"    const headers = token ? {Authorization: 'Bearer ' + token} : {};\n" \
	"    const r = await fetch('api/status', {headers, cache: 'no-store'});\n" \
	"    if (!r.ok) throw new Error('HTTP ' + r.status);\n" \
	"    draw(await r.json());\n" \
	"  } catch (e) {\n" \
	"    $('#conn').textContent = 'srmd does not answer: ' + e.message;\n" \
	"    document.body.classList.add('offline');\n" \
	"  }\n" \
	"  setTimeout(poll, 1500);\n" \
	"}\n" \
	"function say(text, bad) {\n" \
	"  const m = $('#message');\n" \
	"  m.textContent = text;\n" \
	"  m.className = bad ? 'bad' : 'ok';\n" \
	"}\n" \
	"async function act(action, node, question) {\n" \
	"  if (busy) return;\n" \
	"  if (!window.confirm(question)) return;\n" \
	"  if (!token) token = window.prompt('Admin token ([http] token_file):') || '';\n" \
	"  if (!token) { say(action + ': no token given', true); return; }\n" \
	"  sessionStorage.setItem('duetToken', token);\n" \
	"  busy = true;\n" \
	"  try {\n" \
	"    const q = node ? '?node=' + node : '';\n" \
	"    const r = await fetch('api/' + action + q, {method: 'POST', headers: " \
	"{Authorization: 'Bearer ' + token}});\n" \
	"    const body = await r.json().catch(() => ({message: 'HTTP ' + r.status}));\n" \
	"    if (r.status === 401) { token = ''; sessionStorage.removeItem('duetToken'); }\n" \
	"    say(r.ok ? body.message : action + ' refused (' + r.status + '): ' + " \
	"(body.message || ''), !r.ok);\n" \
	"  } catch (e) {\n" \
	"    say(action + ': ' + e.message, true);\n" \
	"  } finally {\n" \
	"    busy = false;\n" \
	"  }\n" \
	"}\n" \
	"$('#recover').onclick = () => act('recover', 0, 'Recovery: clear the failure episode " \
	"and restart the critical services of this node. Continue?');\n" \
	"poll();\n"

const char http_page_html[] =
	"<!DOCTYPE html>\n"
	"<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<title>Duet status</title>\n"
	"<style>\n"
	"body{font:15px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d232a;background:#f4f6f8}\n"
	"h1{font-size:1.3em;margin:0 0 .2em}\n"
	"#meta{color:#5c6670;font-size:.85em;margin-bottom:1em}\n"
	"#nodes{display:flex;flex-wrap:wrap;gap:1em}\n"
	".node{background:#fff;border:1px solid #d5dbe1;border-radius:8px;padding:1em;"
	"min-width:20em;flex:1}\n"
	".node h2{font-size:1.05em;margin:0 0 .4em}\n"
	".state{font-size:1.4em;font-weight:600;padding:.2em .5em;border-radius:6px;"
	"display:inline-block}\n"
	".state.ok{background:#dcf5e3;color:#14632e}.state.warn{background:#fff1cc;"
	"color:#7a5200}.state.bad{background:#fde0e0;color:#8a1c1c}\n"
	"dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:.8em 0}\n"
	"dt{color:#5c6670}dd{margin:0}dd.bad{color:#8a1c1c;font-weight:600}\n"
	".stale{color:#8a1c1c;font-size:.85em}\n"
	"#group{background:#fff;border:1px solid #d5dbe1;border-radius:8px;padding:1em;"
	"margin-top:1em}\n"
	"button{font:inherit;padding:.35em .9em;margin-right:.5em;border-radius:6px;"
	"border:1px solid #8796a5;background:#fff;cursor:pointer}\n"
	"button:hover{background:#eef2f5}\n"
	"#bar{margin:1em 0}#message.ok{color:#14632e}#message.bad{color:#8a1c1c}\n"
	"#conn{color:#8a1c1c;font-weight:600}body.offline #nodes{opacity:.5}\n"
	"</style></head><body>\n"
	"<h1 id=\"title\">Duet</h1>\n"
	"<div id=\"meta\"><span id=\"updated\">loading…</span> <span id=\"conn\"></span></div>\n"
	"<div id=\"nodes\"></div>\n"
	"<dl id=\"group\"></dl>\n"
	"<div id=\"bar\"><button id=\"recover\" data-action=\"recover\">Recovery</button>"
	"<span id=\"message\" role=\"status\"></span></div>\n"
	"<script>" PAGE_SCRIPT "</script>\n"
	"</body></html>\n";

const char *http_page_csp(void)
{
	static char csp[256];
	if (csp[0])
		return csp;
	/* The inline script is allowed by its hash; nothing else may run or load, and only
	 * this origin may be fetched. */
	static const char script[] = PAGE_SCRIPT;
	unsigned char md[32];
	unsigned int n = 0;
	char b64[BASE64_LEN(32) + 1] = "";
	if (EVP_Digest(script, sizeof script - 1, md, &n, EVP_sha256(), NULL) == 1 && n == 32)
		base64_encode(md, sizeof md, b64);
	snprintf(csp, sizeof csp,
		 "default-src 'none'; script-src 'sha256-%s'; style-src 'unsafe-inline'; "
		 "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
		 "frame-ancestors 'none'",
		 b64);
	return csp;
}
