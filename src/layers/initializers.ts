/**
 * Weight initializers with tfjs's names and math (variance scaling for the Glorot, He and LeCun
 * families). Every initializer takes an optional seed so a model can be built reproducibly.
 */
import { invalidParameter } from '../core/errors.js';
import { Random, randomSeed } from '../core/random.js';
import { checkFinite, checkInteger, checkOptions } from '../core/validation.js';

/** Fills a kernel [fanIn, fanOut] (or a bias [fanOut], fanIn = fanOut) with initial values. */
export interface Initializer {
  /** The Keras/tfjs class name saved in model.json. */
  readonly className: string;
  /** Its Keras/tfjs configuration, saved in model.json. */
  readonly config: Record<string, unknown>;
  /** Returns `size` initial values for a layer with these fan-in and fan-out. */
  init(size: number, fanIn: number, fanOut: number): Float32Array;
}

type Scale = 'fanIn' | 'fanOut' | 'fanAvg';
type Distribution = 'uniform' | 'truncatedNormal' | 'normal';

function varianceScaling(
  className: string,
  scale: number,
  mode: Scale,
  distribution: Distribution,
  seed?: number,
): Initializer {
  const resolved = seed ?? randomSeed();
  return {
    className,
    config: { scale, mode, distribution, seed: seed ?? null },
    init(size, fanIn, fanOut) {
      const rng = new Random(resolved);
      const fan = mode === 'fanIn' ? fanIn : mode === 'fanOut' ? fanOut : (fanIn + fanOut) / 2;
      const variance = scale / Math.max(1, fan);
      const out = new Float32Array(size);
      if (distribution === 'uniform') {
        const limit = Math.sqrt(3 * variance);
        for (let i = 0; i < size; i++) out[i] = rng.uniform(-limit, limit);
      } else if (distribution === 'truncatedNormal') {
        // 0.8796... is the stddev of a unit normal truncated at ±2 (Keras's correction)
        const stddev = Math.sqrt(variance) / 0.87962566103423978;
        for (let i = 0; i < size; i++) out[i] = rng.truncatedNormal(0, stddev);
      } else {
        const stddev = Math.sqrt(variance);
        for (let i = 0; i < size; i++) out[i] = rng.normal(0, stddev);
      }
      return out;
    },
  };
}

function constant(className: string, value: number): Initializer {
  return { className, config: { value }, init: (size) => new Float32Array(size).fill(value) };
}

/** Options of the random initializers. */
export interface SeedArgs {
  /** Seed of the generator; without one each call draws different values. */
  seed?: number;
}

function seedOf(name: string, args: unknown): number | undefined {
  const opts = checkOptions(name, args, ['seed']);
  return opts.seed === undefined ? undefined : checkInteger(`${name}.seed`, opts.seed, 0, 2 ** 32 - 1);
}

/** The initializer factories, by tfjs name. */
export const initializers = {
  /** All zeros. */
  zeros: (): Initializer => constant('Zeros', 0),
  /** All ones. */
  ones: (): Initializer => constant('Ones', 1),
  /** One value everywhere. */
  constant: (args: { value: number }): Initializer => constant('Constant', checkFinite('constant.value', args?.value)),
  /** Uniform in [minval, maxval). */
  randomUniform: (args: { minval?: number; maxval?: number; seed?: number } = {}): Initializer => {
    const opts = checkOptions('randomUniform', args, ['minval', 'maxval', 'seed']);
    const min = opts.minval === undefined ? -0.05 : checkFinite('randomUniform.minval', opts.minval);
    const max = opts.maxval === undefined ? 0.05 : checkFinite('randomUniform.maxval', opts.maxval);
    const seed = seedOf('randomUniform', { seed: opts.seed });
    const resolved = seed ?? randomSeed();
    return {
      className: 'RandomUniform',
      config: { minval: min, maxval: max, seed: seed ?? null },
      init(size) {
        const rng = new Random(resolved);
        return Float32Array.from({ length: size }, () => rng.uniform(min, max));
      },
    };
  },
  /** Normal with mean and stddev. */
  randomNormal: (args: { mean?: number; stddev?: number; seed?: number } = {}): Initializer => {
    const opts = checkOptions('randomNormal', args, ['mean', 'stddev', 'seed']);
    const mean = opts.mean === undefined ? 0 : checkFinite('randomNormal.mean', opts.mean);
    const stddev = opts.stddev === undefined ? 0.05 : checkFinite('randomNormal.stddev', opts.stddev);
    const seed = seedOf('randomNormal', { seed: opts.seed });
    const resolved = seed ?? randomSeed();
    return {
      className: 'RandomNormal',
      config: { mean, stddev, seed: seed ?? null },
      init(size) {
        const rng = new Random(resolved);
        return Float32Array.from({ length: size }, () => rng.normal(mean, stddev));
      },
    };
  },
  /** Glorot (Xavier) uniform: the Dense kernel default. */
  glorotUniform: (args: SeedArgs = {}): Initializer =>
    varianceScaling('GlorotUniform', 1, 'fanAvg', 'uniform', seedOf('glorotUniform', args)),
  /** Glorot (Xavier) truncated normal. */
  glorotNormal: (args: SeedArgs = {}): Initializer =>
    varianceScaling('GlorotNormal', 1, 'fanAvg', 'truncatedNormal', seedOf('glorotNormal', args)),
  /** He uniform, for relu layers. */
  heUniform: (args: SeedArgs = {}): Initializer =>
    varianceScaling('HeUniform', 2, 'fanIn', 'uniform', seedOf('heUniform', args)),
  /** He truncated normal, for relu layers. */
  heNormal: (args: SeedArgs = {}): Initializer =>
    varianceScaling('HeNormal', 2, 'fanIn', 'truncatedNormal', seedOf('heNormal', args)),
  /** LeCun uniform. */
  leCunUniform: (args: SeedArgs = {}): Initializer =>
    varianceScaling('LeCunUniform', 1, 'fanIn', 'uniform', seedOf('leCunUniform', args)),
  /** LeCun truncated normal. */
  leCunNormal: (args: SeedArgs = {}): Initializer =>
    varianceScaling('LeCunNormal', 1, 'fanIn', 'truncatedNormal', seedOf('leCunNormal', args)),
} as const;

/** An initializer name a layer config may use in place of an object. */
export type InitializerName = Exclude<keyof typeof initializers, 'constant'>;
/** A name or an initializer object. */
export type InitializerIdentifier = InitializerName | Initializer;

const NAMES = Object.keys(initializers).filter((n) => n !== 'constant') as InitializerName[];

/** Resolves a name or object to an Initializer; unknown names are coded errors. */
export function getInitializer(name: string, value: unknown, fallback: InitializerName): Initializer {
  if (value === undefined) return initializers[fallback]();
  if (typeof value === 'string') {
    if (!(NAMES as string[]).includes(value)) {
      throw invalidParameter(
        name,
        `one of ${NAMES.map((n) => `'${n}'`).join(', ')}`,
        value,
        'MAAS_ERR_INITIALIZER_UNKNOWN',
      );
    }
    return initializers[value as InitializerName]();
  }
  if (typeof value === 'object' && value !== null && typeof (value as Initializer).init === 'function')
    return value as Initializer;
  throw invalidParameter(
    name,
    'an initializer name or an object from initializers.*',
    value,
    'MAAS_ERR_INITIALIZER_UNKNOWN',
  );
}
