/**
 * The CUDA backend as a model uses it: a dense stack uploaded to the first device once per set of
 * weights (native/src/cuda/stack.cu), behind the same handle contract as the CPU's packed stacks.
 */
import { fromNative } from '../core/errors.js';
import { native, type NativeCudaStackHandle } from '../native/index.js';
import { nativeLayerSpec, type DensePrecision, type PackLayer } from './packed.js';

/** Where predict runs: this machine's CPU kernels, or the first CUDA device. */
export type Backend = 'cpu' | 'cuda';
export const BACKENDS: readonly Backend[] = ['cpu', 'cuda'];

/** setBackend('cuda')'s options. */
export interface CudaOptions {
  /** Let fp32 products round their inputs to TF32 on the tensor cores (sums stay fp32). */
  tf32?: boolean;
}

/** Uploads the layers' weights to the device in `precision` (TF32 products when asked). */
export function openCudaStack(
  layers: readonly PackLayer[],
  precision: DensePrecision,
  tf32: boolean,
): NativeCudaStackHandle {
  try {
    return new native.CudaStackHandle(
      layers.map(nativeLayerSpec),
      layers.map((l) => l.kernel!),
      layers.map((l) => l.bias ?? null),
      precision === 'bf16' ? 2 : tf32 ? 1 : 0,
    );
  } catch (e) {
    throw fromNative(e);
  }
}
