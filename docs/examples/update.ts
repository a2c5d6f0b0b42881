/**
 * Updating a served model from new rows, and a federated round, against a server started here:
 * model "churn" (8 inputs → 16 relu → 1 sigmoid) serves version 1; an update streams 4 000 new
 * rows over REST, is judged on the 1 000 held-out rows the model's config names, and is promoted
 * as version 2 when it beats version 1 on accuracy; then three clients train on their own rows
 * and a round averages their deltas.
 *
 *   npx tsx docs/examples/update.ts
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GrpcInferenceClient,
  HttpInferenceClient,
  Random,
  dense,
  initializers,
  sequential,
  serve,
  trainAndSubmit,
} from 'maas';

const random = new Random(1);
const rows = (n: number) => {
  const x = Float32Array.from({ length: n * 8 }, () => random.uniform(-1, 1));
  const y = Float32Array.from({ length: n }, (_, r) => (x[r * 8]! + 0.5 * x[r * 8 + 1]! > 0 ? 1 : 0));
  return { x, y };
};
const architecture = () => {
  const seed = { kernelInitializer: initializers.glorotUniform({ seed: 2 }) };
  const m = sequential({
    layers: [
      dense({ units: 16, activation: 'relu', inputShape: [8], ...seed }),
      dense({ units: 1, activation: 'sigmoid', ...seed }),
    ],
  });
  m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
  return m;
};

// A repository: version 1, a config that judges updates on accuracy, and held-out rows for rounds.
const repo = await mkdtemp(join(tmpdir(), 'maas-update-'));
await mkdir(join(repo, 'churn'));
await architecture().save(join(repo, 'churn', '1'));
const held = rows(1000);
await writeFile(
  join(repo, 'churn', 'holdout.json'),
  JSON.stringify({
    x: Array.from({ length: 1000 }, (_, r) => Array.from(held.x.subarray(r * 8, r * 8 + 8))),
    y: Array.from(held.y),
  }),
);
await writeFile(
  join(repo, 'churn', 'config.json'),
  JSON.stringify({
    parameters: {
      update_metric: { string_value: 'accuracy' },
      update_margin: { string_value: '0.01' },
      update_holdout: { string_value: 'holdout.json' },
    },
  }),
);
const server = await serve({
  modelRepository: repo,
  grpcPort: 0,
  httpPort: 0,
  metricsPort: null,
  workers: 2,
  logLevel: 'warn',
});

// An update: the rows stream in batches; the training's epochs come back as it goes.
const http = new HttpInferenceClient(`http://127.0.0.1:${server.httpPort}`);
const fresh = rows(4000);
const outcome = await http.update({
  model: 'churn',
  parameters: { epochs: 10, batch_size: 32, learning_rate: 0.01, seed: 7 },
  batches: [
    { x: fresh.x.subarray(0, 2000 * 8), y: fresh.y.subarray(0, 2000) },
    { x: fresh.x.subarray(2000 * 8), y: fresh.y.subarray(2000) },
  ], // judged on the config's update_holdout rows: the client sends none
  onProgress: (p) =>
    p.event === 'epoch' && p.epoch % 5 === 0 && console.log(`epoch ${p.epoch}: loss ${p.logs.loss!.toFixed(3)}`),
});
console.log(
  `accuracy ${outcome.servingMetrics.accuracy!.toFixed(3)} → ${outcome.candidate.accuracy!.toFixed(3)}: ` +
    (outcome.promoted ? `promoted as version ${outcome.version}` : `kept (${outcome.reason})`),
);

// A federated round: each client trains on its own rows and sends only the weights' change.
const grpc = new GrpcInferenceClient(`127.0.0.1:${server.grpcPort}`);
const round = await grpc.openRound('churn', { minClients: 3, clipNorm: 1, noiseMultiplier: 0.5, seed: 3 });
for (const clinic of ['north', 'south', 'east']) {
  const own = rows(800);
  await trainAndSubmit(grpc, {
    model: 'churn',
    client: clinic,
    localModel: architecture(),
    ...own,
    fitArgs: { epochs: 3, seed: 1 },
  });
}
const result = await grpc.closeRound('churn', round.roundId);
console.log(
  `round of ${result.clients} clients on version ${result.baseVersion}: ${result.promoted ? `promoted as version ${result.version}` : 'kept'}, ` +
    `ε = ${result.privacy!.epsilon.toFixed(1)} at δ = ${result.privacy!.delta}`,
);
grpc.close();
await server.close();
