/**
 * Export and conversion: a maas model exported to ONNX runs in onnxruntime with the same
 * predictions; `maas convert` turns a Keras .h5 into ONNX and into a tfjs-layers directory that
 * both load back to the same model.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dense, initializers, loadModel, sequential } from '../../src/index.js';
import { runConvert } from '../../src/cli/convert.js';
import { packageRoot } from '../../src/core/package-root.js';
import { createOrtSession } from '../../bench/peers/onnx.js';

/** maas and onnxruntime on the same float32 weights (different summation order). */
const ORT_TOL = 2e-5;
const KERAS = join(packageRoot(), 'test', 'fixtures', 'keras_h5');

describe('ONNX export and maas convert', () => {
  it('maas → ONNX → onnxruntime predicts what maas predicts (Gemm and MatMul forms)', async () => {
    const model = sequential({
      layers: [
        dense({
          units: 16,
          activation: 'relu',
          inputShape: [10],
          kernelInitializer: initializers.glorotUniform({ seed: 1 }),
          biasInitializer: initializers.randomNormal({ seed: 2 }),
        }),
        dense({ units: 8, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 3 }) }),
        dense({
          units: 3,
          activation: 'softmax',
          useBias: false,
          kernelInitializer: initializers.glorotUniform({ seed: 4 }),
        }),
      ],
    });
    const x = Float32Array.from({ length: 5 * 10 }, (_, i) => Math.sin(i));
    const want = model.predict(x).values;
    for (const op of ['gemm', 'matmul'] as const) {
      const session = await createOrtSession(model.toOnnx({ op }), 1);
      const got = await session.run(x, 5);
      await session.release();
      got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(ORT_TOL));
    }
  });

  it('converts a Keras .h5 to ONNX and to a model directory, both loading back the same model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maas-convert-'));
    const lines: string[] = [];
    const input = join(KERAS, 'hls4ml_KERAS_3layer/KERAS_3layer_weights.h5');
    const architecture = join(KERAS, 'hls4ml_KERAS_3layer/KERAS_3layer.json');
    await runConvert(input, join(dir, 'm.onnx'), { architecture, print: (l) => lines.push(l) });
    await runConvert(input, join(dir, 'tfjs'), { architecture, print: (l) => lines.push(l) });
    expect(lines[0]).toMatch(
      /^converted .*KERAS_3layer_weights\.h5 \(16 → 64 relu → 32 relu → 32 relu → 5 softmax\) to ONNX: /,
    );
    const expected = JSON.parse(await readFile(join(KERAS, 'hls4ml_KERAS_3layer/expected.json'), 'utf8'));
    for (const path of [join(dir, 'm.onnx'), join(dir, 'tfjs')]) {
      const got = (await loadModel(path)).predict(expected.inputs).values;
      (expected.outputs as number[][])
        .flat()
        .forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThanOrEqual(expected.suggested_tolerance));
    }
  });
});
