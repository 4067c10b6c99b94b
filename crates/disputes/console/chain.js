// The hash chain of docs/protocol.md ("Events"), checked in the browser or in Node 20. No DOM.
//
// hash = lowercase hex SHA-256( prev_hash as its 64 ASCII hex characters ‖ canonical bytes ), the
// canonical bytes being the envelope without `hash` as JSON with every object's keys sorted by
// code point, no whitespace, integers as integers, strings escaped as serde_json escapes them
// (crates/disputes-store/src/canonical.rs).

const encoder = new TextEncoder();

// A lone surrogate: in a `u` regex, the halves of a well-formed pair are one code point, not two.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

// Compares two strings by Unicode code point (= UTF-8 byte order, as the Rust side sorts). JS's
// default `<` compares UTF-16 code units, which puts U+10000..U+10FFFF (surrogate pairs) before
// U+E000..U+FFFF; code point order puts them after.
function byCodePoint(a, b) {
  for (let i = 0, j = 0; i < a.length && j < b.length; ) {
    const x = a.codePointAt(i), y = b.codePointAt(j);
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return a.length - b.length; // equal so far: the shorter one is a prefix of the other
}

// serde_json writes a string as `"`, then `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, any other
// character below U+0020 as `\u00xx` (lowercase hex), everything else (`/`, U+007F, U+2028,
// U+2029, non-ASCII, astral characters) as itself, then `"`. JSON.stringify of a string does
// exactly the same (ECMA-262 QuoteJSONString: the same short escapes, `\u00xx` with lowercase hex
// for the other code units below 0x20, nothing else escaped) for a well-formed string. The only
// difference: a lone surrogate, which JSON.stringify writes as `\udxxx` and a Rust string cannot
// hold; so none can be in what the service hashed, and we refuse one.
function quote(text) {
  if (LONE_SURROGATE.test(text)) throw new TypeError('a string holds a lone surrogate');
  return JSON.stringify(text);
}

/** The canonical JSON text of `value` (a value as JSON.parse returns it, integers only). */
export function canonicalJson(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // Beyond 2^53 - 1 JSON.parse has already rounded the number; a float has no canonical form.
      if (!Number.isSafeInteger(value)) throw new TypeError(`${value} is not an exact integer`);
      return String(value); // -0 gives "0"
    case 'string':
      return quote(value);
    case 'object':
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      return `{${Object.keys(value)
        .sort(byCodePoint)
        .map((key) => `${quote(key)}:${canonicalJson(value[key])}`)
        .join(',')}}`;
    default:
      throw new TypeError(`a ${typeof value} is not JSON`);
  }
}

// SHA-256 (FIPS 180-4) in plain JS, for pages that are not a secure context and so have no
// crypto.subtle (plain http from a host other than localhost).
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const rotr = (x, n) => (x >>> n) | (x << (32 - n));

/** SHA-256 of `bytes` (a Uint8Array), computed in JS: a Uint8Array of 32 bytes. */
export function sha256(bytes) {
  const length = bytes.length;
  const padded = new Uint8Array((((length + 8) >> 6) + 1) << 6); // + 0x80, + 64-bit length
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000)); // length in bits, high word
  view.setUint32(padded.length - 4, (length * 8) >>> 0); // low word
  const H = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const W = new Uint32Array(64); // a Uint32Array keeps every sum modulo 2^32
  for (let block = 0; block < padded.length; block += 64) {
    for (let t = 0; t < 16; t++) W[t] = view.getUint32(block + 4 * t);
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(W[t - 15], 7) ^ rotr(W[t - 15], 18) ^ (W[t - 15] >>> 3);
      const s1 = rotr(W[t - 2], 17) ^ rotr(W[t - 2], 19) ^ (W[t - 2] >>> 10);
      W[t] = W[t - 16] + s0 + W[t - 7] + s1;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let t = 0; t < 64; t++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  H.forEach((word, i) => outView.setUint32(4 * i, word));
  return out;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** Lowercase hex SHA-256 of `bytes`: crypto.subtle when there is one, else the JS one. */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (subtle) return hex(new Uint8Array(await subtle.digest('SHA-256', bytes)));
  return hex(sha256(bytes));
}

/** The hash an envelope should carry, recomputed from its content (async; lowercase hex). */
export async function eventHash(envelope) {
  const { hash, ...rest } = envelope; // everything but `hash`
  if (typeof rest.prev_hash !== 'string') throw new TypeError('prev_hash is not a string');
  return sha256Hex(encoder.encode(rest.prev_hash + canonicalJson(rest)));
}

/**
 * Checks one dispute's envelopes, in the order given (version order, as `history` returns them):
 * each event's own hash; versions 1..n without a gap; seqs increasing; one dispute; and, where an
 * event's seq is the previous event's + 1, that its prev_hash is that event's hash (64 zeros
 * before seq 1). Between non-consecutive seqs lie other disputes' events, so the link there is not
 * checked here: `disputes audit verify` checks the whole log.
 *
 * Returns {events: [{seq, version, type, hash_ok, computed, link, problems, ok}], summary:
 * {ok, events, verified, links, text}}; `link` is true, false, or null (not checkable).
 */
export async function checkEvents(envelopes) {
  const events = [];
  let previous = null;
  for (const envelope of envelopes) {
    const { seq, version, type } = envelope ?? {};
    const result = { seq, version, type, hash_ok: false, computed: null, link: null, problems: [] };
    const problems = result.problems;
    try {
      result.computed = await eventHash(envelope);
      result.hash_ok = result.computed === envelope.hash;
      if (!result.hash_ok) problems.push('hash does not match');
    } catch (error) {
      problems.push(`hash cannot be computed: ${error.message}`);
    }
    // Against the previous event, so a gap is reported once, at the event after it.
    const expected = previous ? previous.version + 1 : 1;
    if (version !== expected) problems.push(`version ${version} where ${expected} was expected`);
    if (!Number.isSafeInteger(seq) || seq < 1) problems.push(`seq ${seq} is not a positive integer`);
    if (previous) {
      if (envelope?.dispute_id !== previous.dispute_id) {
        problems.push(`dispute ${envelope?.dispute_id}, not ${previous.dispute_id}`);
      }
      if (!(seq > previous.seq)) problems.push(`seq does not increase after seq ${previous.seq}`);
      if (seq === previous.seq + 1) {
        result.link = envelope.prev_hash === previous.hash;
        if (!result.link) problems.push(`prev_hash is not the hash of seq ${previous.seq}`);
      }
    }
    if (seq === 1) {
      result.link = envelope.prev_hash === '0'.repeat(64);
      if (!result.link) problems.push('prev_hash of seq 1 is not 64 zeros');
    }
    result.ok = problems.length === 0;
    events.push(result);
    previous = envelope ?? {};
  }
  const verified = events.filter((e) => e.hash_ok).length;
  const links = events.filter((e) => e.link === true).length;
  const broken = events.filter((e) => !e.ok);
  let text;
  if (events.length === 0) text = 'no events';
  else if (broken.length === 0) {
    const n = events.length;
    text = `${n} event${n === 1 ? '' : 's'}, every hash verified` +
      (links ? `, ${links} link${links === 1 ? '' : 's'} to the previous seq checked` : '');
  } else {
    const first = broken[0];
    const more = broken.length - 1;
    text = `event seq ${first.seq}: ${first.problems.join('; ')}` +
      (more ? ` (and ${more} more event${more === 1 ? '' : 's'} failing)` : '');
  }
  const summary = { ok: broken.length === 0, events: events.length, verified, links, text };
  return { events, summary };
}
