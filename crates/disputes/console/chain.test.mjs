// node --test crates/disputes/console/
// The chain check (chain.js), the console's pure helpers (console.js) and check-chain.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { canonicalJson, checkEvents, eventHash, sha256, sha256Hex } from './chain.js';
import { eventDetails, eventMoney, formatDue, formatMoney, formatUtc, queryPath } from './console.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const utf8 = (text) => new TextEncoder().encode(text);
const clone = (value) => structuredClone(value);

// ---- canonicalJson ----

test('canonicalJson sorts every object and drops whitespace (the store unit test vector)', () => {
  // crates/disputes-store/src/canonical.rs, keys_sorted_at_every_level_without_whitespace
  const value = { b: 1, a: { z: [3, { y: null, x: true }], 'é': 's', Z: -2 } };
  assert.equal(canonicalJson(value), '{"a":{"Z":-2,"z":[3,{"x":true,"y":null}],"é":"s"},"b":1}');
});

test('canonicalJson orders keys by code point, not by UTF-16 code unit', () => {
  // U+FF61 < U+1F600 by code point, but UTF-16 puts U+1F600 (0xD83D 0xDE00) first.
  const value = { '\u{1F600}': 1, '\uFF61': 2, 'é': 3, a: { ab: [1, null], a: true }, Z: 'z', '': 0 };
  // Python: json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
  assert.equal(canonicalJson(value), '{"":0,"Z":"z","a":{"a":true,"ab":[1,null]},"é":3,"\uFF61":2,"\u{1F600}":1}');
  assert.deepEqual(Object.keys(value).sort().slice(-2), ['\u{1F600}', '\uFF61']); // what .sort() alone gives
  assert.equal(canonicalJson({ '\u{10000}': 1, '\uFFFF': 2, '\uE000': 3 }), '{"\uE000":3,"\uFFFF":2,"\u{10000}":1}');
  assert.equal(canonicalJson({ ab: 1, a: 2, 'a\u{1F600}': 3, 'a\uFFFF': 4 }), '{"a":2,"ab":1,"a\uFFFF":4,"a\u{1F600}":3}');
});

test('canonicalJson escapes strings as serde_json does', () => {
  // serde_json: \" \\ \b \f \n \r \t, other characters below U+0020 as \u00xx (lowercase), the
  // rest as itself. Built here from those rules, independently of JSON.stringify.
  const short = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r', 34: '\\"', 92: '\\\\' };
  for (let c = 0; c < 0x80; c++) {
    const expected = short[c] ?? (c < 0x20 ? `\\u00${c.toString(16).padStart(2, '0')}` : String.fromCharCode(c));
    assert.equal(canonicalJson(String.fromCharCode(c)), `"${expected}"`, `U+${c.toString(16)}`);
  }
  assert.equal(canonicalJson('\u001f\u001b'), '"\\u001f\\u001b"'); // lowercase hex
  assert.equal(canonicalJson('a/b</script>'), '"a/b</script>"'); // '/' is not escaped
  const plain = 'é ü — ✓ \u007f \u0080 \u00a0 \u2028 \u2029 \uFEFF \uFFFF 😀 \u{10FFFF}';
  assert.equal(canonicalJson(plain), `"${plain}"`); // non-ASCII, U+2028/9 and astral as themselves
  assert.equal(canonicalJson({ 'k"\n': 'tab\there \u0001 \u2028 ü' }), '{"k\\"\\n":"tab\\there \\u0001 \u2028 ü"}');
  assert.throws(() => canonicalJson('\uD800'), /lone surrogate/); // a Rust string cannot hold one
  assert.throws(() => canonicalJson({ 'x\uDC00': 1 }), /lone surrogate/);
});

test('canonicalJson writes integers, null, booleans and arrays; refuses what has no canonical form', () => {
  assert.equal(canonicalJson([0, -2, 12999, 9007199254740991, -9007199254740991, -0]),
    '[0,-2,12999,9007199254740991,-9007199254740991,0]');
  assert.equal(canonicalJson([null, true, false, [], {}, [[{}]], '']), '[null,true,false,[],{},[[{}]],""]');
  assert.equal(canonicalJson(null), 'null');
  for (const bad of [1.5, 2 ** 53, NaN, Infinity, undefined, () => 1, 10n]) {
    assert.throws(() => canonicalJson([bad]), TypeError, String(bad));
  }
});

// ---- SHA-256 in JS ----

test('the JS SHA-256 gives the FIPS 180-4 vectors', () => {
  const vectors = [
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
    ['abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu',
      'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1'],
    ['a'.repeat(1_000_000), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0'],
  ];
  for (const [text, digest] of vectors) assert.equal(hex(sha256(utf8(text))), digest, `${text.length} bytes`);
});

test('the JS SHA-256 agrees with crypto.subtle at every padding boundary and on a long input', async () => {
  const bytes = new Uint8Array(300_000).map((_, i) => (i * 2654435761) >>> 24);
  for (const n of [...Array(200).keys(), 1000, 4095, 4096, 4097, bytes.length]) {
    const input = bytes.subarray(0, n);
    const expected = hex(new Uint8Array(await crypto.subtle.digest('SHA-256', input)));
    assert.equal(hex(sha256(input)), expected, `${n} bytes`);
  }
});

// ---- eventHash and checkEvents on envelopes ----

// docs/protocol.md, "Events": the example envelope and its hash.
const PROTOCOL_EXAMPLE = {
  event_id: '0194f3a2-7c1e-7b3a-9d2f-5e8c1a2b3c4d', seq: 5120, dispute_id: 'd-1001',
  version: 3, type: 'CounterProposed', occurred_at: '2026-11-27T08:00:00.250Z',
  command_id: 'c-7f3a', actor: { role: 'seller', id: 's-42' },
  data: { proposal: { solution: 'partial_refund', amount: 5000 } },
  prev_hash: '50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c',
  hash: '35c1d4fc3ae9b0a3df44bd5a6840af9bc11c83be111e333086fa1b814fe89181',
};

// crates/disputes-store/tests/it/canonical.rs: the store's own test vector (canonical bytes and
// hash, asserted there against the Rust code).
const STORE_EXAMPLE = {
  event_id: '018f0000-0000-7000-8000-000000000001', seq: 5120, dispute_id: 'd-1001', version: 2,
  type: 'CounterProposed', occurred_at: '2026-11-27T08:00:00Z', command_id: 'c-7f3a',
  actor: { role: 'seller', id: 's-42' },
  data: { proposal: { solution: 'partial_refund', amount: 5000 }, note: 'é "q"\n', list: [{ b: 1, a: 2 }, null, true] },
  prev_hash: 'ab'.repeat(32), hash: 'e486fa3e05bc56524be973fb20ccc264e64a7c6e27fb3603ec68ccc1ee32bcbd',
};
const STORE_CANONICAL = '{"actor":{"id":"s-42","role":"seller"},"command_id":"c-7f3a",' +
  '"data":{"list":[{"a":2,"b":1},null,true],"note":"é \\"q\\"\\n","proposal":{"amount":5000,"solution":"partial_refund"}},' +
  '"dispute_id":"d-1001","event_id":"018f0000-0000-7000-8000-000000000001","occurred_at":"2026-11-27T08:00:00Z",' +
  '"prev_hash":"abababababababababababababababababababababababababababababababab","seq":5120,"type":"CounterProposed","version":2}';

// One dispute's history as `history` returns it, modelled on docs/auditing.md's d-1001 (accents,
// an emoji, a tab, a newline, quotes, U+0001, U+2028, a backslash and a slash in one message).
// Seqs 33 and 34 belong to another dispute, so 35's prev_hash is not checkable here. The hashes
// were computed independently with python3 (hashlib.sha256 over prev_hash + json.dumps(body,
// sort_keys=True, separators=(",", ":"), ensure_ascii=False)), as docs/auditing.md does.
function historyOfD1001() {
  const B = { role: 'buyer', id: 'b-7' };
  const S = { role: 'seller', id: 's-42' };
  const rows = [
    [28, 'DisputeOpened', '2026-11-27T04:57:48.615Z', 'c-1', B, {
      buyer_id: 'b-7', description: 'Colis endommagé — écran fissuré ✓', order_amount: { amount: 12999, currency: 'EUR' },
      order_id: 'o-d-1001', proposal: { amount: 4000, solution: 'partial_refund' }, reason: 'not_as_described', seller_id: 's-42',
    }, '7'.repeat(64), 'ec2b84074304dc52ccf67d7a253d6f26e42ebfa55b4180723b191476f9157d4c'],
    [29, 'DeadlineSet', '2026-11-27T04:57:48.615Z', 'c-1', B, { deadline: 'seller_response', due_at: '2026-12-02T04:57:48.615Z' },
      null, 'ca0445d97e4c40b3e3b52bf7a5969db505f2b1ef1b17780866f551ac884d7dce'],
    [30, 'MessagePosted', '2026-11-27T04:57:48.622Z', 'c-2', S,
      { attachments: [], text: 'Désolé!\nTab\there "quoted" \u0001 \u2028 \\ / 😀' },
      null, '0b5de0d8be081c573567e7e826726edfdc7dfdf66ca3c45143156302d1e66bb4'],
    [31, 'CounterProposed', '2026-11-27T04:57:48.627Z', 'c-3', S, { proposal: { amount: 2500, solution: 'partial_refund' } },
      null, '953ba8db20213fa90839544c183649a86a3c324714cc19ac33a2fa0c18fb0a7e'],
    [32, 'DeadlineSet', '2026-11-27T04:57:48.627Z', 'c-3', S, { deadline: 'buyer_decision', due_at: '2026-12-02T04:57:48.627Z' },
      null, 'df564c760b25c181e453de3ea45059341831bd5d5023eb80d073c142fd50d2bb'],
    [35, 'ProposalAccepted', '2026-11-27T04:57:48.632Z', 'c-4', B, { by: 'buyer', proposal: { amount: 2500, solution: 'partial_refund' } },
      '3'.repeat(64), '135c4c09891312548ee412b43bcad6dafb48efa5e99b7e4b58c570d54e7e21d8'],
    [36, 'DisputeResolved', '2026-11-27T04:57:48.632Z', 'c-4', B,
      { basis: 'agreement', currency: 'EUR', refund_amount: 2500, release_amount: 10499, solution: 'partial_refund' },
      null, '904ed503d06f625c40aae11ce884eca7babe51716440d82931277c29207195b0'],
  ];
  let previous = null;
  return rows.map(([seq, type, occurred_at, command_id, actor, data, prev_hash, hash], i) => (previous = {
    event_id: `0194f3a2-7c1e-7b3a-9d2f-${String(seq).padStart(12, '0')}`, seq, dispute_id: 'd-1001', version: i + 1,
    type, occurred_at, command_id, actor, data, prev_hash: prev_hash ?? previous.hash, hash,
  }));
}

// Seq 1 (prev_hash 64 zeros), an expiry's actor, a null command_id and astral keys (python3 too).
const GENESIS = {
  event_id: '0194f3a2-0000-7000-8000-000000000001', seq: 1, dispute_id: 'd-1', version: 1, type: 'DisputeWithdrawn',
  occurred_at: '2026-11-27T08:00:00Z', command_id: null, actor: { role: 'system', id: 'scheduler' },
  data: { reason: null, '\u{1F600}': 1, '\uFF61': 2 }, prev_hash: '0'.repeat(64),
  hash: '07d7706b7d3b57a1a694539f00a3c656419a7b01af5d74b64a31f90b7fd9424c',
};

test('eventHash gives the hashes of the protocol, of the store tests and of python3', async () => {
  const { hash, ...body } = STORE_EXAMPLE;
  assert.equal(canonicalJson(body), STORE_CANONICAL);
  for (const envelope of [PROTOCOL_EXAMPLE, STORE_EXAMPLE, GENESIS, ...historyOfD1001()]) {
    assert.equal(await eventHash(envelope), envelope.hash, `seq ${envelope.seq}`);
  }
  assert.equal(await eventHash({ ...PROTOCOL_EXAMPLE, hash: 'anything' }), PROTOCOL_EXAMPLE.hash); // hash not covered
  assert.equal(typeof hash, 'string');
});

test('without crypto.subtle (not a secure context) the JS SHA-256 gives the same hashes', async () => {
  const original = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
  try {
    assert.equal(globalThis.crypto?.subtle, undefined);
    assert.equal(await sha256Hex(utf8('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    for (const envelope of [PROTOCOL_EXAMPLE, GENESIS, ...historyOfD1001()]) {
      assert.equal(await eventHash(envelope), envelope.hash);
    }
    assert.equal((await checkEvents(historyOfD1001())).summary.ok, true);
  } finally {
    Object.defineProperty(globalThis, 'crypto', original);
  }
});

test('checkEvents verifies a good history: hashes, versions, seqs, links between consecutive seqs', async () => {
  const { events, summary } = await checkEvents(historyOfD1001());
  assert.deepEqual(events.map((e) => e.ok), Array(7).fill(true));
  assert.deepEqual(events.map((e) => e.link), [null, true, true, true, true, null, true]);
  assert.deepEqual(summary, { ok: true, events: 7, verified: 7, links: 5,
    text: '7 events, every hash verified, 5 links to the previous seq checked' });
  const genesis = await checkEvents([GENESIS]);
  assert.equal(genesis.events[0].link, true);
  assert.equal(genesis.summary.text, '1 event, every hash verified, 1 link to the previous seq checked');
  assert.deepEqual((await checkEvents([])).summary, { ok: true, events: 0, verified: 0, links: 0, text: 'no events' });
});

test('checkEvents reports a changed event, a recomputed hash, a missing or reordered event', async () => {
  // One character changed, its hash kept: that event's hash fails, and only it.
  const changed = historyOfD1001();
  changed[2].data.text = changed[2].data.text.replace('Tab', 'Tab!');
  let result = await checkEvents(changed);
  assert.deepEqual(result.events.map((e) => e.ok), [true, true, false, true, true, true, true]);
  assert.equal(result.summary.ok, false);
  assert.equal(result.summary.text, 'event seq 30: hash does not match');

  // An amount changed and its hash recomputed: the next event's link breaks.
  const rehashed = historyOfD1001();
  rehashed[3].data.proposal.amount = 2400;
  rehashed[3].hash = await eventHash(rehashed[3]);
  result = await checkEvents(rehashed);
  assert.deepEqual(result.events.map((e) => e.ok), [true, true, true, true, false, true, true]);
  assert.equal(result.summary.text, 'event seq 32: prev_hash is not the hash of seq 31');

  // The last event's hash and a later one's: the summary names the first and counts the rest.
  const two = historyOfD1001();
  two[6].data.refund_amount = 12999;
  two[0].hash = 'f'.repeat(64);
  result = await checkEvents(two);
  assert.equal(result.summary.text,
    'event seq 28: hash does not match (and 2 more events failing)'); // 29's link and 36's hash
  assert.equal(result.summary.verified, 5);

  // An event removed: a gap in the versions.
  const missing = historyOfD1001();
  missing.splice(3, 1);
  result = await checkEvents(missing);
  assert.equal(result.summary.text, 'event seq 32: version 5 where 4 was expected');
  assert.equal(result.events[3].link, null); // 30 → 32: not consecutive, not checkable

  // Two events swapped.
  const swapped = historyOfD1001();
  [swapped[5], swapped[6]] = [swapped[6], swapped[5]];
  result = await checkEvents(swapped);
  assert.equal(result.summary.text, 'event seq 36: version 7 where 6 was expected (and 1 more event failing)');
  assert.ok(result.events[6].problems.includes('seq does not increase after seq 36'));

  // Seq 1 whose prev_hash is not 64 zeros; another dispute's event; a float.
  result = await checkEvents([{ ...GENESIS, prev_hash: '1'.repeat(64) }]);
  assert.deepEqual(result.events[0].problems, ['hash does not match', 'prev_hash of seq 1 is not 64 zeros']);
  const mixed = historyOfD1001().slice(0, 2);
  mixed[1].dispute_id = 'd-2';
  assert.match((await checkEvents(mixed)).summary.text, /^event seq 29: hash does not match; dispute d-2, not d-1001$/);
  const float = historyOfD1001().slice(0, 1);
  float[0].data.order_amount.amount = 129.99;
  assert.match((await checkEvents(float)).summary.text, /^event seq 28: hash cannot be computed: 129.99 is not an exact integer$/);
  assert.equal((await checkEvents([null])).summary.ok, false);
});

// ---- check-chain.mjs ----

test('check-chain.mjs prints one JSON line and exits 0 when intact, 1 otherwise', () => {
  const script = fileURLToPath(new URL('./check-chain.mjs', import.meta.url));
  const run = (input) => spawnSync(process.execPath, [script], { input, encoding: 'utf8' });
  let out = run(JSON.stringify(historyOfD1001()));
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim().split('\n').length, 1);
  const report = JSON.parse(out.stdout);
  assert.equal(report.summary.ok, true);
  assert.equal(report.events.length, 7);

  const tampered = historyOfD1001();
  tampered[6].data.release_amount = 10500;
  out = run(JSON.stringify(tampered));
  assert.equal(out.status, 1);
  assert.equal(JSON.parse(out.stdout).summary.text, 'event seq 36: hash does not match');

  for (const bad of ['', 'not json', '{"events": 1}', '42']) {
    out = run(bad);
    assert.equal(out.status, 1, bad);
    assert.equal(JSON.parse(out.stdout).summary.ok, false);
  }
  out = run(JSON.stringify({ ok: true, events: historyOfD1001(), next: null })); // a whole history reply
  assert.equal(out.status, 0);
});

// ---- console.js helpers ----

test('formatMoney uses the currency\'s own minor digits, exactly', () => {
  assert.equal(formatMoney(12999, 'USD'), '129.99 USD');
  assert.equal(formatMoney(5, 'EUR'), '0.05 EUR');
  assert.equal(formatMoney(10499, 'EUR'), '104.99 EUR');
  assert.equal(formatMoney(123456789, 'USD'), '1,234,567.89 USD');
  assert.equal(formatMoney(500, 'JPY'), '500 JPY');
  assert.equal(formatMoney(1234, 'BHD'), '1.234 BHD');
  assert.equal(formatMoney(9007199254740991, 'USD'), '90,071,992,547,409.91 USD'); // no float rounding
  assert.equal(formatMoney(12999, 'usd!'), '12999 usd!'); // not a currency: plain digits
  assert.equal(formatMoney(null, 'USD'), '');
});

test('formatDue and formatUtc', () => {
  const now = Date.parse('2026-11-27T08:00:00Z');
  assert.deepEqual(formatDue('2026-11-27T11:40:00Z', now), { overdue: false, text: 'in 3 h' });
  assert.deepEqual(formatDue('2026-11-25T07:00:00Z', now), { overdue: true, text: 'overdue by 2 d' });
  assert.deepEqual(formatDue('2026-11-27T08:00:00Z', now), { overdue: true, text: 'overdue by 0 s' });
  assert.deepEqual(formatDue('2026-11-27T08:12:30.500Z', now), { overdue: false, text: 'in 12 min' });
  assert.deepEqual(formatDue('2026-12-02T08:00:00Z', now), { overdue: false, text: 'in 5 d' });
  assert.deepEqual(formatDue('2026-11-29T07:00:00Z', now), { overdue: false, text: 'in 47 h' });
  assert.equal(formatUtc('2026-11-27T08:00:00Z'), '2026-11-27 08:00:00 UTC');
  assert.equal(formatUtc('2026-11-27T04:57:48.615Z'), '2026-11-27 04:57:48.615 UTC');
  assert.equal(formatUtc('2026-11-27T10:00:00+02:00'), '2026-11-27 08:00:00 UTC');
});

test('eventMoney and eventDetails describe an event compactly', () => {
  const [opened, set, message, countered, , accepted, resolved] = historyOfD1001();
  assert.equal(eventMoney(opened.data), 'order 129.99 EUR; proposal partial_refund 40.00 EUR');
  assert.equal(eventMoney(countered.data, 'EUR'), 'proposal partial_refund 25.00 EUR');
  assert.equal(eventMoney(accepted.data, 'EUR'), 'proposal partial_refund 25.00 EUR');
  assert.equal(eventMoney(resolved.data), 'refund 25.00 EUR; release 104.99 EUR');
  assert.equal(eventMoney({ outcome: 'partial_refund', amount: 700, responsible_party: 'seller', note: null }, 'JPY'), 'amount 700 JPY');
  assert.equal(eventMoney({ outcome: 'release_funds', amount: null }, 'USD'), '');
  assert.equal(eventMoney({ proposal: { solution: 'full_refund' } }, 'USD'), 'proposal full_refund');
  assert.equal(eventDetails(set.data), 'deadline: seller_response, due_at: 2026-12-02T04:57:48.615Z');
  assert.equal(eventDetails(message.data), `text: ${message.data.text}`);
  assert.equal(eventDetails(resolved.data), 'basis: agreement, solution: partial_refund');
  assert.equal(eventDetails({}), '');
});

test('queryPath puts parameters in the query string and leaves empty ones out', () => {
  assert.equal(queryPath('list', { status: 'resolved', stage: '', seller_id: 's-42', limit: 50, after: null }),
    'query/list?status=resolved&seller_id=s-42&limit=50');
  assert.equal(queryPath('stats', { seller_id: '' }), 'query/stats');
  assert.equal(queryPath('history', { dispute_id: 'd-1', after: 0, limit: 1000, min_seq: 5120 }),
    'query/history?dispute_id=d-1&after=0&limit=1000&min_seq=5120');
});
