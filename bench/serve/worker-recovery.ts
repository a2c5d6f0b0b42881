/**
 * How long a pool with one worker serves nothing after that worker dies: from the kill (SIGKILL
 * for a process, an exit for a thread) to the first execution answered by its replacement,
 * with executions sent back to back throughout. Five kills per isolation.
 *
 *   npx tsx bench/serve/worker-recovery.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferencePool, dense, initializers, sequential, type WorkerIsolation } from '../../src/index.js';

const dir = await mkdtemp(join(tmpdir(), 'maas-recovery-'));
const model = sequential({
  layers: [dense({ units: 8, inputShape: [8], kernelInitializer: initializers.glorotUniform({ seed: 1 }) })],
});
await model.save(join(dir, 'm'));
const rows: string[] = [];
try {
  for (const isolation of ['thread', 'process'] as WorkerIsolation[]) {
    const pool = new InferencePool({ workers: 1, isolation, testHooks: true });
    const { region } = await pool.load(join(dir, 'm', 'model.json'));
    const weights = { key: 'm', format: region.format, fd: region.fd, byteLength: region.byteLength };
    pool.attach(weights);
    const run = () => pool.run(weights, new Float32Array(8).fill(0.5), 1, 8);
    await run();
    const gaps: number[] = [];
    let failed = 0;
    for (let k = 0; k < 5; k++) {
      const killedAt = performance.now();
      if (isolation === 'process') process.kill(pool.workerPids()[0]!, 'SIGKILL');
      else pool.injectFault(0, 'exit');
      for (;;) {
        try {
          await run();
          // The first answer after the kill may come from the old worker (the kill lands later):
          // only an answer after the pool has seen the exit counts.
          if (pool.workerPids()[0] !== -1 && performance.now() - killedAt > 0 && failed > 0) break;
        } catch {
          failed++;
        }
      }
      gaps.push(performance.now() - killedAt);
      failed = 0;
    }
    await pool.close();
    rows.push(`| ${isolation} | ${gaps.map((g) => g.toFixed(0)).join(', ')} |`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(`CPU: ${cpus()[0]?.model}, ${cpus().length} cores; one worker, executions back to back`);
console.log(
  '| isolation | kill → first answer by the replacement, ms (5 kills in a row; from the 3rd, a worker that died 3 times in 10 s is restarted after 1 s) |',
);
console.log('| --- | --- |');
for (const row of rows) console.log(row);
