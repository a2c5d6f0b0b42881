/**
 * The server under fuzz, run as a child process so that a crash ends it and not the fuzzer: a
 * temporary repository with a probe model (whose answers the fuzzer checks after every case), a
 * scratch model the fuzz cases may load and unload, and a model that converts input datatypes.
 * It reports its ports and the probe's expected output over IPC, then serves until disconnected.
 * With `--tokens` it serves under access control: a token file (in a directory of its own)
 * holding one admin token, which it reports too; server health stays open, as by default.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { addTokenRecord } from '../../src/serving/auth/token-store.js';
import { createToken } from '../../src/serving/auth/tokens.js';
import { serve } from '../../src/serving/server.js';
import { addVersion, smallModel, tempRepository } from '../../test/integration/server-helpers.js';
import { PROBE_INPUT, PROBE_MODEL, PROBE_WIDTH, type TargetReady } from './models.js';

const root = await tempRepository();
const probe = smallModel(PROBE_WIDTH, 2, 41);
await addVersion(root, PROBE_MODEL, 1, probe);
await addVersion(root, 'scratch', 1, smallModel(PROBE_WIDTH, 1, 42));
await addVersion(root, 'convert', 1, smallModel(PROBE_WIDTH, 3, 43), {
  max_batch_size: 8,
  parameters: { convert_input_datatypes: { string_value: 'true' } },
});
const expected = Array.from(probe.predict(PROBE_INPUT.slice()).values);
probe.dispose();

let tokens: { dir: string; file: string; token: string } | null = null;
if (process.argv.includes('--tokens')) {
  const dir = await mkdtemp(join(tmpdir(), 'maas-fuzz-tokens-'));
  const { token, record } = await createToken({ name: 'fuzz', scopes: ['admin'] });
  await addTokenRecord(join(dir, 'tokens.json'), record);
  tokens = { dir, file: join(dir, 'tokens.json'), token };
}

const server = await serve({
  modelRepository: root,
  host: '127.0.0.1',
  grpcPort: 0,
  httpPort: 0,
  metricsPort: null,
  workers: 1,
  modelControlMode: 'explicit',
  loadModels: ['*'],
  // Smaller than the default so that the limit itself is reachable by cheap cases.
  maxMessageBytes: 4 * 2 ** 20,
  logger: pino({ level: 'silent' }),
  ...(tokens ? { tokenFile: tokens.file } : {}),
});

const ready: TargetReady = {
  grpcPort: server.grpcPort!,
  httpPort: server.httpPort!,
  expected,
  ...(tokens ? { token: tokens.token } : {}),
};
process.send!(ready);
process.on('disconnect', () => {
  void server
    .close()
    .then(() => rm(root, { recursive: true, force: true }))
    .then(() => tokens && rm(tokens.dir, { recursive: true, force: true }))
    .finally(() => process.exit(0));
});
