/**
 * `maas serve` outlives an exception that escapes every handler: it logs it and keeps serving.
 * The exception comes from a module preloaded into the real CLI process.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addVersion, smallModel, tempRepository } from './server-helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const THROWER = fileURLToPath(new URL('../fixtures/throw-later.mjs', import.meta.url));

let root: string;
beforeAll(async () => {
  root = await tempRepository();
  await addVersion(root, 'small', 1, smallModel(4, 2, 3));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('maas serve', () => {
  it('logs an uncaught exception and keeps serving', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', THROWER, CLI, 'serve', '--model-repository', root, '--host', '127.0.0.1'].concat([
        '--http-port',
        '0',
        '--grpc-port',
        '0',
        '--metrics-port',
        '0',
        '--workers',
        '1',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const seen = (pattern: RegExp) =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const look = () => {
          const match = pattern.exec(output);
          if (match) resolve(match);
        };
        child.stdout.on('data', (chunk: Buffer) => ((output += chunk.toString()), look()));
        child.stderr.on('data', (chunk: Buffer) => ((output += chunk.toString()), look()));
        child.once('exit', (code) => reject(new Error(`maas serve exited (${code}): ${output}`)));
        look();
      });
    try {
      const port = (await seen(/REST\s+http:\/\/127\.0\.0\.1:(\d+)\/v2/))[1];
      await seen(/uncaught exception: logged, and the server keeps serving/);
      expect(output).toContain('a bug outside every request handler');
      const ready = await fetch(`http://127.0.0.1:${port}/v2/health/ready`);
      expect(ready.status).toBe(200);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
  });
});
