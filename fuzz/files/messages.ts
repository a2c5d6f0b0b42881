/** The messages between the file phase and its loader children. */

/** Load `path` and run `rows` rows of `input` (the original model's widths) through it. */
export interface LoadJob {
  path: string;
  input: Float32Array;
  rows: number;
  inputSize: number;
  outputSize: number;
}

/** A child's answer: the file's outputs, or how it was refused. */
export type LoadReply =
  | { kind: 'loaded'; inputSize: number; outputSize: number; output: Float32Array }
  | { kind: 'refused-at-warmup' }
  | {
      kind: 'refused';
      coded: boolean;
      code: string | null;
      name: string;
      message: string;
      /** The engine error a coded error wraps, when a reader did not foresee what it met. */
      unforeseen: string | null;
    };

/** What became of a job in the pool: the child's reply, or its death or silence. */
export type JobOutcome = LoadReply | { kind: 'crash'; detail: string } | { kind: 'hang' };
