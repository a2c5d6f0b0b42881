/**
 * The Kubernetes manifests of deploy/: valid against the vendored KServe and Kubernetes schemas
 * (scripts/check-manifests.mjs), each kind of mistake caught by that check, and consistent with
 * each other and with maas — the InferenceServices name the runtime shipped beside them, a format
 * it declares, and maas's health paths on the ports it listens on.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../../src/core/package-root.js';

const root = packageRoot();
const deploy = join(root, 'deploy');

/** Runs the check on the files; its problem lines, and its exit status. */
function check(files: string[]): { status: number | null; problems: string[] } {
  const run = spawnSync(process.execPath, [join(root, 'scripts', 'check-manifests.mjs'), '--quiet', ...files], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, problems: run.stderr.split('\n').filter((l) => l) };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Manifest = Record<string, any>;

function documents(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Manifest);
}

const kserveDir = join(deploy, 'kserve');
const kserve = readdirSync(kserveDir).flatMap((f) => documents(join(kserveDir, f)));
const runtime = kserve.find((m) => m.kind === 'ClusterServingRuntime')!;
const services = kserve.filter((m) => m.kind === 'InferenceService');
const plain = documents(join(deploy, 'kubernetes', 'maas.yaml'));

describe('deploy/ manifests', () => {
  it('are valid against the vendored KServe and Kubernetes schemas', () => {
    const result = check([]);
    expect(result.problems).toEqual([]);
    expect(result.status).toBe(0);
  }, 60_000);

  it('the check catches unknown fields, wrong types, bad protocols, unknown kinds and duplicate keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-manifests-'));
    const isvc = readFileSync(join(kserveDir, 'inference-service.yaml'), 'utf8');
    const runtimeText = readFileSync(join(kserveDir, 'cluster-serving-runtime.yaml'), 'utf8');
    const plainText = readFileSync(join(deploy, 'kubernetes', 'maas.yaml'), 'utf8');
    const cases: [string, string, RegExp][] = [
      ['typo.yaml', isvc.replace('readinessProbe:', 'readinesProbe:'), /additional properties 'readinesProbe'/],
      ['protocol.yaml', isvc.replace('protocolVersion: v2', 'protocolVersion: v3'), /protocol version 'v3'/],
      ['runtime.yaml', runtimeText.replace('multiModel: false', 'multiModel: "no"'), /multiModel must be boolean/],
      ['replicas.yaml', plainText.replace('replicas: 2', 'replicas: two'), /\/spec\/replicas must be integer/],
      ['port.yaml', plainText.replace('containerPort: 8000', 'containerPort: "8000"'), /containerPort must be integer/],
      ['name.yaml', plainText.replace('  name: maas\n', '  name: Maas_1\n'), /DNS-1123/],
      ['kind.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n', /no schema vendored/],
      ['twice.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  name: y\n', /Map keys must be unique/],
    ];
    for (const [file, text] of cases) writeFileSync(join(dir, file), text);
    const result = check(cases.map(([file]) => join(dir, file)));
    expect(result.status).toBe(1);
    for (const [file, , problem] of cases)
      expect(
        result.problems.filter((p) => p.includes(file)),
        file,
      ).toEqual(expect.arrayContaining([expect.stringMatching(problem)]));
  }, 60_000);

  it('the runtime speaks v2 and grpc-v2 with maas’s formats; each InferenceService uses it with maas’s probes', () => {
    expect(runtime.spec.protocolVersions).toEqual(['v2', 'grpc-v2']);
    const formats = (runtime.spec.supportedModelFormats as Manifest[]).map((f) => f.name as string);
    expect(formats).toContain('maas');
    const args: string[] = runtime.spec.containers[0].args;
    expect(args).toEqual(expect.arrayContaining(['--model_dir=/mnt/models', '--host=0.0.0.0', '--http_port=8080']));
    expect(services.length).toBeGreaterThan(0);
    for (const isvc of services) {
      const model = isvc.spec.predictor.model;
      expect(model.runtime).toBe(runtime.metadata.name);
      expect(formats).toContain(model.modelFormat.name);
      expect(model.storageUri).toMatch(/^s3:\/\//);
      expect(model.readinessProbe.httpGet).toEqual({ path: '/v2/health/ready', port: 8080 });
      expect(model.livenessProbe.httpGet).toEqual({ path: '/v2/health/live', port: 8080 });
      expect(model.resources.requests.cpu).toBe(model.resources.limits.cpu);
    }
  });

  it('the plain Service selects the Deployment’s pods, on the ports it names, with maas’s probes', () => {
    const deployment = plain.find((m) => m.kind === 'Deployment')!;
    const service = plain.find((m) => m.kind === 'Service')!;
    const pod = deployment.spec.template;
    expect(pod.metadata.labels).toMatchObject(service.spec.selector);
    expect(deployment.spec.selector.matchLabels).toEqual(service.spec.selector);
    const container = pod.spec.containers[0];
    const portNames = (container.ports as Manifest[]).map((p) => p.name as string);
    for (const p of service.spec.ports) expect(portNames).toContain(p.targetPort);
    expect(container.readinessProbe.httpGet.path).toBe('/v2/health/ready');
    expect(container.startupProbe.httpGet.path).toBe('/v2/health/ready');
    expect(container.livenessProbe.httpGet.path).toBe('/v2/health/live');
    // The pod is given longer to stop than maas's own shutdown grace (25 s) and the preStop pause.
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(25 + container.lifecycle.preStop.sleep.seconds);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
  });
});
