/**
 * The container: the Dockerfile's rules (scripts/check-dockerfile.mjs) hold for this repository's
 * Dockerfile, and each rule catches the file that breaks it. With a Docker daemon the image is
 * also built and started, and its cold start to READY timed; without one that test says it
 * skipped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/core/package-root.js';

const root = packageRoot();
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(root, '.dockerignore'), 'utf8');

/** The check's complaints about a Dockerfile (and .dockerignore) text. */
function problems(file: string, ignore = dockerignore): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'maas-dockerfile-'));
  writeFileSync(join(dir, 'Dockerfile'), file);
  writeFileSync(join(dir, 'dockerignore'), ignore);
  const run = spawnSync(process.execPath, [
    join(root, 'scripts', 'check-dockerfile.mjs'),
    '--quiet',
    '--dockerfile',
    join(dir, 'Dockerfile'),
    '--dockerignore',
    join(dir, 'dockerignore'),
  ]);
  return run.stderr
    .toString()
    .split('\n')
    .filter((l) => l);
}

const dockerDaemon = spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0;
if (!dockerDaemon)
  console.log('No Docker daemon here: the image is checked by its rules, and its build-and-run test skips.');

describe('Dockerfile', () => {
  it('keeps every rule: stages, pinned bases, a non-root user, ports, volume, health check, host', () => {
    expect(problems(dockerfile)).toEqual([]);
  });

  it('catches each rule broken', () => {
    const cases: [string, string, RegExp][] = [
      ['USER node', 'USER root', /non-root USER/],
      ['USER node\n', '', /non-root USER/],
      ['EXPOSE 8000 8001 8002', 'EXPOSE 8000 8001', /port 8002/],
      ['VOLUME ["/models"]', '', /VOLUME/],
      ['/v2/health/ready', '/v2/health/live', /HEALTHCHECK/],
      ['"--host", "0.0.0.0", ', '', /--host 0.0.0.0/],
      ['bookworm-slim AS runtime', 'bookworm-slim:latest AS runtime', /not pinned/],
      ['  && rm -rf /var/lib/apt/lists/*', '', /apt\/lists/],
      ['COPY proto ./proto', 'COPY nowhere ./nowhere', /no such path/],
      ['COPY ui ./ui', 'COPY test ./test', /\.dockerignore leaves it out/],
    ];
    for (const [from, to, expected] of cases) {
      expect(dockerfile, from).toContain(from);
      const found = problems(dockerfile.replace(from, to));
      expect(
        found.some((p) => expected.test(p)),
        `${from} → ${to}: ${found.join('; ')}`,
      ).toBe(true);
    }
    const single = dockerfile.slice(0, dockerfile.indexOf('FROM node:${NODE_VERSION}-bookworm-slim'));
    expect(problems(single).join('\n')).toMatch(/not multi-stage/);
  });

  it.skipIf(!dockerDaemon)(
    'builds, starts as a non-root user and answers /v2/health/ready (cold start timed)',
    () => {
      execFileSync('docker', ['build', '-t', 'maas:test', root], { stdio: 'inherit', timeout: 900_000 });
      const id = execFileSync('docker', ['run', '-d', '-p', '127.0.0.1::8000', 'maas:test']).toString().trim();
      try {
        const port = execFileSync('docker', ['port', id, '8000']).toString().trim().split(':').at(-1)!;
        const start = Date.now();
        let ready = false;
        while (!ready && Date.now() - start < 30_000)
          ready =
            spawnSync('curl', ['-sf', `http://127.0.0.1:${port}/v2/health/ready`], { stdio: 'ignore' }).status === 0;
        console.log(`container cold start to READY: ${(Date.now() - start) / 1000} s`);
        expect(ready).toBe(true);
        expect(execFileSync('docker', ['exec', id, 'id', '-u']).toString().trim()).not.toBe('0');
      } finally {
        execFileSync('docker', ['rm', '-f', id]);
      }
    },
    1_000_000,
  );
});
