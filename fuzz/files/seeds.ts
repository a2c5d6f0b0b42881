/**
 * The models the file phase mutates, one or two per format the repository serves: tfjs-layers
 * as maas writes it (with its weights digest) and as tfjs writes it (without), maas int8, Keras
 * .h5, and ONNX from Keras (via a converter) and from maas. Each is copied or written into a
 * temporary directory, with the files a mutation may touch and those a recorded digest covers.
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';
import { Random } from '../../src/core/random.js';
import { quantize } from '../../src/index.js';
import { smallModel } from '../../test/integration/server-helpers.js';

/** A seed model on disk. */
export interface SeedModel {
  name: string;
  /** The directory holding its files. */
  dir: string;
  /** The file the repository would open (model.json, model.h5, model.onnx). */
  entry: string;
  /** The files a mutant changes one of. */
  files: string[];
  /** The files a digest recorded in the model covers: a change to them must be refused. */
  digestCovers: ReadonlySet<string>;
}

const FIXTURES = join(packageRoot(), 'test', 'fixtures');

/**
 * Files covered by a digest the model records: tfjs-layers' maas.weightsSha256 covers the weights
 * files its manifest names. (Formats without a recorded digest cover nothing: a silent wrong load
 * there is reported apart from one under a digest. Integrity digests for other formats extend this.)
 */
async function recordedDigests(dir: string, entry: string): Promise<Set<string>> {
  if (!entry.endsWith('.json')) return new Set();
  const json = JSON.parse(await readFile(join(dir, entry), 'utf8')) as {
    maas?: { weightsSha256?: unknown };
    weightsManifest?: { paths: string[] }[];
  };
  if (typeof json.maas?.weightsSha256 !== 'string') return new Set();
  return new Set((json.weightsManifest ?? []).flatMap((g) => g.paths.map((p) => p.replace(/^\.\//, ''))));
}

async function seed(name: string, dir: string, entry: string, files: string[]): Promise<SeedModel> {
  return { name, dir, entry, files, digestCovers: await recordedDigests(dir, entry) };
}

async function copied(root: string, name: string, from: string, files: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (const [source, target] of Object.entries(files)) await copyFile(join(FIXTURES, from, source), join(dir, target));
  return dir;
}

/** Writes every seed model under `root`. */
export async function writeSeedModels(root: string): Promise<SeedModel[]> {
  const seeds: SeedModel[] = [];

  const fp32 = smallModel(6, 3, 11);
  const tfjs = join(root, 'tfjs-maas');
  await fp32.save(tfjs);
  await fp32.saveOnnx(join(await mkdirp(root, 'onnx-maas'), 'model.onnx'));
  fp32.dispose();
  seeds.push(await seed('tfjs-maas', tfjs, 'model.json', await modelJsonFiles(tfjs)));
  seeds.push(await seed('onnx-maas', join(root, 'onnx-maas'), 'model.onnx', ['model.onnx']));

  const random = new Random(12);
  const calibration = Float32Array.from({ length: 64 * 5 }, () => random.uniform(-1, 1));
  const int8Source = smallModel(5, 2, 12);
  const int8 = quantize(int8Source, { calibrationData: calibration });
  const int8Dir = join(root, 'int8-maas');
  await int8.save(int8Dir);
  int8.dispose();
  int8Source.dispose();
  seeds.push(await seed('int8-maas', int8Dir, 'model.json', await modelJsonFiles(int8Dir)));

  const foreign = await copied(root, 'tfjs-foreign', 'tfjs_layers/ml5_balance_model1', {
    'model.json': 'model.json',
    'model.weights.bin': 'model.weights.bin',
  });
  seeds.push(await seed('tfjs-foreign', foreign, 'model.json', ['model.json', 'model.weights.bin']));

  const mlp = await copied(root, 'keras-h5-mlp', 'keras_h5/dl4j_tfkeras_mlp', { 'mlp_0.h5': 'model.h5' });
  seeds.push(await seed('keras-h5-mlp', mlp, 'model.h5', ['model.h5']));
  const dense = await copied(root, 'keras-h5-dense', 'keras_h5/dl4j_dense_known_weights', {
    'dense_tensorflow_2.h5': 'model.h5',
  });
  seeds.push(await seed('keras-h5-dense', dense, 'model.h5', ['model.h5']));

  const onnx = await copied(root, 'onnx-keras', 'onnx/hls4ml_two_layer_keras', { 'model.onnx': 'model.onnx' });
  seeds.push(await seed('onnx-keras', onnx, 'model.onnx', ['model.onnx']));
  return seeds;
}

async function mkdirp(root: string, name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** model.json and the weights files its manifest names. */
async function modelJsonFiles(dir: string): Promise<string[]> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: { paths: string[] }[];
  };
  return ['model.json', ...json.weightsManifest.flatMap((g) => g.paths.map((p) => p.replace(/^\.\//, '')))];
}
