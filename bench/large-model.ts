/**
 * Writes a large dense model (seeded) as maas saves models: a tfjs-layers model.json with one
 * weights file per layer. For the large-model bench: nothing that size is committed.
 *
 *   npx tsx bench/large-model.ts --out /tmp/large/1 [--layers 8] [--width 12288] [--fp32] [--seed 7]
 *
 * By default the model is int8 (maas's int8 format: the stored fp32 values lie exactly on each
 * column's int8 grid, and maas.quantization holds the scales, dynamic mode): 8 × 12288² weights
 * are 1.21 billion parameters, 4.8 GB of fp32 on disk and 1.2 GB once packed as int8. Hidden
 * layers are ReLU with He-scaled weights, so activations stay of order one through the stack.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface LargeModelOptions {
  layers: number;
  width: number;
  int8: boolean;
  seed: number;
}

/** mulberry32: a small seeded generator, 32 random bits per call. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** One layer's kernel [width, width] on its columns' int8 grids (an fp32 model takes the same values), and its bias. */
function layerWeights(
  width: number,
  next: () => number,
): { kernel: Float32Array; bias: Float32Array; scales: number[] } {
  const scales = Array.from({ length: width }, (_, j) =>
    Math.fround((Math.sqrt(6 / width) / 127) * (0.75 + (j % 8) / 16)),
  );
  const kernel = new Float32Array(width * width);
  for (let i = 0; i < kernel.length; i += 4) {
    const r = next();
    for (let b = 0; b < 4 && i + b < kernel.length; b++) {
      const q = Math.max(-127, ((r >>> (8 * b)) & 0xff) - 128);
      const s = scales[(i + b) % width]!;
      kernel[i + b] = q * s; // stored as the float nearest q·s: on the column's int8 grid
    }
  }
  const bias = Float32Array.from({ length: width }, (_, j) => 0.01 * Math.sin(j));
  return { kernel, bias, scales };
}

/** Writes the model into `dir` (model.json last, by rename); returns the bytes of its weights files. */
export async function writeLargeModel(dir: string, options: LargeModelOptions): Promise<number> {
  const { layers, width, int8, seed } = options;
  await mkdir(dir, { recursive: true });
  const next = generator(seed);
  const digest = createHash('sha256');
  const manifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[] = [];
  const topology: unknown[] = [];
  const quantLayers: unknown[] = [];
  let bytes = 0;
  for (let l = 0; l < layers; l++) {
    const name = `dense_${l + 1}`;
    const last = l === layers - 1;
    const { kernel, bias, scales } = layerWeights(width, next);
    const file = `layer${l + 1}.bin`;
    const handle = await open(join(dir, file), 'w');
    try {
      for (const part of [kernel, bias]) {
        const view = new Uint8Array(part.buffer);
        await handle.write(view);
        digest.update(view);
        bytes += view.length;
      }
    } finally {
      await handle.close();
    }
    manifest.push({
      paths: [`./${file}`],
      weights: [
        { name: `${name}/kernel`, shape: [width, width], dtype: 'float32' },
        { name: `${name}/bias`, shape: [width], dtype: 'float32' },
      ],
    });
    topology.push({
      class_name: 'Dense',
      config: {
        name,
        units: width,
        activation: last ? 'linear' : 'relu',
        use_bias: true,
        ...(l === 0 ? { batch_input_shape: [null, width] } : {}),
      },
    });
    quantLayers.push({ name, int8: true, weightScales: scales });
  }
  const json = {
    format: 'layers-model',
    generatedBy: 'maas bench/large-model.ts',
    modelTopology: { class_name: 'Sequential', config: { name: 'large', layers: topology } },
    weightsManifest: manifest,
    maas: {
      formatVersion: 1,
      signature: {
        inputs: [{ name: 'input', dtype: 'float32', shape: [-1, width] }],
        outputs: [{ name: 'output', dtype: 'float32', shape: [-1, width] }],
      },
      weightsSha256: digest.digest('hex'),
      ...(int8
        ? {
            quantization: {
              formatVersion: 1,
              scheme: 'u8-asymmetric-activations/s8-symmetric-weights',
              method: 'minmax',
              mode: 'dynamic',
              perChannel: true,
              layers: quantLayers,
            },
          }
        : {}),
    },
  };
  await writeFile(join(dir, 'model.json.tmp'), JSON.stringify(json));
  await rename(join(dir, 'model.json.tmp'), join(dir, 'model.json'));
  return bytes;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const value = (flag: string, fallback: number) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  const out = argv[argv.indexOf('--out') + 1];
  if (!argv.includes('--out') || !out)
    throw new Error('usage: bench/large-model.ts --out DIR [--layers 8] [--width 12288] [--fp32] [--seed 7]');
  const options = {
    layers: value('--layers', 8),
    width: value('--width', 12288),
    int8: !argv.includes('--fp32'),
    seed: value('--seed', 7),
  };
  const started = Date.now();
  const bytes = await writeLargeModel(out, options);
  console.log(
    `wrote ${out}: ${options.layers} × ${options.width}² ${options.int8 ? 'int8' : 'fp32'} (${((options.layers * options.width * options.width) / 1e9).toFixed(2)} B parameters, ${(bytes / 1e9).toFixed(2)} GB of weights) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}
