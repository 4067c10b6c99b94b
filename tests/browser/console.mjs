// Drives the console (crates/disputes/console/) in headless Chromium, for the end-to-end test
// crates/disputes/tests/e2e/console_browser.rs. Run as `node tests/browser/console.mjs '<json>'`:
//   {"url": "http://127.0.0.1:PORT/console/", "open_dispute": "<id of an open dispute>",
//    "disputes": [{"dispute_id", "order_amount", "currency", "status", "refund"?, "release"?}, ...],
//    "screenshots": "<dir>" | null}
// Protocol (one JSON object a line; nothing else goes to stdout, diagnostics go to stderr):
//   stdout {"ready_for_event": true}  then stdin {"sent_seq": N}  (the live-update check)
//   stdout {"ok": true, "checks": [...]}, exit 0 | {"ok": false, "failed": "<check>", "detail": "..."}, exit 1
// Checks, in order: arguments, browser_launch, page_loads (no page or console error, none ignored,
// is checked after every step), list_shows_disputes, dispute_views (the resolved ones: timeline,
// chain, resolution), tampered_history_flagged (first resolved one), live_update. Screenshots, when
// asked for: list.png, dispute.png, tampered.png, live.png. Overall limit 60 s; the browser is
// always closed.
// Needs `npm ci` in tests/browser (playwright-core only: no browser is downloaded); Chromium is
// $CHROMIUM or Debian's /usr/bin/chromium.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { formatMoney } from '../../crates/disputes/console/console.js';

const TOTAL_MS = 60_000;
let args; // argv[2], parsed in run() so that a bad one is reported like any failure
const say = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);
const log = (...parts) => console.error('[console.mjs]', ...parts);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class CheckFailed extends Error {}
const passed = [];
let current = 'setup'; // the check running, named in a failure

function check(ok, detail) {
  if (!ok) throw new CheckFailed(detail);
}

// Polls `read()` until `test(value)` holds; fails the current check with the last value seen.
async function until(read, test, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (test(value)) return value;
    if (Date.now() > end) throw new CheckFailed(`${what}; last seen: ${JSON.stringify(value).slice(0, 1500)}`);
    await sleep(100);
  }
}

// Lines from the Rust test, read as they come.
const stdin = createInterface({ input: process.stdin });
const lines = [];
let waiting = null;
let closed = false;
stdin.on('line', (line) => (waiting ? (waiting(line), (waiting = null)) : lines.push(line)));
stdin.on('close', () => ((closed = true), waiting?.(null)));
const nextLine = () => (lines.length || closed
  ? Promise.resolve(lines.shift() ?? null)
  : new Promise((resolve) => (waiting = resolve)));

let page;
const errors = []; // page errors and console errors, none ignored
const noErrors = (step) => check(errors.length === 0, `after ${step}: ${errors.join(' | ')}`);
const shot = async (name) => {
  if (!args.screenshots) return;
  await page.evaluate(() => document.activeElement?.blur()); // no focus ring in the pictures
  await page.screenshot({ path: join(args.screenshots, name), fullPage: true });
};
const go = (hash) => page.evaluate((h) => { location.hash = h; }, hash); // the page's own routing

// What the dispute view shows: facts, chain summary, timeline rows.
const readDetail = () => page.evaluate(() => {
  const facts = {};
  for (const dt of document.querySelectorAll('#view dt')) facts[dt.textContent] = dt.nextElementSibling?.textContent;
  const chain = document.getElementById('chain');
  const rows = [...document.querySelectorAll('#events tbody tr[data-seq]')].map((tr) => ({
    seq: Number(tr.dataset.seq), broken: tr.classList.contains('broken'),
    good: tr.querySelector('td:last-child .good') != null, mark: tr.lastElementChild.textContent,
  }));
  return { title: document.getElementById('detail-title').textContent, facts,
    chain: { text: chain.textContent, class: chain.className }, rows };
});

let browser;

async function run() {
  current = 'arguments';
  args = JSON.parse(process.argv[2] ?? 'null');
  check(typeof args?.url === 'string' && Array.isArray(args.disputes) && typeof args.open_dispute === 'string',
    `expected {"url", "disputes": [...], "open_dispute", "screenshots"} in argv[2], got ${process.argv[2]}`);
  passed.push(current);

  current = 'browser_launch';
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 }, colorScheme: 'light' });
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console error: ${m.text()} (${m.location().url})`));
  passed.push(current);
  const resolved = args.disputes.filter((d) => d.status === 'resolved');

  current = 'page_loads';
  const response = await page.goto(args.url);
  check(response?.ok(), `GET ${args.url}: HTTP ${response?.status()}`);
  await until(() => page.locator('#live').textContent(), (t) => t === 'live', 'the live indicator never said "live"');
  noErrors('loading the page');
  passed.push(current);

  current = 'list_shows_disputes';
  const readList = () => page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('#disputes tr[data-dispute]')].map((tr) => [tr.dataset.dispute,
      { status: tr.querySelector('.status')?.textContent, text: tr.innerText }])));
  const want = args.disputes.map((d) => [d.dispute_id, d.status, formatMoney(d.order_amount, d.currency)]);
  const list = await until(readList, (rows) => want.every(([id, status, amount]) =>
    rows[id]?.status === status && rows[id].text.includes(amount)), `the list lacks one of ${JSON.stringify(want)}`);
  log(`list: ${Object.keys(list).length} disputes`);
  await shot('list.png');
  passed.push(current);

  current = 'dispute_views';
  check(resolved.length > 0, 'no resolved dispute given');
  for (const [i, d] of resolved.entries()) {
    const history = new URL(`../api/v1/query/history?dispute_id=${encodeURIComponent(d.dispute_id)}`, args.url);
    const { events } = await (await fetch(history)).json(); // what the page should show (< 1000 events)
    const summary = new RegExp(`^${events.length} events?, every hash verified` +
      '(, \\d+ links? to the previous seq checked)?$');
    const resolution = `refund ${formatMoney(d.refund, d.currency)} to the buyer, ` +
      `release ${formatMoney(d.release, d.currency)} to the seller`;
    await go(`#/dispute/${encodeURIComponent(d.dispute_id)}`);
    const seen = await until(readDetail, (v) => v.title === `Dispute ${d.dispute_id}` && v.rows.length === events.length &&
      summary.test(v.chain.text), `dispute ${d.dispute_id}: timeline of ${events.length} events, "${summary.source}"`);
    check(seen.chain.class.split(' ').includes('good'), `dispute ${d.dispute_id}: chain summary not marked good`);
    check(seen.rows.every((r) => r.good && !r.broken),
      `dispute ${d.dispute_id}: an event not verified: ${JSON.stringify(seen.rows)}`);
    check(seen.facts.Status === d.status, `dispute ${d.dispute_id}: status ${seen.facts.Status}, not ${d.status}`);
    check(seen.facts.Resolution?.includes(resolution), `dispute ${d.dispute_id}: resolution "${seen.facts.Resolution}", ` +
      `expected it to say "${resolution}"`);
    if (i === 0) await shot('dispute.png');
  }
  noErrors('the dispute views');
  passed.push(current);

  current = 'tampered_history_flagged';
  const target = resolved[0].dispute_id;
  const isHistory = (url) => url.pathname.endsWith('/api/v1/query/history') &&
    url.searchParams.get('dispute_id') === target;
  let tampered = null; // the seq of the event changed
  await go(`#/dispute/${encodeURIComponent(target)}`);
  await until(readDetail, (v) => v.title === `Dispute ${target}` && v.chain.class.includes('good'), `${target} not shown`);
  await page.route(isHistory, async (route) => {
    try {
      const response = await route.fetch();
      const body = await response.json();
      // Change the money of the last event that carries some (else the first event's data), keep its hash.
      const e = body.events.findLast((x) => x.data?.refund_amount != null || x.data?.amount != null) ?? body.events[0];
      if (e?.data?.refund_amount != null) e.data.refund_amount += 100_000;
      else if (e?.data?.amount != null) e.data.amount += 100_000;
      else if (e) e.data = { ...e.data, tampered: true };
      await route.fulfill({ response, json: body });
      if (e) tampered = e.seq; // later pages (after a live refresh) are empty
    } catch (error) {
      log(`history route: ${error.message}`); // a request the page dropped; the check below decides
    }
  });
  await page.reload(); // a fresh page reads the whole history again, through the route
  const bad = await until(readDetail, (v) => tampered != null && v.rows.some((r) => r.seq === tampered && r.broken),
    `the changed event (seq ${tampered}) is not marked broken`);
  const expected = `event seq ${tampered}: hash does not match`;
  check(bad.chain.text === expected, `chain summary "${bad.chain.text}", expected "${expected}"`);
  check(bad.chain.class.split(' ').includes('bad'), `chain summary class "${bad.chain.class}", expected "bad"`);
  const row = bad.rows.find((r) => r.seq === tampered);
  check(row.mark.startsWith('✗') && row.mark.includes('hash does not match'), `seq ${tampered} marked "${row.mark}"`);
  check(bad.rows.filter((r) => r.broken).length === 1, `more than one event marked broken: ${JSON.stringify(bad.rows)}`);
  await shot('tampered.png');
  await page.unroute(isHistory);
  noErrors('the tampered history');
  passed.push(current);

  current = 'live_update';
  await go(`#/dispute/${encodeURIComponent(args.open_dispute)}`);
  const before = await until(readDetail, (v) => v.title === `Dispute ${args.open_dispute}` && v.rows.length > 0 &&
    v.chain.class.includes('good'), `dispute ${args.open_dispute}: no verified timeline`);
  await page.evaluate(() => { window.notReloaded = true; }); // gone if anything reloads the page
  say({ ready_for_event: true });
  const line = await nextLine();
  check(line != null, 'stdin closed before {"sent_seq": N}');
  const seq = JSON.parse(line).sent_seq;
  check(Number.isSafeInteger(seq), `bad line on stdin: ${line}`);
  const after = await until(readDetail, (v) => v.rows.some((r) => r.seq === seq),
    `no timeline row with seq ${seq} within 10 s (had ${before.rows.length} rows)`);
  check(after.rows.length > before.rows.length, `${after.rows.length} rows after, ${before.rows.length} before`);
  check(after.rows.every((r) => r.good) && after.chain.class.includes('good'), `not verified: ${after.chain.text}`);
  check(await page.evaluate(() => window.notReloaded === true), 'the page was reloaded');
  await shot('live.png');
  noErrors('the live update');
  passed.push(current);
}

let code = 1;
const timeout = sleep(TOTAL_MS).then(() => { throw new CheckFailed(`overall timeout of ${TOTAL_MS / 1000} s`); });
const stray = new Promise((_, reject) => process.on('unhandledRejection', reject)); // still report, still close
try {
  await Promise.race([run(), timeout, stray]);
  say({ ok: true, checks: passed });
  code = 0;
} catch (error) {
  log(error.stack ?? error);
  const detail = error instanceof CheckFailed ? error.message : String(error?.message ?? error);
  say({ ok: false, failed: current, detail });
} finally {
  await Promise.race([browser?.close(), sleep(5000)]); // always; a hung close does not keep us
}
process.exit(code);
