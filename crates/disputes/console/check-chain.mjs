#!/usr/bin/env node
// Checks one dispute's hash chain from the command line (the console's check, chain.js):
//   node check-chain.mjs < envelopes.json
// stdin: a JSON array of envelopes in version order, as the `history` query returns them in
// `events` (a whole `history` reply, {"ok": true, "events": [...]}, is accepted too).
// stdout: checkEvents' result as one JSON line, {"events": [...], "summary": {"ok", "text", ...}}.
// Exit code: 0 when every check passed, 1 otherwise (a broken chain, or input that is not that).
import { checkEvents } from './chain.js';

let input = '';
for await (const chunk of process.stdin.setEncoding('utf8')) input += chunk;

let result;
try {
  const value = JSON.parse(input);
  const envelopes = Array.isArray(value) ? value : value?.events;
  if (!Array.isArray(envelopes)) throw new Error('expected a JSON array of envelopes');
  result = await checkEvents(envelopes);
} catch (error) {
  result = { events: [], summary: { ok: false, events: 0, verified: 0, links: 0, text: `input: ${error.message}` } };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exitCode = result.summary.ok ? 0 : 1;
