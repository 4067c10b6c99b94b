// Checks docs/schemas/ (run by tools/check-asyncapi.sh, after the AsyncAPI CLI):
//  1. every schema file is a valid JSON Schema draft 2020-12 (Ajv's meta-schema, strict mode: an
//     unknown keyword, a misspelt type, a `required` field without a definition, a $ref that does
//     not resolve all fail), and keeps to the keywords that mean the same in draft-07, which is
//     how the AsyncAPI parser reads them (AsyncAPI Schema Object);
//  2. every example in docs/schemas/examples/ (`<schema>.<anything>.json`) is valid against its
//     schema, and every one in examples/invalid/ is rejected by it;
//  3. the hash chain of every envelope in those examples (docs/protocol.md, "The hash");
//  4. the JSON examples of docs/protocol.md and docs/actor-tokens.md, taken from the pages;
//  5. that docs/asyncapi.yaml names every command, query and event type the schemas know, and that
//     each request-reply operation replies on its reply channel, in the queue group `disputes`
//     (the services API's, on `$SRV.…`, in none).
// Usage: node tools/asyncapi/check-schemas.mjs [REPO_ROOT]. Ends with "N passed, N failed".

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const schemaDir = join(root, 'docs', 'schemas');
const exampleDir = join(schemaDir, 'examples');
const DRAFT_2020_12 = 'https://json-schema.org/draft/2020-12/schema';

let passed = 0;
let failed = 0;
function ok() {
  passed += 1;
}
function fail(what, why) {
  failed += 1;
  console.error(`FAIL ${what}: ${why}`);
}
function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}
function jsonFiles(dir) {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
}

// Strict mode throws on unknown keywords and formats, ignored keywords, `required` properties
// without a definition and the like; union types ("type": ["string", "null"]) are standard JSON
// Schema and allowed.
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
addFormats(ajv);

// Keywords a draft-07 reader (the AsyncAPI parser) would not understand, and draft-07's
// `definitions` (2020-12 has `$defs`): the schemas keep to what both drafts read alike.
const NOT_IN_BOTH = new Set([
  'prefixItems', 'unevaluatedProperties', 'unevaluatedItems', 'dependentRequired',
  'dependentSchemas', '$dynamicRef', '$dynamicAnchor', '$anchor', '$recursiveRef',
  '$recursiveAnchor', 'contentSchema', 'minContains', 'maxContains', '$vocabulary', 'definitions',
]);
const ANNOTATIONS = new Set(['$ref', 'description', 'title', '$comment']);
function draft07Subset(node, path, problems) {
  if (Array.isArray(node)) {
    node.forEach((item, i) => draft07Subset(item, `${path}/${i}`, problems));
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node)) {
    // Property names inside `properties` are data, not keywords.
    const isKeyword = !path.endsWith('/properties') && !path.endsWith('/$defs');
    if (isKeyword && NOT_IN_BOTH.has(key)) problems.push(`${path}/${key}: not read alike by draft-07 and 2020-12`);
    draft07Subset(value, `${path}/${key}`, problems);
  }
  const inData = path.endsWith('/properties') || path.endsWith('/$defs') || path.endsWith('/enum') || path.endsWith('/examples');
  if (!inData && '$ref' in node) {
    const siblings = Object.keys(node).filter((k) => !ANNOTATIONS.has(k));
    if (siblings.length) problems.push(`${path}: $ref beside ${siblings.join(', ')} (ignored by draft-07)`);
  }
}

// 1. The schemas.
const schemaFiles = jsonFiles(schemaDir);
const schemas = new Map(); // name (file name without .json) -> { key, schema }
for (const file of schemaFiles) {
  const path = join(schemaDir, file);
  const name = file.slice(0, -'.json'.length);
  let schema;
  try {
    schema = readJson(path);
  } catch (e) {
    fail(`docs/schemas/${file}`, `not JSON: ${e.message}`);
    continue;
  }
  if (schema.$schema !== DRAFT_2020_12) {
    fail(`docs/schemas/${file}`, `$schema must be ${DRAFT_2020_12}`);
    continue;
  }
  const problems = [];
  draft07Subset(schema, '', problems);
  if (problems.length) {
    fail(`docs/schemas/${file}`, problems.join('; '));
    continue;
  }
  const key = pathToFileURL(path).href;
  try {
    ajv.addSchema(schema, key); // checks the schema against the 2020-12 meta-schema
    schemas.set(name, { key, schema });
  } catch (e) {
    fail(`docs/schemas/${file}`, e.message);
  }
}
const validators = new Map();
for (const [name, { key, schema }] of schemas) {
  try {
    // Compiling applies strict mode and resolves every $ref; each definition is compiled too,
    // whether or not a schema refers to it.
    for (const def of Object.keys(schema.$defs ?? {})) ajv.getSchema(`${key}#/$defs/${def}`);
    validators.set(name, ajv.getSchema(key));
    ok();
  } catch (e) {
    fail(`docs/schemas/${name}.json`, e.message);
  }
}

// The refusal codes: `enum` and the documented `oneOf` must list the same codes, in one order.
const commonDefs = schemas.get('common')?.schema.$defs ?? {};
const errorCode = schemas.get('refusal')?.schema.properties?.error?.properties?.code ?? {};
const consts = (errorCode.oneOf ?? []).map((alt) => alt.const);
if (JSON.stringify(consts) === JSON.stringify(errorCode.enum ?? null) && consts.length > 0) ok();
else fail('refusal.json error.code', `enum ${JSON.stringify(errorCode.enum)} != oneOf ${JSON.stringify(consts)}`);

function errorsOf(validate) {
  return ajv.errorsText(validate.errors, { dataVar: '' });
}

// 3. The hash chain: hash = sha256(prev_hash + canonical bytes of the envelope without `hash`).
function compareCodePoints(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort(compareCodePoints);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
function checkHashes(what, envelopes) {
  envelopes.forEach((envelope, i) => {
    const { hash, ...rest } = envelope;
    const computed = createHash('sha256').update(envelope.prev_hash + canonical(rest), 'utf8').digest('hex');
    if (computed !== hash) fail(`${what}: seq ${envelope.seq}`, `hash ${hash} is not the computed ${computed}`);
    else ok();
    const previous = envelopes[i - 1];
    if (previous && (envelope.prev_hash !== previous.hash || envelope.seq !== previous.seq + 1)) {
      fail(`${what}: seq ${envelope.seq}`, 'does not follow the envelope before it (prev_hash, seq)');
    }
  });
}
function envelopesIn(name, data) {
  if (name === 'envelope') return [data];
  if (name === 'command-accepted' || name === 'query-history-reply') return data.events ?? [];
  return [];
}

// 2. The examples.
function schemaOf(what, file) {
  const name = file.split('.')[0];
  if (validators.has(name)) return name;
  if (schemas.has(name) || existsSync(join(schemaDir, `${name}.json`))) fail(what, `its schema ${name}.json is broken (above)`);
  else fail(what, 'names no schema of docs/schemas/ (<schema>.<anything>.json)');
  return null;
}
const covered = new Set();
const eventTypesSeen = new Set();
for (const file of jsonFiles(exampleDir)) {
  const what = `examples/${file}`;
  const name = schemaOf(what, file);
  if (!name) continue;
  let data;
  try {
    data = readJson(join(exampleDir, file));
  } catch (e) {
    fail(what, `not JSON: ${e.message}`);
    continue;
  }
  const validate = validators.get(name);
  if (validate(data)) {
    ok();
    covered.add(name);
    if (name === 'envelope') eventTypesSeen.add(data.type);
    checkHashes(what, envelopesIn(name, data));
  } else {
    fail(what, `rejected by ${name}.json:${errorsOf(validate)}`);
  }
}
for (const file of jsonFiles(join(exampleDir, 'invalid'))) {
  const what = `examples/invalid/${file}`;
  const name = schemaOf(what, file);
  if (!name) continue;
  const validate = validators.get(name);
  if (validate(readJson(join(exampleDir, 'invalid', file)))) fail(what, `accepted by ${name}.json, but must be rejected`);
  else ok();
}
// Every message schema has a valid example, and every event type an envelope example.
for (const name of validators.keys()) {
  const partOnly = name === 'common' || name === 'command' || name.startsWith('event-') && name !== 'event-headers';
  if (!partOnly && !covered.has(name)) fail(`docs/schemas/${name}.json`, 'has no valid example in docs/schemas/examples/');
}
for (const type of validators.has('envelope') ? commonDefs.event_type?.enum ?? [] : []) {
  if (eventTypesSeen.has(type)) ok();
  else fail(`event type ${type}`, 'has no example docs/schemas/examples/envelope.*.json of this type');
}

// 4. The JSON examples of the docs themselves, recognised by their fields.
function jsonBlocks(page) {
  const text = readFileSync(join(root, 'docs', page), 'utf8');
  return [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]);
}
const commandNames = [...validators.keys()].filter((n) => n.startsWith('command-') && n !== 'command-accepted');
const docEnvelopes = [];
const docBlocks = [];
for (const page of ['protocol.md', 'actor-tokens.md']) {
  for (const block of jsonBlocks(page)) docBlocks.push({ page, block });
}
for (const { page, block } of docBlocks) {
  try {
    const value = JSON.parse(block);
    if (value && 'event_id' in value) docEnvelopes.push(value);
  } catch {
    // the accepted reply: its `events` is a placeholder, filled in below
  }
}
let docExamples = 0;
for (const { page, block } of docBlocks) {
  let value;
  let replyWithPlaceholder = false;
  try {
    value = JSON.parse(block);
  } catch {
    const filled = block.replace(/\[\s*<[^>]*>\s*\]/, () => JSON.stringify(docEnvelopes));
    try {
      value = JSON.parse(filled);
      replyWithPlaceholder = true;
    } catch (e) {
      fail(`docs/${page}`, `a json block that is not JSON: ${e.message}\n${block}`);
      continue;
    }
  }
  const what = `docs/${page} example ${JSON.stringify(value).slice(0, 60)}…`;
  let names;
  if ('event_id' in value) names = ['envelope'];
  else if (value.ok === true && 'events' in value) names = ['command-accepted'];
  else if (value.ok === false) names = ['refusal'];
  else if ('command_id' in value) names = commandNames; // the page does not say which command
  else if ('deadline' in value && 'due_at' in value) names = ['deadline-message'];
  else {
    fail(what, 'not recognised: teach tools/asyncapi/check-schemas.mjs which schema it shows');
    continue;
  }
  docExamples += 1;
  if (!names.every((n) => validators.has(n))) {
    fail(what, 'its schema is broken (above)');
    continue;
  }
  const accepting = names.filter((n) => validators.get(n)(value));
  if (accepting.length === 0) {
    const validate = validators.get(names[0]);
    validate(value);
    fail(what, `rejected by ${names.join(', ')}${names.length === 1 ? `:${errorsOf(validate)}` : ''}`);
    continue;
  }
  ok();
  if (names[0] === 'envelope') checkHashes(what, [value]);
  if (replyWithPlaceholder) ok();
}
if (docExamples >= 5) ok();
else fail('docs examples', `found ${docExamples} JSON examples in docs/protocol.md and docs/actor-tokens.md, expected at least 5`);

// 5. docs/asyncapi.yaml against the schemas: one channel per command and query, the event types.
const doc = YAML.parse(readFileSync(join(root, 'docs', 'asyncapi.yaml'), 'utf8'));
const addresses = Object.values(doc.channels ?? {}).map((c) => c.address);
const expectAddress = (address, why) => {
  if (addresses.includes(address)) ok();
  else fail('docs/asyncapi.yaml', `no channel ${address} (${why})`);
};
for (const name of commandNames) expectAddress(`disputes.cmd.${name.slice('command-'.length)}`, `docs/schemas/${name}.json`);
for (const name of validators.keys()) {
  const m = /^query-([a-z_]+)$/.exec(name);
  if (m) expectAddress(`disputes.query.${m[1]}`, `docs/schemas/${name}.json`);
}
const cmdChannels = addresses.filter((a) => typeof a === 'string' && a.startsWith('disputes.cmd.'));
const queryChannels = addresses.filter((a) => typeof a === 'string' && a.startsWith('disputes.query.'));
if (cmdChannels.length === 13 && commandNames.length === 13) ok();
else fail('commands', `${cmdChannels.length} command channels and ${commandNames.length} command schemas; the contract has 13`);
if (queryChannels.length === 5) ok();
else fail('queries', `${queryChannels.length} query channels; the contract has 5`);
// Request-reply operations (the CLI checks an operation's messages against its channel, not those
// of its reply): the reply's messages are the reply channel's, the queue group is `disputes`, but
// for the services API (`$SRV.…`), which every running instance answers (no queue group).
function deref(node) {
  const ref = node?.$ref;
  if (typeof ref !== 'string' || !ref.startsWith('#/')) return node;
  return ref.slice(2).split('/').reduce((at, key) => at?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
}
for (const [id, operation] of Object.entries(doc.operations ?? {})) {
  if (operation.action !== 'receive' || !operation.reply) continue;
  const reply = deref(operation.reply);
  const channel = reply?.channel?.$ref;
  const foreign = (reply?.messages ?? []).map((m) => m.$ref).filter((r) => !r?.startsWith(`${channel}/messages/`));
  if (!channel || foreign.length) fail(`docs/asyncapi.yaml operations.${id}.reply`, `messages not in ${channel}: ${foreign.join(', ')}`);
  else ok();
  const queue = deref(operation.bindings)?.nats?.queue;
  if (String(deref(operation.channel)?.address).startsWith('$SRV.')) {
    if (queue === undefined) ok();
    else fail(`docs/asyncapi.yaml operations.${id}`, 'a services API operation in a queue group (every instance answers $SRV)');
  } else if (queue === 'disputes') ok();
  else fail(`docs/asyncapi.yaml operations.${id}`, 'a request-reply operation without the NATS queue group `disputes`');
}
const typeParameter = doc.components?.parameters?.event_type?.enum;
if (JSON.stringify(typeParameter) === JSON.stringify(commonDefs.event_type?.enum)) ok();
else fail('docs/asyncapi.yaml', 'components.parameters.event_type.enum differs from common.json#/$defs/event_type');

console.log(`check-schemas: ${schemas.size} schemas, ${jsonFiles(exampleDir).length} examples, ${jsonFiles(join(exampleDir, 'invalid')).length} invalid examples, ${docExamples} examples from the docs`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
