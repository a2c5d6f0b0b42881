/**
 * The onnxruntime-node peer: sessions over graphs written by maas's ONNX exporter.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';

export {
  buildDenseOnnx,
  buildGemmOnnx,
  type DenseSpec,
  type DenseActivation,
  type DenseOnnxOp,
} from '../../src/io/onnx-export.js';

/** A loaded ONNX Runtime session that runs batches of row-major float32 rows. */
export type OrtPeer = {
  run(x: Float32Array, batch: number): Promise<Float32Array>;
  release(): Promise<void>;
};

/** Opens an ONNX Runtime CPU session on the model bytes with a fixed intra-op thread count. */
export async function createOrtSession(model: Uint8Array, threads: number): Promise<OrtPeer> {
  const session = await InferenceSession.create(model, {
    intraOpNumThreads: threads,
    // Dense stacks are a chain, so inter-op parallelism would only add scheduling overhead.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inputName = session.inputNames[0]!;
  const outputName = session.outputNames[0]!;
  return {
    async run(x: Float32Array, batch: number): Promise<Float32Array> {
      const feeds = { [inputName]: new Tensor('float32', x, [batch, x.length / batch]) };
      const result = await session.run(feeds);
      return result[outputName]!.data as Float32Array;
    },
    release: () => session.release(),
  };
}
