#!/usr/bin/env node
// srmd's status page in headless Chromium (docs/http-admin.md "The page"): a pair on
// loopback (contrib/local-group up --nodes 2), Debian's chromium driven by playwright-core.
//   1. load http://127.0.0.1:NODE1_HTTP_PORT/#token=... : both nodes Normal, no script or
//      CSP error, the token gone from the address bar; screenshot admin-page-normal.png;
//   2. click node 1's Failover, check the confirm's question and accept it: the page shows
//      node 1 Idle and node 2 Running in Backup Mode, and says the action was accepted;
//      screenshot admin-page-failover.png (both in DUET_TEST_TMP);
//   3. the same states through node 2's API (the page did act on the pair).
// Skips (77) only when chromium is not installed.  Uses DUET_BUILD (default build/).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const CHROMIUM = process.env.DUET_CHROMIUM || '/usr/bin/chromium';
const T0 = Date.now();

function log(text) {
  const t = ((Date.now() - T0) / 1000).toFixed(2).padStart(6);
  console.log(`[${t}s] test_admin_page: ${text}`);
}

if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not installed (contrib/install-deps test installs chromium)`);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.log(`FAIL: playwright-core not installed in tests/browser/node_modules ` +
              `(contrib/install-deps test): ${e.message}`);
  process.exit(1);
}

function portFree(port) {
  return new Promise(resolve => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// A base below the ephemeral range with every port of the pair free (as pair_harness.py).
async function freeBase() {
  for (let i = 0; i < 200; i++) {
    const base = 20000 + 20 * Math.floor(Math.random() * 600);
    const offsets = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14];
    const free = await Promise.all(offsets.map(d => portFree(base + d)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free loopback ports for a pair');
}

function loadEnv(file) {
  const env = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
  }
  return env;
}

function lg(...args) {
  const build = process.env.DUET_BUILD || path.join(ROOT, 'build');
  return execFileSync(path.join(ROOT, 'contrib', 'local-group'), [...args, '--build', build],
                      { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function waitFor(what, timeoutMs, probe) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last.ok) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; ${last.now}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

async function pageStates(page) {
  return page.evaluate(() => {
    const out = {};
    for (const card of document.querySelectorAll('section.node')) {
      const st = card.querySelector('[data-testid="state"]');
      const reason = card.querySelector('dd[data-field="Reason"]');
      out[card.dataset.node] = [st && st.textContent, reason && reason.textContent];
    }
    return out;
  });
}

async function apiStates(port) {
  const r = await fetch(`http://127.0.0.1:${port}/api/status`);
  if (!r.ok) throw new Error(`GET /api/status on ${port}: ${r.status}`);
  const st = await r.json();
  const out = {};
  for (const n of st.pair.nodes) out[n.node_id] = [n.state, n.reason];
  return out;
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function scenario(env, shots) {
  const token = fs.readFileSync(env.NODE1_HTTP_TOKEN, 'utf8').trim();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    const problems = [];
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => {
      // The browser asks for /favicon.ico, which is a 404 by design.
      if (m.type() === 'error' && !/favicon|404/.test(m.text())) problems.push(m.text());
    });
    const dialogs = [];
    page.on('dialog', async d => {
      dialogs.push([d.type(), d.message()]);
      await d.accept();
    });

    await page.goto(`http://127.0.0.1:${env.NODE1_HTTP_PORT}/#token=${encodeURIComponent(token)}`);
    const normal = { 1: ['Normal', 'Normal'], 2: ['Normal', 'Normal'] };
    await waitFor('both nodes Normal on the page', 20000, async () => {
      const now = await pageStates(page);
      return { ok: same(now, normal), now: JSON.stringify(now) };
    });
    if (page.url().includes('token')) throw new Error(`the token stays in the URL: ${page.url()}`);
    const peerLink = await page.textContent('dd[data-field="Peer link"]');
    if (!/^up, round trip/.test(peerLink)) throw new Error(`peer link shown as "${peerLink}"`);
    await page.screenshot({ path: shots.normal, fullPage: true });
    log(`page shows both nodes Normal, peer link "${peerLink}"; ${shots.normal}`);

    await page.click('section.node[data-node="1"] button[data-action="failover"]');
    const moved = { 1: ['Idle', 'On Admin Request'],
                    2: ['Running in Backup Mode', 'On Admin Request'] };
    await waitFor('the failover on the page', 30000, async () => {
      const now = await pageStates(page);
      return { ok: same(now, moved), now: JSON.stringify(now) };
    });
    if (dialogs.length !== 1 || dialogs[0][0] !== 'confirm' ||
        !/Fail over node 1/.test(dialogs[0][1])) {
      throw new Error(`expected one confirm for the failover, got ${JSON.stringify(dialogs)}`);
    }
    const message = await page.textContent('#message');
    if (!/^failover: accepted/.test(message)) {
      throw new Error(`the page says "${message}" after the failover`);
    }
    await page.screenshot({ path: shots.failover, fullPage: true });
    log(`confirm "${dialogs[0][1]}" accepted; page: ${message}; ${shots.failover}`);

    const viaPeer = await apiStates(env.NODE2_HTTP_PORT);
    if (!same(viaPeer, moved)) throw new Error(`node 2's API says ${JSON.stringify(viaPeer)}`);
    log(`node 2's API agrees: ${JSON.stringify(viaPeer)}`);
    if (problems.length) throw new Error(`browser errors: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
}

async function main() {
  const tmp = process.env.DUET_TEST_TMP || os.tmpdir();
  // Short path: unix socket paths are limited.
  const dir = fs.mkdtempSync('/tmp/dweb.');
  const shots = { normal: path.join(tmp, 'admin-page-normal.png'),
                  failover: path.join(tmp, 'admin-page-failover.png') };
  let ok = false;
  try {
    const base = await freeBase();
    lg('up', dir, '--nodes', '2', '--base-port', String(base));
    const env = loadEnv(path.join(dir, 'group.env'));
    log(`pair up (base port ${base}), node 1 admin on ${env.NODE1_HTTP_PORT}`);
    await scenario(env, shots);
    for (const f of Object.values(shots)) {
      if (fs.statSync(f).size < 1000) throw new Error(`${f} is not a real screenshot`);
    }
    ok = true;
    log('PASS');
  } catch (e) {
    console.log(`FAIL: ${e.stack || e}`);
    for (const n of [1, 2]) {
      try {
        const text = fs.readFileSync(path.join(dir, `node${n}`, 'srmd.log'), 'utf8');
        console.log(`---- node ${n} srmd.log (tail) ----\n${text.split('\n').slice(-40).join('\n')}`);
      } catch (_) { /* no log */ }
    }
  } finally {
    try { lg('down', dir); } catch (e) { console.log(`local-group down: ${e.message}`); }
    if (ok) fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`logs kept in ${dir}`);
  }
  process.exit(ok ? 0 : 1);
}

main();
