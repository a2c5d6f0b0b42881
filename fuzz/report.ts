/**
 * Outcomes, tallies and findings: each case ends in one class; failures are written with the
 * bytes that caused them and the seed and index that replay them; the summary is one table per
 * phase, a row per target and a column per class.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What became of a network case: answered, refused with a coded error, connection closed, or
 * (raw HTTP/2 only) held open waiting for bytes that were never sent. Failures: crash, hang,
 * uncoded (an error without its maas code, or a 500 / INTERNAL / UNKNOWN from maas), grpc-js
 * (an INTERNAL that @grpc/grpc-js sends itself, before any maas code runs, for gRPC framing it
 * cannot read: an invalid grpc-timeout, a message that does not decompress), wrong-output.
 */
export const NETWORK_CLASSES = [
  'answered',
  'refused',
  'closed',
  'held',
  'crash',
  'hang',
  'uncoded',
  'grpc-js',
  'wrong-output',
] as const;
/**
 * The network classes of a run under access control (`--auth valid|none`): besides the above,
 * `denied` (refused for its credentials: HTTP 401, or gRPC UNAUTHENTICATED with its maas code;
 * fine) and `unauth-served` (with `--auth none`: a call outside the open health endpoints
 * served without credentials: a 2xx, a gRPC OK or a response message; a failure).
 */
export const AUTH_NETWORK_CLASSES = [
  ...NETWORK_CLASSES.slice(0, 2),
  'denied',
  ...NETWORK_CLASSES.slice(2),
  'unauth-served',
] as const;
/**
 * What became of a file mutant: refused with a coded error, caught (openModelFile's safety net
 * made a coded error of one a reader did not foresee: listed in the findings, not failed),
 * identical outputs. Failures: crash, hang, uncoded, wrong-digest (other outputs though a digest
 * covers the changed file); wrong-no-digest (the same without a digest) is reported, not failed.
 */
export const FILE_CLASSES = [
  'refused',
  'caught',
  'identical',
  'crash',
  'hang',
  'uncoded',
  'wrong-digest',
  'wrong-no-digest',
] as const;

export type NetworkClass = (typeof AUTH_NETWORK_CLASSES)[number];
export type FileClass = (typeof FILE_CLASSES)[number];

/** The classes that fail a run (and the CI test). */
export const FAILING: ReadonlySet<string> = new Set([
  'crash',
  'hang',
  'uncoded',
  'grpc-js',
  'wrong-output',
  'wrong-digest',
  'unauth-served',
]);

/** One case's verdict. */
export interface Verdict<C extends string> {
  class: C;
  /** Why, for a failure (the status, the message, the signal). */
  detail?: string;
}

/** A failing case, as written to the findings directory. */
export interface Finding {
  phase: 'network' | 'files';
  index: number;
  target: string;
  class: string;
  description: string;
  detail: string;
  /** The saved bytes (the request, or the mutated file), relative to the findings directory. */
  file: string;
}

/** Text with control characters and surrogates escaped, for a log line or findings.json. */
export function printable(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    /[\u0000-\u001f\u007f-\u009f\ud800-\udfff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Counts per target and class, for the summary table. */
export class Tally<C extends string> {
  private readonly counts = new Map<string, Map<C, number>>();

  constructor(private readonly classes: readonly C[]) {}

  add(target: string, cls: C): void {
    const row = this.counts.get(target) ?? new Map<C, number>();
    row.set(cls, (row.get(cls) ?? 0) + 1);
    this.counts.set(target, row);
  }

  /** Cases of `cls` over every target (or one). */
  count(cls: C, target?: string): number {
    if (target !== undefined) return this.counts.get(target)?.get(cls) ?? 0;
    let n = 0;
    for (const row of this.counts.values()) n += row.get(cls) ?? 0;
    return n;
  }

  /** Every case counted. */
  get total(): number {
    return this.classes.reduce((n, c) => n + this.count(c), 0);
  }

  /** Failing cases (crash, hang, uncoded, grpc-js, wrong output, wrong load under a digest, unauthenticated call served). */
  get failures(): number {
    return this.classes.filter((c) => FAILING.has(c)).reduce((n, c) => n + this.count(c), 0);
  }

  /** The table: a row per target and a total, a column per class. */
  table(): string {
    const targets = [...this.counts.keys()].sort();
    const header = ['target', 'cases', ...this.classes];
    const rows = targets.map((t) => [
      t,
      String(this.classes.reduce((n, c) => n + this.count(c, t), 0)),
      ...this.classes.map((c) => String(this.count(c, t))),
    ]);
    rows.push(['total', String(this.total), ...this.classes.map((c) => String(this.count(c)))]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) =>
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
  }

  /** Plain counts, for a JSON summary. */
  toJSON(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [target, row] of this.counts) out[target] = Object.fromEntries(row);
    return out;
  }
}

/** Writes findings (and their bytes) under `dir`, a directory per seed. */
export class FindingsWriter {
  readonly findings: Finding[] = [];

  constructor(private readonly dir: string) {}

  async add(finding: Omit<Finding, 'file'>, bytes: Buffer | Map<string, Buffer>): Promise<void> {
    const name = `${finding.phase}-${finding.index}-${finding.target}`;
    await mkdir(this.dir, { recursive: true });
    let file: string;
    if (bytes instanceof Map) {
      file = name;
      await mkdir(join(this.dir, name), { recursive: true });
      for (const [entry, data] of bytes) await writeFile(join(this.dir, name, entry), data);
    } else {
      file = `${name}.bin`;
      await writeFile(join(this.dir, file), bytes);
    }
    this.findings.push({
      ...finding,
      description: printable(finding.description),
      detail: printable(finding.detail),
      file,
    });
  }

  /** findings.json: every finding, with how to replay it. */
  async close(summary: object): Promise<void> {
    if (this.findings.length === 0) return;
    await writeFile(join(this.dir, 'findings.json'), JSON.stringify({ ...summary, findings: this.findings }, null, 2));
  }
}
