/**
 * Models at rest: a key file, a model encrypted into a repository version, loaded back in memory
 * with the same predictions, and refused under the wrong key.
 *
 *   npx tsx docs/examples/models-at-rest.ts
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import {
  type MaasError,
  ModelKeyring,
  dense,
  encryptModel,
  generateModelKey,
  initializers,
  loadModel,
  sequential,
} from 'maas';

const OUT = 'docs/examples/out/at-rest';
await rm(OUT, { recursive: true, force: true });
await mkdir(`${OUT}/repo/orders/1`, { recursive: true });

// A key file of "<key id> <key>" lines that only its owner may read (what `maas keygen --out` writes).
await writeFile(`${OUT}/model-keys`, `prod-2026 ${generateModelKey()}\n`, { mode: 0o600 });
const keys = new ModelKeyring({ keyFile: `${OUT}/model-keys` });

const model = sequential({
  layers: [
    dense({
      units: 8,
      activation: 'relu',
      inputShape: [4],
      kernelInitializer: initializers.glorotUniform({ seed: 1 }),
    }),
    dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
  ],
});
await model.save(`${OUT}/plain`);
const sealed = await encryptModel(`${OUT}/plain`, `${OUT}/repo/orders/1/model.json.enc`, { keys, keyId: 'prod-2026' });
console.log('encrypted:', sealed.files, 'with key id', sealed.keyId);

const loaded = await loadModel(sealed.path, { keys });
const x = [[0.1, -0.2, 0.3, 0.5]];
console.log('same prediction:', loaded.predict(x).values[0] === model.predict(x).values[0]);

const wrongKeys = new ModelKeyring({ keys: { 'prod-2026': generateModelKey() } });
await loadModel(sealed.path, { keys: wrongKeys }).catch((e: MaasError) => console.log(`${e.code}: ${e.message}`));
