/**
 * Builds the bundled default repository `models/` that `npm start` serves: trains the classic
 * example model (100 → 64 relu → 32 relu → 1 sigmoid) with maas's own code, seeded, and writes
 * it as version 1 of model `classic` with its config.json.
 *
 *   npx tsx scripts/make-default-repository.ts [repositoryDir]
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runClassic } from '../examples/classic.js';

const root = resolve(process.argv[2] ?? 'models');
const modelDir = join(root, 'classic');
await rm(modelDir, { recursive: true, force: true });
await mkdir(modelDir, { recursive: true });
const result = await runClassic({ dir: join(modelDir, '1'), print: (line) => console.log(line) });
const config = {
  name: 'classic',
  max_batch_size: 256,
  input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [100] }],
  output: [{ name: 'output', data_type: 'TYPE_FP32', dims: [1] }],
  version_policy: { latest: { num_versions: 1 } },
  // No added delay: requests that queue while every worker is busy are batched together.
  dynamic_batching: { max_queue_delay_microseconds: 0 },
};
await writeFile(join(modelDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
console.log(`wrote ${modelDir} (held-out accuracy ${(result.accuracy * 100).toFixed(1)}%)`);
