#!/usr/bin/env node
// Refreshes deploy/schemas/: the JSON schemas scripts/check-manifests.mjs validates the manifests
// of deploy/ against. A maintainer's tool, run by hand when KServe or Kubernetes moves on; the
// output is committed, so neither CI nor a user's clone needs the sources.
//
//   node scripts/vendor-schemas.mjs --kserve <kserve checkout> --kserve-ref <tag or commit> \
//     --kubernetes <kubernetes-json-schema checkout> --kubernetes-version v1.32.2
//
// KServe's schemas come from its generated CRDs (config/crd/full/*.yaml: each served version's
// openAPIV3Schema); the core ones from the standalone-strict files of yannh/kubernetes-json-schema
// (generated from Kubernetes' OpenAPI). Descriptions are dropped: they are most of the bytes and
// validate nothing.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'deploy', 'schemas');

const { values } = parseArgs({
  options: {
    kserve: { type: 'string' },
    'kserve-ref': { type: 'string' },
    kubernetes: { type: 'string' },
    'kubernetes-version': { type: 'string' },
  },
});
for (const name of ['kserve', 'kserve-ref', 'kubernetes', 'kubernetes-version'])
  if (!values[name]) throw new Error(`Expected --${name}`);

/** The schema without its `description` annotations (a property named "description" is kept: its value is a schema). */
function withoutDescriptions(node) {
  if (Array.isArray(node)) return node.map(withoutDescriptions);
  if (node === null || typeof node !== 'object') return node;
  const copy = {};
  for (const [key, value] of Object.entries(node))
    if (!(key === 'description' && typeof value === 'string')) copy[key] = withoutDescriptions(value);
  return copy;
}

function write(file, source, schema) {
  mkdirSync(dirname(join(out, file)), { recursive: true });
  writeFileSync(join(out, file), `${JSON.stringify({ $comment: source, ...withoutDescriptions(schema) })}\n`);
  console.log(`wrote deploy/schemas/${file}`);
}

const crds = [
  ['serving.kserve.io_clusterservingruntimes.yaml', 'v1alpha1'],
  ['serving.kserve.io_inferenceservices.yaml', 'v1beta1'],
];
for (const [file, version] of crds) {
  const crd = parse(readFileSync(join(values.kserve, 'config', 'crd', 'full', file), 'utf8'));
  const served = crd.spec.versions.find((v) => v.name === version && v.served);
  if (!served) throw new Error(`Expected ${file} to serve ${version}`);
  const kind = crd.spec.names.kind.toLowerCase();
  write(
    `kserve/${kind}-${version}.json`,
    `KServe ${values['kserve-ref']} config/crd/full/${file}, ${version} (Apache-2.0)`,
    served.schema.openAPIV3Schema,
  );
}

const core = ['deployment-apps-v1.json', 'service-v1.json'];
for (const file of core) {
  const dir = join(values.kubernetes, `${values['kubernetes-version']}-standalone-strict`);
  write(
    `kubernetes/${file}`,
    `Kubernetes ${values['kubernetes-version']} OpenAPI, standalone-strict form of yannh/kubernetes-json-schema (Apache-2.0)`,
    JSON.parse(readFileSync(join(dir, file), 'utf8')),
  );
}
