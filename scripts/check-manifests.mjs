#!/usr/bin/env node
// Validates the Kubernetes manifests of deploy/ against the vendored schemas of deploy/schemas/
// (KServe's CRDs, Kubernetes' core objects; scripts/vendor-schemas.mjs refreshes them), the way
// the API server would with strict field validation: unknown fields are errors, as are wrong
// types, missing required fields and values outside an enum. Prints each problem and exits 1;
// `--quiet` prints nothing on success. Files may be named: `check-manifests.mjs a.yaml b.yaml`.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import { parseAllDocuments } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schemaDir = join(root, 'deploy', 'schemas');

/** The schema file of each kind the manifests may hold, by "apiVersion kind". */
const SCHEMAS = {
  'serving.kserve.io/v1alpha1 ClusterServingRuntime': 'kserve/clusterservingruntime-v1alpha1.json',
  'serving.kserve.io/v1beta1 InferenceService': 'kserve/inferenceservice-v1beta1.json',
  'apps/v1 Deployment': 'kubernetes/deployment-apps-v1.json',
  'v1 Service': 'kubernetes/service-v1.json',
};

const INT32 = 2 ** 31;
const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });
ajv.addFormat('int32', { type: 'number', validate: (n) => Number.isInteger(n) && n >= -INT32 && n < INT32 });
ajv.addFormat('int64', { type: 'number', validate: (n) => Number.isSafeInteger(n) });
for (const unchecked of ['byte', 'date-time', 'double', 'float']) ajv.addFormat(unchecked, true);
// A port or a percentage: the API server takes an integer or a string there, nothing else.
ajv.addKeyword({
  keyword: 'x-kubernetes-int-or-string',
  schemaType: 'boolean',
  validate: (on, data) => !on || Number.isInteger(data) || typeof data === 'string',
  errors: false,
});

const read = (file) => JSON.parse(readFileSync(join(schemaDir, file), 'utf8'));

/**
 * A CRD schema made strict: an object that lists its properties takes no others, unless it says
 * it preserves unknown fields (what kubectl's strict field validation rejects, the CRD schema
 * alone lets through).
 */
function strict(node) {
  if (Array.isArray(node)) return node.map(strict);
  if (node === null || typeof node !== 'object') return node;
  const copy = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'enum' ? v : strict(v)]));
  if (copy.properties && copy.additionalProperties === undefined && !copy['x-kubernetes-preserve-unknown-fields'])
    copy.additionalProperties = false;
  return copy;
}

const objectMeta = read('kubernetes/service-v1.json').properties.metadata;
const validators = new Map();
function validatorFor(key) {
  if (!validators.has(key)) {
    let schema = read(SCHEMAS[key]);
    if (key.startsWith('serving.kserve.io/')) {
      // A CRD's schema leaves metadata to the API server: check it as Kubernetes' ObjectMeta.
      schema = strict(schema);
      schema.properties.metadata = objectMeta;
      schema.required = [...new Set([...(schema.required ?? []), 'metadata'])];
    }
    validators.set(key, ajv.compile(schema));
  }
  return validators.get(key);
}

/** A DNS-1123 label: what Kubernetes demands of Service names, and maas of the other names here. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** KServe's protocols: its admission webhook refuses others, its CRD schema alone does not. */
const KSERVE_PROTOCOLS = ['v1', 'v2', 'grpc-v1', 'grpc-v2'];

/** What KServe's webhook checks beyond the schema, for the fields these manifests use. */
function admissionProblems(obj) {
  const problems = [];
  const protocols =
    obj.kind === 'ClusterServingRuntime'
      ? (obj.spec?.protocolVersions ?? [])
      : obj.kind === 'InferenceService'
        ? [obj.spec?.predictor?.model?.protocolVersion].filter((p) => p !== undefined)
        : [];
  for (const p of protocols)
    if (!KSERVE_PROTOCOLS.includes(p))
      problems.push(`protocol version '${p}' is not one of KServe's (${KSERVE_PROTOCOLS.join(', ')})`);
  return problems;
}

/** The problems of one YAML file's documents, as "file: document N (Kind name): problem" lines. */
export function checkManifest(file, text) {
  const problems = [];
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  docs.forEach((doc, i) => {
    const where = (obj) =>
      `${file}: document ${i + 1}${obj?.kind ? ` (${obj.kind} ${obj.metadata?.name ?? '?'})` : ''}`;
    for (const error of [...doc.errors, ...doc.warnings]) problems.push(`${where()}: ${error.message}`);
    if (doc.errors.length) return;
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return;
    const key = `${obj.apiVersion} ${obj.kind}`;
    if (!SCHEMAS[key]) {
      problems.push(`${where(obj)}: no schema vendored for apiVersion ${obj.apiVersion}, kind ${obj.kind}`);
      return;
    }
    const validate = validatorFor(key);
    if (!validate(obj))
      for (const e of validate.errors) {
        const extra = e.params?.additionalProperty ? ` '${e.params.additionalProperty}'` : '';
        problems.push(`${where(obj)}: ${e.instancePath || '/'} ${e.message}${extra}`);
      }
    for (const p of admissionProblems(obj)) problems.push(`${where(obj)}: ${p}`);
    if (typeof obj.metadata?.name !== 'string' || !DNS_LABEL.test(obj.metadata.name))
      problems.push(`${where(obj)}: metadata.name must be a DNS-1123 label (a-z, 0-9, -; at most 63)`);
  });
  return problems;
}

/** Every manifest of deploy/ (the vendored schemas aside). */
function manifests(dir = join(root, 'deploy')) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === schemaDir ? [] : manifests(path);
    return /\.ya?ml$/.test(e.name) ? [path] : [];
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  const named = args.filter((a) => a !== '--quiet');
  const files = named.length ? named : manifests();
  const problems = files.flatMap((f) => checkManifest(relative(root, f) || f, readFileSync(f, 'utf8')));
  for (const p of problems) console.error(p);
  if (!quiet || problems.length)
    console.log(`${files.length} manifest files: ${problems.length ? `${problems.length} problems` : 'valid'}`);
  process.exit(problems.length ? 1 : 0);
}
