/**
 * Memory after load/unload cycles: a large model (default 10 000 × 10 000 fp32, 400 MB) loaded,
 * run and unloaded through the repository API of a server in this process, N times. Reports
 * the process's RSS before the first load, while loaded, and after each unload (first, last,
 * largest), with the inference answers checked on every cycle.
 *
 *   npx tsx bench/serve/unload-rss.ts [--cycles 100] [--width 10000] [--isolation thread]
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { HttpInferenceClient, dense, initializers, sequential } from '../../src/index.js';
import { serve } from '../../src/serving/server.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '100' },
    width: { type: 'string', default: '10000' },
    isolation: { type: 'string', default: 'thread' },
    generate: { type: 'string' },
  },
});
const cycles = Number(values.cycles);
const width = Number(values.width);
const isolation = values.isolation as 'thread' | 'process';

/** RSS of this process and, for process isolation, of its worker processes, in MB. */
async function rssMb(pids: number[]): Promise<number> {
  let kb = 0;
  for (const pid of new Set([process.pid, ...pids])) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    kb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  return kb / 1024;
}

/**
 * --generate DIR: writes the model and its answer for the probe row, in a process of its own,
 * so the measured process never holds the model's arrays.
 */
if (values.generate) {
  const model = sequential({
    layers: [
      dense({
        units: width,
        inputShape: [width],
        kernelInitializer: initializers.randomUniform({ minval: -0.01, maxval: 0.01, seed: 1 }),
      }),
    ],
  });
  await mkdir(join(values.generate, 'big'));
  await model.save(join(values.generate, 'big', '1'));
  const y = model.predict(new Float32Array(width).fill(0.5)).values;
  await writeFile(join(values.generate, 'expected.json'), JSON.stringify([y[0], y[width - 1]]));
  process.exit(0);
}

const root = await mkdtemp(join(tmpdir(), 'maas-rss-'));
try {
  execFileSync(
    process.execPath,
    [...process.execArgv, process.argv[1]!, '--width', String(width), '--generate', root],
    {
      stdio: 'inherit',
    },
  );
  const [first, last] = JSON.parse(await readFile(join(root, 'expected.json'), 'utf8')) as [number, number];
  const x = new Float32Array(width).fill(0.5);
  const server = await serve({
    modelRepository: root,
    grpcPort: null,
    httpPort: 0,
    metricsPort: null,
    modelControlMode: 'explicit',
    workerIsolation: isolation,
    logger: pino({ level: 'silent' }),
  });
  const client = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
  const pids = () => (isolation === 'process' ? server.pool.workerPids() : []);
  const before = await rssMb(pids());
  const afterUnload: number[] = [];
  let loadedMax = 0;
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) {
    await client.loadModel('big');
    const meta = await client.modelMetadata('big');
    const r = await client.infer({
      model: 'big',
      inputs: [{ name: meta.inputs[0]!.name, datatype: 'FP32', shape: [1, width], data: x }],
    });
    const y = r.outputs[0]!.data as Float32Array;
    if (Math.abs(y[0]! - first) > 1e-3 || Math.abs(y[width - 1]! - last) > 1e-3)
      throw new Error(`cycle ${i}: wrong output`);
    loadedMax = Math.max(loadedMax, await rssMb(pids()));
    await client.unloadModel('big');
    afterUnload.push(await rssMb(pids()));
    process.stderr.write(`cycle ${i + 1}: ${afterUnload.at(-1)!.toFixed(0)} MB after unload\n`);
  }
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const settled = await rssMb(pids());
  await server.close();
  const mb = (v: number) => v.toFixed(0);
  console.log(`after each unload: ${afterUnload.map(mb).join(' ')}`);
  console.log(
    `CPU: ${cpus()[0]?.model}; ${isolation} workers; model ${width}×${width} fp32 (${((width * width * 4) / 1e6).toFixed(0)} MB); ${cycles} cycles in ${seconds.toFixed(0)} s`,
  );
  console.log(
    '| RSS MB: before first load | largest while loaded | after unload 1 | after unload ' +
      cycles +
      ' | largest after an unload | 1 s after the last | last / first after unload |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  console.log(
    `| ${mb(before)} | ${mb(loadedMax)} | ${mb(afterUnload[0]!)} | ${mb(afterUnload.at(-1)!)} | ${mb(Math.max(...afterUnload))} | ${mb(settled)} | ${(afterUnload.at(-1)! / afterUnload[0]!).toFixed(3)} |`,
  );
} finally {
  await rm(root, { recursive: true, force: true });
}
