/**
 * Training callbacks with tfjs's hook names, the History fit returns, and earlyStopping.
 */
import { checkFinite, checkInteger, checkOneOf, checkOptions, checkString } from '../core/validation.js';

/** Logs passed to the hooks: loss, metrics and val_ versions, by name. */
export type Logs = Record<string, number>;

/** The hooks fit calls; each may be async (fit awaits it). */
export interface CustomCallbackArgs {
  onTrainBegin?: (logs?: Logs) => void | Promise<void>;
  onTrainEnd?: (logs?: Logs) => void | Promise<void>;
  onEpochBegin?: (epoch: number, logs?: Logs) => void | Promise<void>;
  onEpochEnd?: (epoch: number, logs?: Logs) => void | Promise<void>;
  onBatchBegin?: (batch: number, logs?: Logs) => void | Promise<void>;
  onBatchEnd?: (batch: number, logs?: Logs) => void | Promise<void>;
}

/** A model the callbacks can stop. */
export interface Stoppable {
  stopTraining: boolean;
}

/** A callback with access to the model being trained (set by fit before onTrainBegin). */
export abstract class Callback {
  model: Stoppable | null = null;
  setModel(model: Stoppable): void {
    this.model = model;
  }
}

/** What fit returns: the epochs run and each logged value per epoch (tfjs's History). */
export class History {
  readonly epoch: number[] = [];
  readonly history: Record<string, number[]> = {};

  /** Appends one epoch's logs. */
  record(epoch: number, logs: Logs): void {
    this.epoch.push(epoch);
    for (const [k, v] of Object.entries(logs)) (this.history[k] ??= []).push(v);
  }
}

/** Options of earlyStopping, as in tfjs. */
export interface EarlyStoppingArgs {
  monitor?: string;
  minDelta?: number;
  patience?: number;
  mode?: 'auto' | 'min' | 'max';
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
