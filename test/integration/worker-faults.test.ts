/**
 * Fault isolation and memory release of the inference workers: a worker that exits, runs out of
 * heap, aborts natively or is killed fails only the executions it held (MAAS_ERR_WORKER_DIED) and
 * is replaced; an unloaded version leaves no descriptor or mapping of its weights behind.
 */
import { readFile, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferencePool, type SharedWeights, type WorkerFault, type WorkerIsolation } from '../../src/index.js';
import { type MaasError } from '../../src/core/errors.js';
import { addVersion, smallModel, startServer, tempRepository } from './server-helpers.js';

const INPUTS = 6;
const OUTPUTS = 3;
const model = smallModel(INPUTS, OUTPUTS, 41);
const x = Float32Array.from({ length: 2 * INPUTS }, (_, i) => Math.sin(i));
const expected = model.predict(x).values;

let root: string;
beforeAll(async () => {
  root = await tempRepository();
  await addVersion(root, 'small', 1, model);
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A pool with the small model attached; `exited` resolves at the first worker exit the pool reports. */
async function poolWithModel(isolation: WorkerIsolation, key: string) {
  let reportExit: () => void = () => {};
  const exited = new Promise<void>((resolve) => (reportExit = resolve));
  const pool = new InferencePool({ workers: 2, isolation, testHooks: true, onWorkerExit: () => reportExit() });
  const { region } = await pool.load(join(root, 'small', '1', 'model.json'));
  const weights: SharedWeights = { key, format: region.format, fd: region.fd, byteLength: region.byteLength };
  pool.attach(weights);
  return { pool, weights, exited, run: () => pool.run(weights, x.slice(), 2, OUTPUTS) };
}

/** Settles every promise: the outputs of those that succeeded and the codes of those that failed. */
async function outcomes(runs: Promise<{ y: Float32Array }>[]) {
  const settled = await Promise.allSettled(runs);
  return {
    outputs: settled.filter((s) => s.status === 'fulfilled').map((s) => [...s.value.y]),
    codes: settled.filter((s) => s.status === 'rejected').map((s) => (s.reason as MaasError).code),
  };
}

/** The memfd weight regions this process (or `pid`) holds open or mapped. */
async function regionsOf(pid: number | 'self'): Promise<{ descriptors: number; mappings: number }> {
  let descriptors = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target.includes('maas-weights')) descriptors++;
  }
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
  return { descriptors, mappings: maps.split('\n').filter((line) => line.includes('maas-weights')).length };
}

describe.runIf(process.platform === 'linux')('inference workers', () => {
  const faults: [WorkerIsolation, WorkerFault][] = [
    ['thread', 'exit'],
    ['thread', 'oom'],
    ['process', 'exit'],
    ['process', 'abort'],
  ];
  it.each(faults)(
    'a %s worker that has a fault (%s) fails only what it held, and is replaced',
    async (isolation, fault) => {
      const { pool, run } = await poolWithModel(isolation, `small/${isolation}/${fault}`);
      try {
        await Promise.all([run(), run(), run(), run()]); // both workers have opened the model
        const before = pool.workerPids();
        // The fault is queued ahead of the runs sent to worker 0, so the worker dies holding them.
        pool.injectFault(0, fault);
        const during = await outcomes(Array.from({ length: 40 }, run));
        expect(during.codes.length).toBeGreaterThan(0);
        expect(new Set(during.codes)).toEqual(new Set(['MAAS_ERR_WORKER_DIED']));
        expect(during.outputs.length).toBeGreaterThan(0);
        for (const y of during.outputs) expect(y).toEqual([...expected]);
        // The replacement serves, over the same shared weights.
        const after = await outcomes(Array.from({ length: 40 }, run));
        expect(after.codes).toEqual([]);
        for (const y of after.outputs) expect(y).toEqual([...expected]);
        if (isolation === 'process') {
          expect(pool.workerPids()[0]).not.toBe(before[0]);
          expect(pool.workerPids()[1]).toBe(before[1]);
        }
      } finally {
        await pool.close();
      }
    },
  );

  it('a worker process killed from outside (SIGKILL) fails only what it held, and the process serving stays up', async () => {
    const { pool, run, exited } = await poolWithModel('process', 'small/killed');
    try {
      await Promise.all([run(), run()]);
      const victim = pool.workerPids()[1]!;
      const runs = Array.from({ length: 40 }, run);
      process.kill(victim, 'SIGKILL');
      const during = await outcomes(runs);
      await exited; // the kill may land after the runs: what follows goes to the replacement
      for (const code of during.codes) expect(code).toBe('MAAS_ERR_WORKER_DIED');
      for (const y of during.outputs) expect(y).toEqual([...expected]);
      const after = await outcomes(Array.from({ length: 20 }, run));
      expect(after.codes).toEqual([]);
      expect(pool.workerPids()).not.toContain(victim);
    } finally {
      await pool.close();
    }
  });

  it('refuses faults without test hooks, and a native abort in a thread (it would end the process)', async () => {
    const plain = new InferencePool({ workers: 1 });
    const hooked = new InferencePool({ workers: 1, testHooks: true });
    try {
      expect(() => plain.injectFault(0, 'exit')).toThrow(expect.objectContaining({ code: 'MAAS_ERR_ARG_RANGE' }));
      expect(() => hooked.injectFault(0, 'abort')).toThrow(/isolation 'process'/);
    } finally {
      await Promise.all([plain.close(), hooked.close()]);
    }
  });

  it.each(['thread', 'process'] as const)(
    'after a %s-isolated version is detached, no descriptor or mapping of its weights is left',
    async (isolation) => {
      const base = await regionsOf('self');
      const { pool, weights, run } = await poolWithModel(isolation, `small/release/${isolation}`);
      try {
        await Promise.all([run(), run(), run(), run()]);
        const pids = isolation === 'process' ? pool.workerPids() : [];
        const held = await regionsOf('self');
        expect(held.descriptors).toBe(base.descriptors + 1);
        // One mapping per process, whatever the number of worker threads that use it.
        if (isolation === 'thread') expect(held.mappings).toBe(base.mappings + 1);
        for (const pid of pids) expect(await regionsOf(pid)).toEqual({ descriptors: 0, mappings: 1 });
        // Detached while an execution is in flight: released when it is answered, and the
        // detach resolves once every worker has unmapped it.
        const last = run();
        const released = pool.detach(weights.key);
        await expect(run()).rejects.toMatchObject({ code: 'MAAS_ERR_MODEL_DISPOSED' });
        expect([...(await last).y]).toEqual([...expected]);
        await released;
        expect(await regionsOf('self')).toEqual(base);
        for (const pid of pids) expect(await regionsOf(pid)).toEqual({ descriptors: 0, mappings: 0 });
      } finally {
        await pool.close();
      }
    },
  );

  it('through the server: a killed worker process answers its requests 503 MAAS_ERR_WORKER_DIED, the rest 200', async () => {
    const server = await startServer(root, { workerIsolation: 'process' });
    try {
      const url = `http://127.0.0.1:${server.httpPort}/v2/models/small/infer`;
      const body = JSON.stringify({
        inputs: [{ name: 'input_1', datatype: 'FP32', shape: [2, INPUTS], data: [...x] }],
      });
      const meta = (await (await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/small`)).json()) as {
        inputs: { name: string }[];
      };
      const request = () =>
        fetch(url, { method: 'POST', body: body.replace('input_1', meta.inputs[0]!.name) }).then(async (r) => ({
          status: r.status,
          json: (await r.json()) as { outputs?: { data: number[] }[]; error?: string },
        }));
      const victim = server.pool.workerPids()[0]!;
      const runs = Array.from({ length: 60 }, request);
      process.kill(victim, 'SIGKILL');
      const answers = await Promise.all(runs);
      // The kill may land after those requests: wait for the replacement before the next ones.
      while (server.pool.workerPids()[0] === victim || server.pool.workerPids()[0] === -1)
        await new Promise((resolve) => setTimeout(resolve, 10));
      for (const a of answers) {
        if (a.status === 200) expect(a.json.outputs![0]!.data).toEqual([...expected]);
        else {
          expect(a.status).toBe(503);
          expect(a.json.error).toMatch(/MAAS_ERR_WORKER_DIED|stopped/);
        }
      }
      const later = await Promise.all(Array.from({ length: 20 }, request));
      expect(later.map((a) => a.status)).toEqual(Array(20).fill(200));
      expect((await fetch(`http://127.0.0.1:${server.httpPort}/v2/health/ready`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
