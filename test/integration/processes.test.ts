/**
 * `maas serve --processes 2`, the real CLI: two serving processes share the ports and map the
 * same packed cache files; a load or unload sent to one reaches both; /metrics sums both; a
 * process that dies is started again while the other keeps serving; SIGTERM stops them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addVersion, smallModel, tempRepository } from './server-helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** One REST call on a connection of its own (no keep-alive), so calls spread over the processes. */
function rest(port: number, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', agent: false },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${path} in 5 s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const inferBody = (width: number) => ({
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, width], data: Array.from({ length: width }, () => 0.25) }],
});

/** The inodes of the packed cache files a process maps. */
async function mappedPackInodes(pid: number, cache: string): Promise<string[]> {
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
  const inodes = maps
    .split('\n')
    .filter((line) => line.includes(`${cache}/`) && line.endsWith('.pack'))
    .map((line) => line.trim().split(/\s+/)[4]!);
  return [...new Set(inodes)].sort();
}

let root: string;
let cache: string;
beforeAll(async () => {
  root = await tempRepository();
  cache = join(await mkdtemp(join(tmpdir(), 'maas-processes-')), 'packed');
  await addVersion(root, 'small', 1, smallModel(4, 2, 3));
  await addVersion(root, 'other', 1, smallModel(6, 3, 4));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(join(cache, '..'), { recursive: true, force: true });
});

describe('maas serve --processes 2', () => {
  let child: ChildProcess;
  let output = '';
  const seen = (pattern: RegExp, from = 0) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const look = () => {
        const match = pattern.exec(output.slice(from));
        if (match) resolve(match);
      };
      child.stdout!.on('data', look);
      child.stderr!.on('data', look);
      child.once('exit', (code) => reject(new Error(`maas serve exited (${code}): ${output}`)));
      look();
    });

  it('serves from two processes over one copy of the weights, with loads, metrics and restarts for both', async () => {
    child = spawn(
      process.execPath,
      ['--import', 'tsx', CLI, 'serve', '--model-repository', root, '--host', '127.0.0.1', '--processes', '2'].concat(
        ['--packed-cache', cache, '--model-control-mode', 'explicit', '--load-model', 'small', '--workers', '1'],
        ['--http-port', '0', '--grpc-port', '0', '--metrics-port', '0', '--log-level', 'warn'],
      ),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const port = Number((await seen(/REST\s+http:\/\/127\.0\.0\.1:(\d+)\/v2/))[1]);
      const metricsPort = Number((await seen(/metrics\s+http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1]);
      const pids = (await seen(/2 serving processes \(pids (\d+), (\d+)\)/)).slice(1, 3).map(Number);

      // One copy: both processes map the same packed file of the same inode, written 0600 in a 0700 cache.
      const files = await readdir(cache);
      expect(files.filter((f) => f.endsWith('.pack')).length).toBe(1);
      expect((await stat(cache)).mode & 0o777).toBe(0o700);
      const [a, b] = await Promise.all(pids.map((pid) => mappedPackInodes(pid, cache)));
      expect(a!.length).toBe(1);
      expect(b).toEqual(a);

      for (let i = 0; i < 8; i++) expect((await rest(port, '/v2/models/small/infer', inferBody(4))).status).toBe(200);
      const metrics = (await rest(metricsPort, '/metrics')).body;
      expect(metrics).toMatch(/^nv_inference_request_success\{model="small",version="1"\} 8$/m);

      // A load sent to one process reaches both: every fresh connection finds the model.
      expect((await rest(port, '/v2/repository/models/other/load', {})).status).toBe(200);
      for (let i = 0; i < 8; i++) expect((await rest(port, '/v2/models/other/infer', inferBody(6))).status).toBe(200);
      expect((await readdir(cache)).filter((f) => f.endsWith('.pack')).length).toBe(2);
      expect((await rest(port, '/v2/repository/models/other/unload', {})).status).toBe(200);
      for (let i = 0; i < 8; i++)
        expect((await rest(port, '/v2/models/other/infer', inferBody(6))).status).not.toBe(200);

      // A process that dies is started again (a second later), and the other serves meanwhile.
      const before = output.length;
      process.kill(pids[1]!, 'SIGKILL');
      await seen(/serving process 1 stopped \(SIGKILL\); starting it again/, before);
      for (let i = 0; i < 8; i++) expect((await rest(port, '/v2/models/small/infer', inferBody(4))).status).toBe(200);
      const again = Number((await seen(/serving process 1 started again as pid (\d+)/, before))[1]);
      expect(again).not.toBe(pids[1]);
      expect(await mappedPackInodes(again, cache)).toEqual(a);

      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      for (const pid of [pids[0]!, again]) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
