// Checks real traffic against docs/schemas/: every request and reply the end-to-end tests sent and
// received, and every event they read from DISPUTE_EVENTS, as their test client recorded them
// (DISPUTES_TRAFFIC_DIR, crates/disputes/tests/kit/client.rs; `./x test` sets it).
//  - a reply on `<prefix>.cmd.<type>`: `command-accepted` when ok, else `refusal`;
//  - a reply on `<prefix>.query.<name>`: `query-<name>-reply` when ok, else `refusal`;
//  - a request: `command-<type>` or `query-<name>`, when the service accepted it or refused it
//    for a reason that is not its shape (a test sends malformed requests on purpose; and a role the
//    command never takes is `forbidden`, which the schema already excludes);
//  - an event on `<prefix>.evt.<dispute_id>.<type>`: `envelope`, its headers `event-headers`;
//  - a refusal's headers: `refusal-headers`, both present; an accepted reply has no error header.
// Fails when any is invalid, or when some command type, query or the envelope was never seen (the
// check must not pass on no traffic).
// Usage: node tools/asyncapi/check-traffic.mjs TRAFFIC_DIR [REPO_ROOT]

import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const trafficDir = process.argv[2];
if (!trafficDir) {
  console.error('usage: check-traffic.mjs TRAFFIC_DIR [REPO_ROOT]');
  process.exit(2);
}
const root = resolve(process.argv[3] ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const schemaDir = join(root, 'docs', 'schemas');

const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
addFormats(ajv);
const validators = new Map();
for (const file of readdirSync(schemaDir).filter((f) => f.endsWith('.json'))) {
  const key = pathToFileURL(join(schemaDir, file)).href;
  ajv.addSchema(JSON.parse(readFileSync(join(schemaDir, file), 'utf8')), key);
  validators.set(file.replace(/\.json$/, ''), key);
}
function validator(name) {
  const key = validators.get(name);
  return key ? ajv.getSchema(key) : null;
}

// Refused for the request's shape or static values, or a role the command never takes: the request
// is not expected to match its schema.
const SHAPE_CODES = new Set(['invalid_request', 'invalid_value', 'unknown_command', 'forbidden']);

const seen = new Map(); // schema name -> samples validated
const failures = [];
function check(schema, value, where, ignored = () => false) {
  const validate = validator(schema);
  if (!validate) {
    failures.push(`${where}: no schema ${schema}.json`);
    return;
  }
  const valid = validate(value);
  const errors = valid ? [] : validate.errors.filter((e) => !ignored(e));
  if (errors.length === 0) {
    seen.set(schema, (seen.get(schema) ?? 0) + 1);
  } else {
    errors.splice(3);
    errors.forEach((e, i) => (errors[i] = `${e.instancePath || '/'} ${e.message}`));
    failures.push(`${where} against ${schema}: ${errors.join('; ')}\n    ${JSON.stringify(value).slice(0, 400)}`);
  }
}
function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

let lines = 0;
for (const file of readdirSync(trafficDir).filter((f) => f.endsWith('.ndjson'))) {
  for (const line of readFileSync(join(trafficDir, file), 'utf8').split('\n')) {
    if (!line) continue;
    lines += 1;
    const { subject, request, message, headers } = JSON.parse(line);
    // `<prefix>.cmd.<type>`, `<prefix>.query.<name>`, `<prefix>.evt.<dispute_id>.<type>` (ids hold
    // no dots; the prefix may).
    const tokens = subject.split('.');
    const where = `${file}:${subject}`;
    const reply = parse(message);
    if (request === undefined) {
      if (tokens[tokens.length - 3] === 'evt') {
        check('envelope', reply, where);
        // A message without headers was not published by the service (a test repeats an event on
        // the stream on purpose, as an intruder would); the service's always carry Nats-Msg-Id.
        if (headers) check('event-headers', headers, `${where} headers`);
      }
      continue;
    }
    const kind = tokens[tokens.length - 2];
    if (kind !== 'cmd' && kind !== 'query') continue; // a subject of no contract (a test of something else)
    const name = tokens[tokens.length - 1];
    if (reply === undefined || typeof reply !== 'object') {
      failures.push(`${where}: the reply is not a JSON object: ${message.slice(0, 200)}`);
      continue;
    }
    const known = validators.has(kind === 'cmd' ? `command-${name}` : `query-${name}`);
    if (reply.ok === true) {
      check(kind === 'cmd' ? 'command-accepted' : `query-${name}-reply`, reply, `${where} reply`);
      if (headers && ('Nats-Service-Error' in headers || 'Nats-Service-Error-Code' in headers)) {
        failures.push(`${where}: an accepted reply with a service error header: ${JSON.stringify(headers)}`);
      }
    } else {
      check('refusal', reply, `${where} reply`);
      const both = headers && 'Nats-Service-Error' in headers && 'Nats-Service-Error-Code' in headers;
      if (!both) failures.push(`${where}: a refusal without its Nats-Service-Error headers: ${JSON.stringify(headers ?? {})}`);
      else check('refusal-headers', headers, `${where} reply headers`);
    }
    const body = parse(request);
    const code = reply.ok === true ? 'ok' : reply.error?.code;
    if (known && body !== undefined && !SHAPE_CODES.has(code)) {
      // A refused command may come from a role that never sends it: a refusal earlier in the
      // order of rules.md (`already_exists` for an `open`, `not_found`) answers before `forbidden`.
      const roleOnly = (e) => code !== 'ok' && e.instancePath === '/actor/role';
      check(kind === 'cmd' ? `command-${name}` : `query-${name}`, body, `${where} request (${code})`, roleOnly);
    }
  }
}

// Every command type, query and the envelope must have been seen: no pass on no traffic.
const expected = [...validators.keys()].filter(
  (n) => (n.startsWith('command-') && n !== 'command-accepted') || (n.startsWith('query-') && !n.endsWith('-reply')),
);
expected.push('envelope', 'command-accepted', 'refusal', 'event-headers', 'refusal-headers');
for (const name of ['get', 'list', 'history', 'deadlines', 'stats']) expected.push(`query-${name}-reply`);
const unseen = expected.filter((n) => !seen.has(n));

for (const f of failures.slice(0, 30)) console.error(`FAIL ${f}`);
if (failures.length > 30) console.error(`… and ${failures.length - 30} more`);
if (unseen.length) console.error(`FAIL never seen in the traffic: ${unseen.join(', ')}`);
const validated = [...seen.values()].reduce((a, b) => a + b, 0);
console.log(`check-traffic: ${lines} recorded messages, ${validated} validated against ${seen.size} schemas, ${failures.length} invalid`);
process.exit(failures.length || unseen.length ? 1 : 0);
