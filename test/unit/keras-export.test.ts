/**
 * Keras HDF5 export (`model.save('model.h5')`): the file loads back through loadModel with its
 * digest required and predicts bit for bit as the model did; read with h5wasm, it has the layout
 * Keras 2's load_model and tfjs's converter read (root attributes, model_weights with layer_names,
 * weight_names and float32 [in, out] datasets, weightless layers listed with no weights); a second
 * save replaces the file and leaves nothing beside it; what HDF5 cannot hold is a coded error.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dense, initializers, loadModel, quantize, sequential } from '../../src/index.js';
import { runConvert } from '../../src/cli/convert.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maas-h5-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function model() {
  const init = (seed: number) => initializers.glorotUniform({ seed });
  return sequential({
    layers: [
      dense({ units: 9, activation: 'relu', inputShape: [5], kernelInitializer: init(1) }),
      dense({ units: 7, activation: 'leakyRelu', alpha: 0.2, kernelInitializer: init(2) }),
      dense({ units: 6, activation: 'tanh', useBias: false, kernelInitializer: init(3) }),
      dense({ units: 3, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
}

/** The file's structure as Keras reads it, through h5wasm. */
async function layout(path: string) {
  const library = await import('h5wasm/node');
  const h5 = library.default;
  await h5.ready;
  const f = new h5.File(path, 'r');
  try {
    const attr = (g: { attrs: Record<string, { value: unknown }> }, n: string) => g.attrs[n]?.value;
    const weights = f.get('model_weights') as InstanceType<typeof h5.Group>;
    const layerNames = attr(weights, 'layer_names') as string[];
    const layers = layerNames.map((name) => {
      const g = weights.get(name) as InstanceType<typeof h5.Group>;
      // An empty list is stored as an empty numeric array, as Keras 2 (h5py) stores it too.
      const names = Array.from((attr(g, 'weight_names') ?? []) as ArrayLike<string>);
      return {
        name,
        weights: names.map((n) => {
          const ds = g.get(n) as InstanceType<typeof h5.Dataset>;
          return { name: n, shape: ds.shape, dtype: ds.dtype };
        }),
      };
    });
    return {
      kerasVersion: attr(f, 'keras_version') as string,
      backend: attr(f, 'backend') as string,
      config: JSON.parse(attr(f, 'model_config') as string) as {
        class_name: string;
        config: { layers: { class_name: string }[] };
      },
      layers,
    };
  } finally {
    f.close();
  }
}

describe('Keras HDF5 export', () => {
  it('loads back with its digest required (strictIntegrity) and predicts bit for bit', async () => {
    const m = model();
    const path = join(dir, 'model.h5');
    const saved = await m.save(path);
    expect(saved).toEqual({ h5: path });
    const back = await loadModel(path, { strictIntegrity: true });
    const x = Float32Array.from({ length: 4 * 5 }, (_, i) => Math.sin(i));
    expect(Array.from(back.predict(x).dataSync())).toEqual(Array.from(m.predict(x).dataSync()));
    expect(back.layers.map((l) => [l.units, l.activation, l.useBias])).toEqual(
      m.layers.map((l) => [l.units, l.activation, l.useBias]),
    );
    back.dispose();
    m.dispose();
  });

  it("has Keras 2's layout: root attributes, layer_names, weight_names and [in, out] float32 datasets", async () => {
    const m = model();
    const path = join(dir, 'layout.hdf5');
    await m.save(path);
    const f = await layout(path);
    expect(f.kerasVersion).toMatch(/^2\./);
    expect(f.backend).toBe('tensorflow');
    expect(f.config.class_name).toBe('Sequential');
    // The leaky ReLU is a layer of its own, listed with no weights, as Keras writes it.
    expect(f.config.config.layers.map((l) => l.class_name)).toEqual(['Dense', 'Dense', 'LeakyReLU', 'Dense', 'Dense']);
    expect(f.layers.map((l) => l.weights.length)).toEqual([2, 2, 0, 1, 2]);
    const dense0 = f.layers[0]!;
    expect(dense0.weights).toEqual([
      { name: `${dense0.name}/kernel:0`, shape: [5, 9], dtype: '<f' },
      { name: `${dense0.name}/bias:0`, shape: [9], dtype: '<f' },
    ]);
    expect(f.layers[3]!.weights[0]!.shape).toEqual([7, 6]);
    m.dispose();
  });

  it('replaces an earlier file and leaves nothing beside it', async () => {
    const sub = await mkdtemp(join(dir, 'again-'));
    const path = join(sub, 'm.h5');
    const first = model();
    await first.save(path);
    const second = sequential({ layers: [dense({ units: 2, inputShape: [3] })] });
    await second.save(path);
    expect(await readdir(sub)).toEqual(['m.h5']);
    const back = await loadModel(path);
    expect(back.layers.map((l) => l.units)).toEqual([2]);
    for (const x of [first, second, back]) x.dispose();
  });

  it('refuses an int8 model with a coded error, and converts a saved model to .h5 from the CLI', async () => {
    const m = model();
    const int8 = quantize(m, { calibrationData: Float32Array.from({ length: 16 * 5 }, (_, i) => Math.cos(i)) });
    await expect(int8.save(join(dir, 'int8.h5'))).rejects.toMatchObject({ code: 'MAAS_ERR_MODEL_FORMAT' });
    await expect(m.save('')).rejects.toMatchObject({ code: 'MAAS_ERR_ARG_TYPE' });
    // A misspelt option is refused, not ignored: the file is not loaded unchecked.
    await m.save(join(dir, 'checked.h5'));
    await expect(loadModel(join(dir, 'checked.h5'), { requireDigest: true } as never)).rejects.toMatchObject({
      code: 'MAAS_ERR_ARG_RANGE',
      message: expect.stringContaining('requireDigest') as unknown,
    });
    const tfjsDir = join(dir, 'tfjs');
    await m.save(tfjsDir);
    const lines: string[] = [];
    const out = await runConvert(tfjsDir, join(dir, 'converted.h5'), { print: (l: string) => lines.push(l) });
    expect(out).toBe(join(dir, 'converted.h5'));
    expect(lines.join('\n')).toMatch(/Keras HDF5 file/);
    const back = await loadModel(out, { strictIntegrity: true });
    const x = Float32Array.from({ length: 5 }, (_, i) => i / 5);
    expect(Array.from(back.predict(x).dataSync())).toEqual(Array.from(m.predict(x).dataSync()));
    for (const x2 of [m, int8, back]) x2.dispose();
  });
});
