/**
 * Data warnings: what preparation noticed and decided without failing (a column left out, cells
 * it could not read, a constant column). Each is returned in a report and, unless the caller takes
 * them itself, emitted as a process warning, so nothing is decided silently.
 */

/** What a data warning is about. */
export type DataWarningCode =
  /** A free-text or ID-like column: left out of the features unless hashed or typed as a category. */
  | 'MAAS_WARN_TEXT_COLUMN'
  /** A numeric column with a few cells that are not numbers: they are treated as missing. */
  | 'MAAS_WARN_UNPARSED_CELLS'
  /** A column with one value in every row: it carries nothing and is left out. */
  | 'MAAS_WARN_CONSTANT_COLUMN'
  /** A categorical column one-hot encoded into many columns. */
  | 'MAAS_WARN_MANY_CATEGORIES'
  /** Rows without a label were left out of training. */
  | 'MAAS_WARN_MISSING_LABELS'
  /** Records at prediction lacked columns, filled by the saved policy (allowMissing). */
  | 'MAAS_WARN_FILLED_COLUMNS';

/** One thing preparation noticed. */
export interface DataWarning {
  code: DataWarningCode;
  /** The column it is about, when it is about one. */
  column?: string;
  message: string;
}

/** Where warnings go: a function that takes each, or 'emit' (process warnings, the default), or 'ignore'. */
export type WarningSink = 'emit' | 'ignore' | ((warning: DataWarning) => void);

/** Hands a warning to its sink. */
export function warn(sink: WarningSink | undefined, warning: DataWarning): void {
  if (sink === 'ignore') return;
  if (typeof sink === 'function') return sink(warning);
  process.emitWarning(warning.message, { type: 'MaasDataWarning', code: warning.code });
}
