/**
 * The server under fuzz, run as a child process so that a crash ends it and not the fuzzer: a
 * temporary repository with a probe model (whose answers the fuzzer checks after every case), a
 * scratch model the fuzz cases may load and unload, and a model that converts input datatypes.
 * It reports its ports and the probe's expected output over IPC, then serves until disconnected.
 */
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
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
});

const ready: TargetReady = { grpcPort: server.grpcPort!, httpPort: server.httpPort!, expected };
process.send!(ready);
process.on('disconnect', () => {
  void server
    .close()
    .then(() => rm(root, { recursive: true, force: true }))
    .finally(() => process.exit(0));
});
