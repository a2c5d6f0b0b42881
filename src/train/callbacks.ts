/**
 * Training callbacks with tfjs's hook names, the History fit returns, and earlyStopping.
 */
import { checkFinite, checkInteger, checkOneOf, checkOptions, checkString } from '../core/validation.js';

/** Logs passed to the hooks: loss, metrics and val_ versions, by name. */
export type Logs = Record<string, number>;

/** The hooks fit calls; each may be async (fit awaits it). */
export interface CustomCallbackArgs {
  /** Before the first epoch. */
  onTrainBegin?: (logs?: Logs) => void | Promise<void>;
  /** After the last epoch, with its logs. */
  onTrainEnd?: (logs?: Logs) => void | Promise<void>;
  /** Before each epoch. */
  onEpochBegin?: (epoch: number, logs?: Logs) => void | Promise<void>;
  /** After each epoch, with its loss, metrics and val_ values. */
  onEpochEnd?: (epoch: number, logs?: Logs) => void | Promise<void>;
  /** Before each training step. */
  onBatchBegin?: (batch: number, logs?: Logs) => void | Promise<void>;
  /** After each training step, with its loss. */
  onBatchEnd?: (batch: number, logs?: Logs) => void | Promise<void>;
}

/** A model the callbacks can stop. */
export interface Stoppable {
  /** Set to true to end training after the current epoch. */
  stopTraining: boolean;
}

/** A callback with access to the model being trained (set by fit before onTrainBegin). */
export abstract class Callback {
  /** The model being trained; null outside fit. */
  model: Stoppable | null = null;
  /** Called by fit with the model it trains. */
  setModel(model: Stoppable): void {
    this.model = model;
  }
}

/** What fit returns: the epochs run and each logged value per epoch (tfjs's History). */
export class History {
  /** The epoch numbers run. */
  readonly epoch: number[] = [];
  /** Each logged value (loss, metrics, val_ values) per epoch, by name. */
  readonly history: Record<string, number[]> = {};

  /** Appends one epoch's logs. */
  record(epoch: number, logs: Logs): void {
    this.epoch.push(epoch);
    for (const [k, v] of Object.entries(logs)) (this.history[k] ??= []).push(v);
  }
}

/** Options of earlyStopping, as in tfjs. */
export interface EarlyStoppingArgs {
  /** The logged value to watch (default 'val_loss'). */
  monitor?: string;
  /** The smallest change that counts as an improvement (default 0). */
  minDelta?: number;
  /** Epochs without improvement before stopping (default 0). */
  patience?: number;
  /** Whether lower or higher is better; 'auto' decides from the name (accuracy-like: higher). */
  mode?: 'auto' | 'min' | 'max';
  /** A value the monitored one must improve on from the start. */
  baseline?: number;
}

/** Stops training when `monitor` has not improved by minDelta for `patience` epochs. */
export class EarlyStopping extends Callback {
  readonly monitor: string;
  readonly minDelta: number;
  readonly patience: number;
  private readonly better: (a: number, b: number) => boolean;
  private best = Number.NaN;
  private wait = 0;
  /** The epoch at which training was stopped, or 0. */
  stoppedEpoch = 0;

  constructor(args: EarlyStoppingArgs = {}) {
    super();
    const o = checkOptions('earlyStopping', args, ['monitor', 'minDelta', 'patience', 'mode', 'baseline']);
    this.monitor = o.monitor === undefined ? 'val_loss' : checkString('earlyStopping.monitor', o.monitor);
    this.minDelta = Math.abs(o.minDelta === undefined ? 0 : checkFinite('earlyStopping.minDelta', o.minDelta));
    this.patience = o.patience === undefined ? 0 : checkInteger('earlyStopping.patience', o.patience, 0);
    const mode =
      o.mode === undefined ? 'auto' : checkOneOf('earlyStopping.mode', o.mode, ['auto', 'min', 'max'] as const);
    const maximize = mode === 'max' || (mode === 'auto' && /acc|auc|precision|recall/.test(this.monitor));
    this.better = maximize ? (a, b) => a - this.minDelta > b : (a, b) => a + this.minDelta < b;
    if (o.baseline !== undefined) this.best = checkFinite('earlyStopping.baseline', o.baseline);
  }

  onTrainBegin(): void {
    this.wait = 0;
    this.stoppedEpoch = 0;
  }

  onEpochEnd(epoch: number, logs?: Logs): void {
    const value = logs?.[this.monitor];
    if (value === undefined) return; // tfjs warns and carries on; so do we
    if (Number.isNaN(this.best) || this.better(value, this.best)) {
      this.best = value;
      this.wait = 0;
    } else if (++this.wait >= this.patience && this.model) {
      this.stoppedEpoch = epoch;
      this.model.stopTraining = true;
    }
  }
}

/** Creates an EarlyStopping callback (tfjs: tf.callbacks.earlyStopping). */
export function earlyStopping(args?: EarlyStoppingArgs): EarlyStopping {
  return new EarlyStopping(args);
}
