// The disputes console: a read-only page over the service's HTTP API (docs/console.md).
// Plain DOM, no framework. Text goes into the page as text nodes only (never innerHTML), so a
// dispute's free text cannot inject markup. The pure helpers are exported for the node tests.
import { checkEvents } from './chain.js';

export const STATUSES = [
  'awaiting_seller_response', 'awaiting_buyer_decision', 'awaiting_shipping_proof',
  'awaiting_buyer_evidence', 'under_review', 'awaiting_return_address',
  'awaiting_return_shipment', 'awaiting_return_receipt', 'resolved',
];
export const STAGES = ['agreement', 'escalated', 'execution', 'closed'];
const ROLES = ['buyer', 'seller', 'mediator'];
const WHO_ACTS = {
  seller_response: 'seller', shipping_proof: 'seller', return_address: 'seller',
  return_receipt: 'seller', buyer_decision: 'buyer', buyer_evidence: 'buyer',
  return_shipment: 'buyer',
};

// ---- Formatting (pure) ----

/** Minor units as a decimal in the currency's own minor digits: 12999 USD → "129.99 USD". */
export function formatMoney(amount, currency) {
  if (!Number.isSafeInteger(amount)) return amount == null ? '' : `${amount} ${currency ?? ''}`.trim();
  let digits;
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency })
      .resolvedOptions().maximumFractionDigits;
  } catch {
    return `${amount} ${currency ?? ''}`.trim(); // not a currency Intl knows: plain digits
  }
  // Split the digits as a string, so amounts up to 2^53 - 1 stay exact (no division in floats).
  const text = String(Math.abs(amount)).padStart(digits + 1, '0');
  const whole = new Intl.NumberFormat('en').format(BigInt(text.slice(0, text.length - digits)));
  const minor = digits ? `.${text.slice(text.length - digits)}` : '';
  return `${amount < 0 ? '-' : ''}${whole}${minor} ${currency}`;
}

/** An RFC 3339 instant in UTC: "2026-11-27 08:00:00 UTC" (milliseconds when not zero). */
export function formatUtc(iso) {
  const date = new Date(iso);
  if (iso == null || Number.isNaN(date.getTime())) return iso ?? '';
  const s = date.toISOString();
  return `${s.slice(0, 10)} ${s.slice(11, s.endsWith('.000Z') ? 19 : 23)} UTC`;
}

function formatSpan(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** How far a due time is, by the browser's clock: {overdue, text: "in 3 h" | "overdue by 2 d"}. */
export function formatDue(dueAt, now = Date.now()) {
  const ms = Date.parse(dueAt) - now;
  if (Number.isNaN(ms)) return { overdue: false, text: '' };
  return ms <= 0
    ? { overdue: true, text: `overdue by ${formatSpan(-ms)}` }
    : { overdue: false, text: `in ${formatSpan(ms)}` };
}

export function formatProposal(proposal, currency) {
  if (!proposal) return '—';
  return proposal.amount == null
    ? proposal.solution
    : `${proposal.solution} ${formatMoney(proposal.amount, currency)}`;
}

/** The money an event's data carries, as text ("" when none). */
export function eventMoney(data, currency) {
  if (!data) return '';
  const cur = data.currency ?? data.order_amount?.currency ?? currency;
  const out = [];
  if (data.order_amount) out.push(`order ${formatMoney(data.order_amount.amount, data.order_amount.currency)}`);
  if (data.proposal) out.push(`proposal ${formatProposal(data.proposal, cur)}`);
  if (data.amount != null) out.push(`amount ${formatMoney(data.amount, cur)}`);
  if (data.refund_amount != null) out.push(`refund ${formatMoney(data.refund_amount, cur)}`);
  if (data.release_amount != null) out.push(`release ${formatMoney(data.release_amount, cur)}`);
  return out.join('; ');
}

const MONEY_KEYS = new Set(['order_amount', 'proposal', 'amount', 'refund_amount', 'release_amount', 'currency']);

/** An event's other data, compactly: "deadline: buyer_decision, due_at: …" (nulls and [] left out). */
export function eventDetails(data) {
  return Object.entries(data ?? {})
    .filter(([key, v]) => v !== null && !MONEY_KEYS.has(key) && !(Array.isArray(v) && v.length === 0))
    .map(([key, v]) => `${key}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}

/** The path of a query below /api/v1/, empty parameters left out. */
export function queryPath(name, params = {}) {
  const search = new URLSearchParams();
  for (const [key, v] of Object.entries(params)) if (v != null && v !== '') search.set(key, String(v));
  const text = search.toString();
  return `query/${name}${text ? `?${text}` : ''}`;
}

// ---- The API ----

let api; // the URL of /api/v1/, relative to the page (so a reverse proxy may mount it anywhere)
let lastSeq = 0; // the last seq the read models applied, from /api/v1/events

class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function query(name, params) {
  if (lastSeq) params = { ...params, min_seq: lastSeq }; // read at least what was announced
  let response;
  try {
    response = await fetch(new URL(queryPath(name, params), api), { cache: 'no-store' });
  } catch (error) {
    throw new ApiError('network', `${name}: ${error.message}`);
  }
  const body = await response.json().catch(() => null);
  if (body?.ok === true) return body;
  throw new ApiError(body?.error?.code ?? `http_${response.status}`,
    `${name}: ${body?.error?.message ?? `HTTP ${response.status}`}`);
}

// ---- DOM helpers ----

const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), v);
    else el.setAttribute(key, v === true ? '' : v);
  }
  el.append(...children.flat().filter((c) => c != null).map((c) => (c instanceof Node ? c : String(c))));
  return el;
}

const time = (iso) => iso
  ? h('time', { datetime: iso, title: `${new Date(iso).toLocaleString()} (local time)` }, formatUtc(iso))
  : '—';
const disputeLink = (id) => h('a', { href: `#/dispute/${encodeURIComponent(id)}` }, id);

// "in 3 h" / "overdue by 2 d", redrawn in place every 30 s by tick().
function due(dueAt) {
  return tick(h('span', { 'data-due': dueAt }));
}

function tick(el) {
  const d = formatDue(el.dataset.due);
  el.className = d.overdue ? 'overdue' : 'pending';
  el.textContent = d.text;
  return el;
}

// Replaces a table's rows; a link that had the focus keeps it (live updates redraw often).
function fill(tbody, rows, columns, empty) {
  const focused = tbody.contains(document.activeElement) ? document.activeElement.getAttribute('href') : null;
  tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: columns, class: 'empty' }, empty))]));
  if (focused) tbody.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
}

function showError(error) {
  $('error').hidden = !error;
  $('error').textContent = error ? `${error.message} (${error.code})` : '';
}

// ---- The overview: stats, deadlines, disputes ----

const list = { filters: {}, limit: 50, after: null, back: [], next: null, disputes: [] };
let statsSeller = '';

async function loadStats() {
  const seller = statsSeller;
  const { stats } = await query('stats', { seller_id: seller });
  const rank = (order, key) => (order.includes(key) ? order.indexOf(key) : order.length);
  const counts = (object, order) => Object.entries(object ?? {})
    .sort(([a], [b]) => rank(order, a) - rank(order, b) || a.localeCompare(b))
    .map(([key, n]) => h('tr', {}, h('th', { scope: 'row' }, key), h('td', { class: 'num' }, n)));
  $('stats-scope').textContent = seller ? `seller ${seller}` : 'all sellers';
  $('stats-total').textContent = stats.total;
  $('stats-open').textContent = stats.open;
  fill($('by-status').tBodies[0], counts(stats.by_status, STATUSES), 2, 'none');
  fill($('by-basis').tBodies[0], counts(stats.resolved_by_basis, []), 2, 'none');
}

async function loadDeadlines() {
  const { deadlines } = await query('deadlines', { limit: $('deadlines-limit').value });
  fill($('deadlines').tBodies[0], deadlines.map((d) => h('tr', {},
    h('td', {}, disputeLink(d.dispute_id)), h('td', {}, d.deadline), h('td', {}, WHO_ACTS[d.deadline] ?? '—'),
    h('td', {}, time(d.due_at)), h('td', {}, due(d.due_at)))), 5, 'No active deadlines.');
}

async function loadList() {
  const key = JSON.stringify([list.filters, list.limit, list.after]);
  const reply = await query('list', { ...list.filters, limit: list.limit, after: list.after });
  if (key !== JSON.stringify([list.filters, list.limit, list.after])) return; // the page changed meanwhile
  list.disputes = reply.disputes;
  list.next = reply.next;
  renderList();
}

function renderList() {
  const row = (d, ...cells) => h('tr', { 'data-dispute': d.dispute_id, onclick: () => openDispute(d.dispute_id) }, ...cells);
  fill($('disputes').tBodies[0], list.disputes.map((d) => row(d,
    h('th', { scope: 'row' }, disputeLink(d.dispute_id)), h('td', {}, d.order_id), h('td', {}, d.buyer_id),
    h('td', {}, d.seller_id), h('td', {}, d.reason), h('td', {}, d.stage),
    h('td', {}, h('span', { class: `status ${d.status}` }, d.status)),
    h('td', { class: 'num' }, formatMoney(d.order_amount?.amount, d.order_amount?.currency)),
    h('td', {}, d.deadline?.deadline ?? '—'), h('td', {}, d.deadline ? [time(d.deadline.due_at), ' ', due(d.deadline.due_at)] : '—'),
    h('td', { class: 'num' }, d.version), h('td', {}, time(d.updated_at)))), 12, 'No disputes match.');
  $('prev').disabled = list.back.length === 0;
  $('next').disabled = list.next == null;
  $('page').textContent = `Page ${list.back.length + 1}`;
}

function openDispute(id) {
  location.hash = `#/dispute/${encodeURIComponent(id)}`;
}

// ---- One dispute: the view, the actions, the timeline and its hash chain ----

let detail = null; // {id, loaded, view, events, check} of the dispute shown

async function loadDetail() {
  const shown = detail;
  let view = null;
  try {
    view = (await query('get', { dispute_id: shown.id })).dispute;
  } catch (error) {
    if (error.code !== 'not_found') throw error;
  }
  const fresh = []; // the events after those already shown: a history only grows
  for (let after = shown.events.at(-1)?.version ?? 0; ;) {
    const page = await query('history', { dispute_id: shown.id, after, limit: 1000 });
    fresh.push(...page.events);
    if (page.next == null || page.events.length === 0) break;
    after = page.next;
  }
  if (detail !== shown) return; // another dispute was opened meanwhile
  shown.view = view;
  shown.loaded = true;
  if (fresh.length || !shown.check) {
    shown.events = shown.events.concat(fresh);
    shown.check = await checkEvents(shown.events);
  }
  renderDetail();
}

function renderDetail() {
  const { id, loaded, view, events, check } = detail;
  $('detail-title').textContent = `Dispute ${id}`;
  const currency = view?.order_amount?.currency ?? events[0]?.data?.order_amount?.currency;
  const facts = !loaded ? [['Status', 'loading…']] : view ? [
    ['Status', h('span', { class: `status ${view.status}` }, view.status)], ['Stage', view.stage],
    ['Reason', view.reason], ['Order', view.order_id], ['Buyer', view.buyer_id], ['Seller', view.seller_id],
    ['Order amount', formatMoney(view.order_amount?.amount, currency)],
    ['Proposal on the table', formatProposal(view.proposal, currency)],
    ['Deadline', view.deadline ? [`${view.deadline.deadline} (${WHO_ACTS[view.deadline.deadline] ?? '?'} must act), due `,
      time(view.deadline.due_at), ', ', due(view.deadline.due_at)] : 'none'],
    ['Resolution', view.resolution ? `${view.resolution.solution} (basis ${view.resolution.basis}): refund ` +
      `${formatMoney(view.resolution.refund_amount, view.resolution.currency ?? currency)} to the buyer, release ` +
      `${formatMoney(view.resolution.release_amount, view.resolution.currency ?? currency)} to the seller` : 'not resolved'],
    ['Version', view.version], ['Opened', time(view.opened_at)], ['Updated', time(view.updated_at)],
  ] : [['Status', events.length ? 'not in the read models yet' : 'no such dispute']];
  $('view').replaceChildren(...facts.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  fill($('actions').tBodies[0], view ? ROLES.map((role) => h('tr', {}, h('th', { scope: 'row' }, role),
    h('td', {}, view.actions?.[role]?.length ? view.actions[role].join(', ') : 'nothing'))) : [], 2, '—');
  const summary = check ? check.summary.text : 'checking…';
  if ($('chain').textContent !== summary) $('chain').textContent = summary; // a live region: say it once
  $('chain').className = `chain ${check ? (check.summary.ok ? 'good' : 'bad') : ''}`;
  fill($('events').tBodies[0], events.map((e, i) => {
    const r = check?.events[i];
    const mark = !r ? '…' : r.ok
      ? h('span', { class: 'good', title: `hash ${e.hash}${r.link ? `; prev_hash is the hash of seq ${e.seq - 1}` : ''}` },
        '✓ ', h('span', { class: 'sr' }, 'verified '), h('code', {}, String(e.hash).slice(0, 8)))
      : h('span', { class: 'bad', title: `stored ${e.hash}, recomputed ${r.computed}` }, `✗ ${r.problems.join('; ')}`);
    return h('tr', { 'data-seq': e.seq, class: r && !r.ok ? 'broken' : null },
      h('td', { class: 'num' }, e.version), h('td', { class: 'num' }, e.seq), h('th', { scope: 'row' }, e.type),
      h('td', {}, `${e.actor?.role}/${e.actor?.id}`), h('td', {}, time(e.occurred_at)),
      h('td', {}, eventMoney(e.data, currency)), h('td', { class: 'data' }, eventDetails(e.data)), h('td', {}, mark));
  }), 8, 'No events.');
}

// ---- Routing, refreshing, live updates ----

function route(event) {
  const match = /^#\/dispute\/(.+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  $('overview').hidden = id != null;
  $('detail').hidden = id == null;
  if (id != null && detail?.id !== id) {
    detail = { id, loaded: false, view: null, events: [], check: null };
    renderDetail();
  }
  if (id == null) detail = null;
  if (event) $(id == null ? 'overview-title' : 'detail-title').focus(); // a view changed: go to its title
  refresh();
}

let running = null;
let again = false;
let retry = null;

// Loads what is shown; calls made while a load runs are coalesced into one more load after it.
function refresh() {
  if (running) {
    again = true;
    return;
  }
  running = (async () => {
    do {
      again = false;
      const loads = detail ? [loadDetail()] : [loadStats(), loadDeadlines(), loadList()];
      const failed = (await Promise.allSettled(loads)).find((r) => r.status === 'rejected');
      showError(failed?.reason ?? null);
      if (['unavailable', 'timeout', 'network'].includes(failed?.reason?.code) && !retry) {
        retry = setTimeout(() => { retry = null; refresh(); }, 3000);
      }
    } while (again);
    running = null;
  })();
}

function setLive(state, text) {
  $('live').className = `live ${state}`;
  $('live').textContent = text;
}

let ready = false; // the service's, as /api/v1/info last said

async function loadInfo() {
  try {
    const info = await (await fetch(new URL('info', api), { cache: 'no-store' })).json();
    ready = info.ready === true;
    $('info').textContent = `${info.subject_prefix} · ${info.version} (${String(info.commit).slice(0, 10)})` +
      (info.ready ? '' : ' · not ready yet');
  } catch {
    $('info').textContent = '';
  }
}

function connect() {
  const source = new EventSource(new URL('events', api));
  setLive('connecting', 'connecting…');
  source.onopen = () => {
    setLive('on', 'live');
    loadInfo();
  };
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) return setLive('off', 'reconnecting…');
    setLive('off', 'offline, retrying'); // refused for good (not an event stream): start again later
    setTimeout(connect, 5000);
  };
  source.addEventListener('projected', (event) => {
    let seq;
    try {
      seq = JSON.parse(event.data).seq;
    } catch {
      return;
    }
    // Seqs only grow; a smaller one means another data dir: follow it rather than wait for N.
    if (Number.isSafeInteger(seq) && seq !== lastSeq) {
      lastSeq = seq;
      refresh();
      if (!ready) loadInfo();
    }
  });
}

function start() {
  api = new URL('../api/v1/', location.href);
  const select = (el, values) => el.append(...values.map((v) => h('option', { value: v }, v)));
  select($('status'), STATUSES);
  select($('stage'), STAGES);
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!event.target.reportValidity()) return;
    const form = new FormData(event.target);
    list.filters = {};
    for (const key of ['status', 'stage', 'seller_id', 'buyer_id']) list.filters[key] = form.get(key).trim();
    list.limit = Number(form.get('limit'));
    list.after = null;
    list.back = [];
    refresh();
  });
  $('clear').addEventListener('click', () => {
    $('filters').reset();
    $('filters').requestSubmit();
  });
  $('next').addEventListener('click', () => {
    list.back.push(list.after);
    list.after = list.next;
    refresh();
  });
  $('prev').addEventListener('click', () => {
    list.after = list.back.pop() ?? null;
    refresh();
  });
  $('stats-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!event.target.reportValidity()) return;
    statsSeller = new FormData(event.target).get('seller_id').trim();
    refresh();
  });
  $('deadlines-limit').addEventListener('change', refresh);
  $('reload').addEventListener('click', refresh);
  // Time passes without events: redraw "in 3 h" / "overdue by 2 d" where they are.
  setInterval(() => document.querySelectorAll('[data-due]').forEach(tick), 30000);
  window.addEventListener('hashchange', route);
  loadInfo();
  connect();
  route();
}

if (typeof document !== 'undefined') start();
