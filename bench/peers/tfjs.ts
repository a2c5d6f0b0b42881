import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as WasmBackend from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs';
import type { DenseActivation, DenseSpec } from './onnx.js';

/** The TensorFlow.js backends benchmarked as peers. */
export type TfjsBackend = 'cpu' | 'wasm';

/** What the peer reports about the backend it runs on. */
export type TfjsInfo = {
  backend: TfjsBackend;
  version: string;
  simd?: boolean;
  multithread?: boolean;
  threads?: number;
};

/** A tfjs-layers model of the dense stack bound to one backend. */
export type TfjsPeer = {
  run(x: Float32Array, batch: number): Float32Array;
  dispose(): void;
  info: TfjsInfo;
};

type WasmModule = typeof WasmBackend;

let wasmModule: Promise<WasmModule> | null = null;

/** Imports the wasm backend once and points it at the package's own .wasm files, which must happen before its first setBackend. */
function loadWasmBackend(): Promise<WasmModule> {
  if (wasmModule === null) {
    wasmModule = import('@tensorflow/tfjs-backend-wasm').then((mod) => {
      const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm');
      mod.setWasmPaths(`${dirname(entry)}/`);
      return mod;
    });
  }
  return wasmModule;
}

/** Makes `backend` tfjs's active backend, loading the wasm one first when needed. */
export async function activateBackend(backend: TfjsBackend): Promise<void> {
  if (backend === 'wasm') await loadWasmBackend();
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' failed to initialise`);
  await tf.ready();
}

/**
 * Makes `backend` the engine's active one without awaiting: tfjs switches to an
 * already-initialised backend synchronously inside setBackend, so the returned
 * promise can be dropped. Weights stay on the backend they were created on, so
 * running two peers alternately makes tfjs copy them back and forth.
 */
function ensureBackend(backend: TfjsBackend): void {
  if (tf.getBackend() === backend) return;
  void tf.setBackend(backend);
  if (tf.getBackend() !== backend) throw new Error(`tfjs backend '${backend}' is not initialised`);
}

/** Keras dense activation string for the activations tfjs can fuse into the dense layer. */
function denseActivation(
  activation: DenseActivation,
): Exclude<DenseActivation, 'leakyRelu' | 'elu' | 'exponential' | 'kerasRelu' | 'geluTanh'> | 'gelu_new' {
  // leakyRelu and elu take an alpha that dense activation strings cannot carry, and tfjs has no
  // exponential activation nor Keras's full ReLU: those become separate layers.
  if (activation === 'leakyRelu' || activation === 'elu' || activation === 'exponential' || activation === 'kerasRelu')
    return 'linear';
  return activation === 'geluTanh' ? 'gelu_new' : activation;
}

/** An element-wise function as a layer (tfjs lacks exponential and Keras's ReLU(max, slope, threshold)). */
class ElementwiseLayer extends tf.layers.Layer {
  static className = 'MaasElementwise';

  constructor(private readonly fn: (x: tf.Tensor) => tf.Tensor) {
    super({});
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.tidy(() => this.fn(x));
  }
}

/** ELU with a non-default alpha, which tf.layers.elu rejects (tfjs only implements alpha = 1). */
class AlphaElu extends tf.layers.Layer {
  static className = 'MaasAlphaElu';

  constructor(private readonly alpha: number) {
    super({});
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.tidy(() => tf.where(tf.greater(x, 0), x, tf.mul(tf.elu(x), this.alpha)));
  }
}

/** The extra layer that applies an alpha-parameterised activation, or null when dense handles it. */
function alphaActivationLayer(layer: DenseSpec): tf.layers.Layer | null {
  if (layer.activation === 'leakyRelu') return tf.layers.leakyReLU({ alpha: layer.alpha });
  if (layer.activation === 'exponential') return new ElementwiseLayer((x) => tf.exp(x));
  if (layer.activation === 'kerasRelu') {
    const t = layer.threshold ?? 0,
      max = layer.maxValue ?? Infinity;
    return new ElementwiseLayer((x) =>
      tf.where(tf.greater(x, t), tf.minimum(x, max), tf.mul(tf.sub(x, t), layer.alpha)),
    );
  }
  if (layer.activation !== 'elu') return null;
  return layer.alpha === 1 ? tf.layers.elu() : new AlphaElu(layer.alpha);
}

/** Copies the given kernel and bias into the freshly built dense layer. */
function setDenseWeights(dense: tf.layers.Layer, layer: DenseSpec): void {
  const values: tf.Tensor[] = [tf.tensor2d(layer.weights, [layer.in, layer.out])];
  if (layer.bias !== null) values.push(tf.tensor1d(layer.bias));
  dense.setWeights(values);
  // setWeights keeps its own reference to the data, so the staging tensors can go.
  tf.dispose(values);
}

function buildModel(layers: DenseSpec[]): tf.Sequential {
  const model = tf.sequential();
  layers.forEach((layer, i) => {
    const dense = tf.layers.dense({
      units: layer.out,
      inputShape: i === 0 ? [layer.in] : undefined,
      activation: denseActivation(layer.activation),
      useBias: layer.bias !== null,
      // The real weights are set right after, so skip the random initialisation.
      kernelInitializer: 'zeros',
    });
    model.add(dense);
    setDenseWeights(dense, layer);
    const extra = alphaActivationLayer(layer);
    if (extra !== null) model.add(extra);
  });
  return model;
}

async function describeBackend(backend: TfjsBackend): Promise<TfjsInfo> {
  const info: TfjsInfo = { backend, version: tf.version.tfjs };
  if (backend !== 'wasm') return info;
  // Flags and the thread count are wasm-backend internals, so a missing one is reported as absent rather than failing.
  try {
    info.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    info.multithread = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
    info.threads = (await loadWasmBackend()).getThreadsCount();
  } catch {
    // keep whatever was read
  }
  return info;
}

/**
 * Builds the dense stack as a tfjs-layers Sequential on `backend`. tfjs has a
 * single global engine, so run() re-activates this peer's backend when another
 * peer switched it; run one backend at a time when timing.
 */
export async function createTfjsPeer(backend: TfjsBackend, layers: DenseSpec[]): Promise<TfjsPeer> {
  if (layers.length === 0) throw new Error('createTfjsPeer: at least one layer is required');
  await activateBackend(backend);
  const model = buildModel(layers);
  const width = layers[0]!.in;
  return {
    run(x: Float32Array, batch: number): Float32Array {
      ensureBackend(backend);
      const y = tf.tidy(() => model.predict(tf.tensor2d(x, [batch, width])) as tf.Tensor);
      try {
        // dataSync may hand back the backend's own buffer, so the caller gets a copy.
        return new Float32Array(y.dataSync());
      } finally {
        y.dispose();
      }
    },
    dispose: () => model.dispose(),
    info: await describeBackend(backend),
  };
}
