/**
 * Training through the public API: weights after N steps equal @tensorflow/tfjs's for SGD and
 * Adam, each optimizer's first steps equal a hand computation, regularization adds exactly its
 * penalty, clipping bounds the update, callbacks run in order, and bad inputs are coded errors.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adam,
  adamw,
  dense,
  earlyStopping,
  initializers,
  regularizers,
  rmsprop,
  sequential,
  sgd,
  tensor,
  type ActivationName,
  type LossName,
  type Optimizer,
  type Sequential,
} from '../../src/index.js';
import { TEST_SEED, errorOf, rng } from '../helpers.js';

/** Weights after 20 float32 steps, two implementations with different summation orders. */
const TFJS_WEIGHT_TOL = 2e-5;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function twin(widths: number[], acts: ActivationName[], seed: number): { ours: Sequential; theirs: tf.Sequential } {
  const ours = sequential({
    layers: acts.map((activation, i) =>
      dense({
        units: widths[i + 1]!,
        activation,
        ...(i === 0 ? { inputShape: [widths[0]!] } : {}),
        kernelInitializer: initializers.glorotUniform({ seed: seed + i }),
        biasInitializer: initializers.randomUniform({ seed: seed + 10 + i, minval: -0.1, maxval: 0.1 }),
      }),
    ),
  });
  const theirs = tf.sequential({
    layers: acts.map((activation, i) =>
      tf.layers.dense({
        units: widths[i + 1]!,
        activation: activation as 'relu',
        ...(i === 0 ? { inputShape: [widths[0]!] } : {}),
      }),
    ),
  });
  theirs.setWeights(ours.getWeights().map((w) => tf.tensor(w.values, [...w.shape])));
  return { ours, theirs };
}

function expectSameWeights(ours: Sequential, theirs: tf.Sequential, what: string): void {
  const a = ours.getWeights();
  const b = theirs.getWeights().map((w) => w.dataSync() as Float32Array);
  a.forEach((w, i) => {
    for (let j = 0; j < w.size; j++) {
      if (!(Math.abs(w.values[j]! - b[i]![j]!) <= TFJS_WEIGHT_TOL))
        expect.fail(`${what} (seed ${TEST_SEED}): weight ${i}[${j}]: maas ${w.values[j]} vs tfjs ${b[i]![j]}`);
    }
  });
}

function data(n: number, inDim: number, outDim: number, loss: LossName, salt: number) {
  const r = rng(salt);
  const x = Float32Array.from({ length: n * inDim }, () => r.normal());
  const y =
    loss === 'binaryCrossentropy'
      ? Float32Array.from({ length: n * outDim }, () => (r.next() < 0.5 ? 1 : 0))
      : loss === 'categoricalCrossentropy'
        ? Float32Array.from({ length: n * outDim }, (_, i) => (i % outDim === Math.floor(i / outDim) % outDim ? 1 : 0))
        : Float32Array.from({ length: n * outDim }, () => r.normal());
  return { x, y };
}

describe('weights after N steps equal @tensorflow/tfjs', () => {
  const cases: [string, () => Optimizer, () => tf.Optimizer, LossName, ActivationName[]][] = [
    ['sgd / mse', () => sgd({ learningRate: 0.05 }), () => tf.train.sgd(0.05), 'meanSquaredError', ['tanh', 'linear']],
    ['sgd / bce', () => sgd({ learningRate: 0.1 }), () => tf.train.sgd(0.1), 'binaryCrossentropy', ['relu', 'sigmoid']],
    [
      'adam / bce',
      () => adam({ learningRate: 0.01 }),
      () => tf.train.adam(0.01),
      'binaryCrossentropy',
      ['relu', 'sigmoid'],
    ],
    [
      'adam / cce',
      () => adam({ learningRate: 0.005 }),
      () => tf.train.adam(0.005),
      'categoricalCrossentropy',
      ['elu', 'softmax'],
    ],
    [
      'sgd momentum / mse',
      () => sgd({ learningRate: 0.02, momentum: 0.9 }),
      () => tf.train.momentum(0.02, 0.9),
      'meanSquaredError',
      ['sigmoid', 'linear'],
    ],
    [
      'rmsprop / mse',
      () => rmsprop({ learningRate: 0.002 }),
      () => tf.train.rmsprop(0.002, 0.9, 0, 1e-7),
      'meanSquaredError',
      ['tanh', 'linear'],
    ],
  ];
  for (const [name, ourOpt, theirOpt, loss, acts] of cases) {
    it(name, async () => {
      const out = loss === 'categoricalCrossentropy' ? 4 : loss === 'binaryCrossentropy' ? 1 : 3;
      const { ours, theirs } = twin([7, 12, out], acts, 40);
      const { x, y } = data(80, 7, out, loss, 9);
      ours.compile({ optimizer: ourOpt(), loss });
      theirs.compile({ optimizer: theirOpt(), loss });
      await ours.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
      await theirs.fit(tf.tensor2d(x, [80, 7]), tf.tensor2d(y, [80, out]), {
        epochs: 2,
        batchSize: 8,
        shuffle: false,
        verbose: 0,
      });
      expectSameWeights(ours, theirs, name);
    });
  }
});

describe('optimizers: the first steps by hand', () => {
  // One weight, one input of 1, target 0, mse: loss = (w − 0)², gradient 2w.
  function oneWeight(opt: Optimizer, w0: number, steps: number): number[] {
    const m = sequential({
      layers: [
        dense({ units: 1, inputShape: [1], useBias: false, kernelInitializer: initializers.constant({ value: w0 }) }),
      ],
    });
    m.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const seen: number[] = [];
    for (let i = 0; i < steps; i++) {
      m.trainOnBatch([[1]], [[0]]);
      seen.push(m.getWeights()[0]!.values[0]!);
    }
    return seen;
  }
  const f = Math.fround;

  it('sgd: w -= lr·g', () => {
    let w = 0.5;
    const want = [0, 1, 2].map(() => (w = f(w - f(0.1 * 2 * w))));
    expect(oneWeight(sgd({ learningRate: 0.1 }), 0.5, 3)).toEqual(want);
  });

  it('sgd with momentum and nesterov: v = m·v + g; w -= lr·(g + m·v)', () => {
    let w = 0.5,
      v = 0;
    const want = [0, 1, 2].map(() => {
      const g = 2 * w;
      v = 0.9 * v + g;
      w -= 0.1 * (g + 0.9 * v);
      return w;
    });
    oneWeight(sgd({ learningRate: 0.1, momentum: 0.9, nesterov: true }), 0.5, 3).forEach((got, i) =>
      expect(got).toBeCloseTo(want[i]!, 6),
    );
  });

  it('adam and adamw: bias-corrected moments, decoupled decay', () => {
    for (const wd of [0, 0.1]) {
      let w = 0.5,
        m = 0,
        v = 0;
      const want = [1, 2, 3].map((t) => {
        const g = 2 * w;
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        w -= 0.01 * wd * w;
        w -= (0.01 * (m / (1 - 0.9 ** t))) / (Math.sqrt(v / (1 - 0.999 ** t)) + 1e-7);
        return w;
      });
      const opt = wd ? adamw({ learningRate: 0.01, weightDecay: wd }) : adam({ learningRate: 0.01 });
      oneWeight(opt, 0.5, 3).forEach((got, i) => expect(got).toBeCloseTo(want[i]!, 6));
    }
  });

  it('rmsprop: ms = ρ·ms + (1−ρ)·g²; w -= lr·g/√(ms+ε)', () => {
    let w = 0.5,
      ms = 0;
    const want = [0, 1, 2].map(() => {
      const g = 2 * w;
      ms = 0.9 * ms + 0.1 * g * g;
      w -= (0.01 * g) / Math.sqrt(ms + 1e-7);
      return w;
    });
    oneWeight(rmsprop({ learningRate: 0.01 }), 0.5, 3).forEach((got, i) => expect(got).toBeCloseTo(want[i]!, 6));
  });

  it('a learning rate changed between steps takes effect at the next step', () => {
    const opt = sgd({ learningRate: 0.1 });
    const m = sequential({
      layers: [
        dense({ units: 1, inputShape: [1], useBias: false, kernelInitializer: initializers.constant({ value: 1 }) }),
      ],
    });
    m.compile({ optimizer: opt, loss: 'meanSquaredError' });
    m.trainOnBatch([[1]], [[0]]);
    opt.learningRate = 0.25;
    m.trainOnBatch([[1]], [[0]]);
    expect(m.getWeights()[0]!.values[0]).toBeCloseTo(0.8 - 0.25 * 1.6, 6);
  });
});

describe('regularization and clipping', () => {
  it('l1l2 adds exactly λ1·Σ|w| + λ2·Σw² to the loss', () => {
    const make = (reg: boolean) => {
      const m = sequential({
        layers: [
          dense({
            units: 3,
            inputShape: [4],
            kernelInitializer: initializers.glorotUniform({ seed: 5 }),
            ...(reg ? { kernelRegularizer: regularizers.l1l2({ l1: 0.01, l2: 0.02 }) } : {}),
          }),
        ],
      });
      m.compile({ optimizer: sgd({ learningRate: 1e-9 }), loss: 'meanSquaredError' });
      return m;
    };
    const plain = make(false),
      reg = make(true);
    const w = reg.getWeights()[0]!.values;
    const penalty = w.reduce((s, v) => s + 0.01 * Math.abs(v) + 0.02 * v * v, 0);
    const x = [[1, 2, 3, 4]],
      y = [[0, 1, 0]];
    expect(reg.trainOnBatch(x, y) as number).toBeCloseTo((plain.trainOnBatch(x, y) as number) + penalty, 5);
  });

  it('clipNorm bounds the gradient: one sgd step moves the weights by at most lr·clipNorm', () => {
    const make = (clipNorm?: number) => {
      const m = sequential({
        layers: [dense({ units: 2, inputShape: [3], kernelInitializer: initializers.glorotUniform({ seed: 6 }) })],
      });
      m.compile({ optimizer: sgd({ learningRate: 1, ...(clipNorm ? { clipNorm } : {}) }), loss: 'meanSquaredError' });
      return m;
    };
    const x = [[10, -20, 30]],
      y = [[100, -100]];
    const moved = (m: Sequential) => {
      const before = m.getWeights().flatMap((w) => Array.from(w.values));
      m.trainOnBatch(x, y);
      const after = m.getWeights().flatMap((w) => Array.from(w.values));
      return Math.sqrt(before.reduce((s, v, i) => s + (v - after[i]!) ** 2, 0));
    };
    expect(moved(make())).toBeGreaterThan(10);
    expect(moved(make(0.5))).toBeCloseTo(0.5, 4);
  });
});

describe('fit behaviour', () => {
  function classic(seed: number) {
    const r = rng(seed);
    const w = Float32Array.from({ length: 100 }, () => r.normal());
    const n = 2000;
    const x = Float32Array.from({ length: n * 100 }, () => r.normal());
    const y = Float32Array.from({ length: n }, (_, i) =>
      x.subarray(i * 100, (i + 1) * 100).reduce((s, v, j) => s + v * w[j]!, 0) > 0 ? 1 : 0,
    );
    return { x, y, n };
  }

  it('runs the hooks in tfjs order, yields to the event loop, and records History', async () => {
    const { x, y } = classic(1);
    const m = sequential({
      layers: [dense({ units: 16, activation: 'relu', inputShape: [100] }), dense({ units: 1, activation: 'sigmoid' })],
    });
    m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy', 'auc'] });
    const events: string[] = [];
    let immediateRan = false;
    let ranBeforeSecondEpoch = false;
    const h = await m.fit(x, y, {
      epochs: 5,
      batchSize: 50,
      validationSplit: 0.25,
      seed: 7,
      verbose: 0,
      callbacks: {
        onTrainBegin: () => {
          events.push('trainBegin');
          setImmediate(() => {
            immediateRan = true;
          });
        },
        onEpochBegin: (e) => {
          events.push(`epochBegin${e}`);
          if (e === 1) ranBeforeSecondEpoch = immediateRan;
        },
        onEpochEnd: (e) => {
          events.push(`epochEnd${e}`);
        },
        onTrainEnd: () => {
          events.push('trainEnd');
        },
      },
    });
    expect(events).toEqual([
      'trainBegin',
      ...[0, 1, 2, 3, 4].flatMap((e) => [`epochBegin${e}`, `epochEnd${e}`]),
      'trainEnd',
    ]);
    expect(Object.keys(h.history).sort()).toEqual(['acc', 'auc', 'loss', 'val_acc', 'val_auc', 'val_loss']);
    expect(h.epoch).toEqual([0, 1, 2, 3, 4]);
    expect(h.history.loss![4]).toBeLessThan(h.history.loss![0]!);
    expect(h.history.val_auc![4]).toBeGreaterThan(0.5);
    // An immediate queued when training began ran before the second epoch: fit gives the event
    // loop a turn every epoch (and every 10 ms within one).
    expect(ranBeforeSecondEpoch).toBe(true);
  });

  it('is reproducible with a seed', async () => {
    const { x, y } = classic(2);
    const run = async () => {
      const m = sequential({
        layers: [
          dense({
            units: 8,
            activation: 'tanh',
            inputShape: [100],
            kernelInitializer: initializers.glorotUniform({ seed: 1 }),
          }),
          dense({ units: 1, activation: 'sigmoid', kernelInitializer: initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
      m.compile({ optimizer: sgd({ learningRate: 0.1 }), loss: 'binaryCrossentropy' });
      return (await m.fit(x, y, { epochs: 2, batchSize: 32, seed: 99, verbose: 0 })).history.loss;
    };
    expect(await run()).toEqual(await run());
  });

  it('earlyStopping stops when the monitored value stops improving', async () => {
    const { x, y } = classic(3);
    const m = sequential({
      layers: [dense({ units: 32, activation: 'relu', inputShape: [100] }), dense({ units: 1, activation: 'sigmoid' })],
    });
    m.compile({ optimizer: adam({ learningRate: 0.05 }), loss: 'binaryCrossentropy' });
    const stop = earlyStopping({ monitor: 'val_loss', patience: 1 });
    const h = await m.fit(x.subarray(0, 400 * 100), y.subarray(0, 400), {
      epochs: 60,
      batchSize: 16,
      validationSplit: 0.5,
      seed: 1,
      verbose: 0,
      callbacks: [stop],
    });
    expect(h.epoch.length).toBeLessThan(60);
    expect(stop.stoppedEpoch).toBe(h.epoch[h.epoch.length - 1]);
  });

  it('the classic example: far above chance on held-out data, and predict uses the trained weights', async () => {
    const { x, y, n } = classic(4);
    const m = sequential({
      layers: [
        dense({ units: 64, activation: 'relu', inputShape: [100] }),
        dense({ units: 32, activation: 'relu' }),
        dense({ units: 1, activation: 'sigmoid' }),
      ],
    });
    m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const cut = 1600 * 100;
    await m.fit(x.subarray(0, cut), y.subarray(0, 1600), { epochs: 10, batchSize: 32, seed: 5, verbose: 0 });
    const [, acc] = m.evaluate(x.subarray(cut), y.subarray(1600)) as [unknown, { dataSync(): Float32Array }];
    expect(acc.dataSync()[0]).toBeGreaterThan(0.85);
    const p = m.predict(x.subarray(cut)).values;
    const agree = p.reduce((s, v, i) => s + ((v > 0.5 ? 1 : 0) === y[1600 + i] ? 1 : 0), 0) / (n - 1600);
    expect(agree).toBeCloseTo(acc.dataSync()[0]!, 5);
  });
});

describe('bad training calls are coded errors', () => {
  const m = sequential({ layers: [dense({ units: 3, activation: 'softmax', inputShape: [2] })] });

  it('before compile, unknown loss or optimizer, loss that does not fit the output', async () => {
    expect(await errorOf(() => m.trainOnBatch([[1, 2]], [[0, 0, 1]]))).toMatch(/^MAAS_ERR_MODEL_NOT_COMPILED: /);
    expect(await errorOf(() => m.compile({ optimizer: 'adam', loss: 'hinge' as LossName }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected one of 'meanSquaredError', .* for compile.loss but received 'hinge'/,
    );
    expect(await errorOf(() => m.compile({ optimizer: 'adagrad' as 'adam', loss: 'meanSquaredError' }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: .*compile.optimizer.*'adagrad'/,
    );
    expect(await errorOf(() => m.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' }))).toMatch(
      /^MAAS_ERR_LOSS_OUTPUT_MISMATCH: /,
    );
  });

  it('mismatched rows, wrong feature count, NaN labels, labels outside the classes', async () => {
    m.compile({ optimizer: 'sgd', loss: 'sparseCategoricalCrossentropy' });
    expect(
      await errorOf(() =>
        m.fit(
          [
            [1, 2],
            [3, 4],
          ],
          [0],
          { verbose: 0 },
        ),
      ),
    ).toBe('MAAS_ERR_SHAPE_MISMATCH: Expected y to have as many rows as x (2) but received 1');
    expect(await errorOf(() => m.fit([[1, 2, 3]], [0], { verbose: 0 }))).toMatch(
      /^MAAS_ERR_SHAPE_MISMATCH: Expected x of shape \[batch, 2\]/,
    );
    expect(await errorOf(() => m.fit([[1, 2]], [Number.NaN], { verbose: 0 }))).toMatch(
      /^MAAS_ERR_TARGETS_INVALID: Expected class indices in \[0, 3\) for y but row 0 holds NaN/,
    );
    expect(await errorOf(() => m.fit([[1, 2]], [3], { verbose: 0 }))).toMatch(/^MAAS_ERR_TARGETS_INVALID: /);
    expect(await errorOf(() => m.fit([[1, 2]], [1], { epochs: 0, verbose: 0 }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: Expected an integer >= 1 for fit.epochs/,
    );
    expect(await errorOf(() => m.fit([[1, 2]], [1], { validationSplit: 1.5, verbose: 0 }))).toMatch(
      /^MAAS_ERR_ARG_RANGE: .*fit.validationSplit/,
    );
    // and the model still trains afterwards: the step's loss is the crossentropy of its forward pass
    const p = m.predict(tensor([[1, 2]])).values[2]!;
    expect(m.trainOnBatch(tensor([[1, 2]]), [2])).toBeCloseTo(-Math.log(p), 5);
    expect(m.predict(tensor([[1, 2]])).values[2]!).toBeGreaterThan(p);
  });
});
