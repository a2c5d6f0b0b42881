/** Seeded model repositories for the serving benches (Triton's layout, written by the library). */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dense, initializers, sequential } from '../../src/index.js';

/**
 * Writes a dense model `widths[0] → … → widths.at(-1)` (relu between, sigmoid or softmax last) as
 * `<root>/<name>/<version>/`, and `config` as `<root>/<name>/config.json` when given.
 */
export async function writeModel(
  root: string,
  name: string,
  widths: number[],
  config?: object,
  version = 1,
): Promise<void> {
  const last = widths.length - 2;
  const model = sequential({
    layers: widths.slice(1).map((units, i) =>
      dense({
        units,
        activation: i < last ? 'relu' : units > 1 ? 'softmax' : 'sigmoid',
        kernelInitializer: initializers.glorotUniform({ seed: 17 + i }),
        ...(i === 0 ? { inputShape: [widths[0]!] } : {}),
      }),
    ),
  });
  await mkdir(join(root, name), { recursive: true });
  await model.save(join(root, name, String(version)));
  model.dispose();
  if (config) await writeFile(join(root, name, 'config.json'), JSON.stringify(config));
}
