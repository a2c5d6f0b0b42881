/**
 * A byte-level CSV scanner for data read in a stream: records are found in the received bytes
 * and each field is kept as a start and an end, so a numeric cell is read as a number straight
 * from the bytes and only categories and text become strings. csv-parse, which readCsv uses,
 * makes a string of every field: 28 MB/s on a numeric table, where this scanner reads several
 * times that, which decides whether training from a file keeps up with the native step.
 *
 * It reads what readCsv reads (csv-parse with the settings in csv.ts): RFC 4180 quoting ("" is a
 * quote inside a quoted field, quoted fields may hold delimiters and line breaks), spaces and tabs
 * around fields trimmed, '#' outside quotes ending the line's content (a line of only a comment,
 * or only blanks, is skipped), \n, \r\n or \r between records, and a UTF-8 byte-order mark. A quote
 * inside an unquoted field, text after a closing quote and an unclosed quote are errors, as there.
 * test/unit/csv-scan.test.ts checks it against csv-parse on generated files.
 */
import { MaasError } from '../core/errors.js';

const QUOTE = 0x22;
const HASH = 0x23;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const FORM_FEED = 0x0c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** The longest record the scanner holds while waiting for its end (a quote never closed would grow for ever). */
export const MAX_RECORD_BYTES = 16 * 2 ** 20;

/** Fields up to this many bytes are looked up among recent texts before being decoded. */
const SHORT_TEXT = 24;
/** Recent texts kept (a column of IDs would otherwise grow the table for ever). */
const MAX_KNOWN_TEXTS = 4096;

/** Powers of ten exactly representable as doubles: a product or quotient with one is correctly rounded. */
const POW10 = Float64Array.from({ length: 23 }, (_, i) => 10 ** i);

/** Buffer's own decoder without toString's argument checks (fields are read by the million). */
const utf8Slice: (this: Buffer, start: number, end: number) => string =
  (Buffer.prototype as unknown as { utf8Slice?: (this: Buffer, start: number, end: number) => string }).utf8Slice ??
  function (this: Buffer, start: number, end: number) {
    return this.toString('utf8', start, end);
  };

const isBlank = (c: number): boolean => c === SPACE || c === TAB || c === FORM_FEED;

/** Field kinds in the flags array. */
const PLAIN = 0;
const QUOTED = 1;
/** Quoted, with "" inside: the text needs unescaping. */
const ESCAPED = 2;

/**
 * Scans pushed chunks of CSV bytes and calls `onRecord` for each record, during which `count`,
 * `text(i)` and `number(i)` read its fields. Lines are counted for error messages.
 */
export class CsvScanner {
  /** Fields in the current record. */
  count = 0;
  /** The line the current record starts on (1-based). */
  line = 0;
  private buf: Buffer = Buffer.alloc(0);
  private starts = new Int32Array(64);
  private ends = new Int32Array(64);
  private flags = new Uint8Array(64);
  private carry: Buffer | null = null;
  private first = true;
  /** 1 for the bytes that end or break an unquoted field: the delimiter, line breaks, '#' and '"'. */
  private readonly special = new Uint8Array(256);
  /** Recent text fields by a hash of their bytes, so a repeated category is not decoded again. */
  private readonly texts = new Map<number, { bytes: Buffer; text: string }>();
  private lines = 1;
  private fast: ((data: Buffer, start: number, end: number) => number) | null = null;

  constructor(
    private readonly delimiter: number,
    private readonly onRecord: (scanner: CsvScanner) => void,
  ) {
    if (delimiter === QUOTE || delimiter === LF || delimiter === CR || delimiter === HASH || isBlank(delimiter))
      throw new MaasError(
        'MAAS_ERR_ARG_RANGE',
        `A CSV delimiter cannot be ${JSON.stringify(String.fromCharCode(delimiter))}`,
      );
    for (const c of [delimiter, LF, CR, HASH, QUOTE]) this.special[c] = 1;
  }

  /**
   * A fast path asked before each record is scanned: it reads whole records of data[start, end)
   * by itself, each one line, counts them with countLines, and returns where it stopped (start when
   * it leaves the next record to this scanner, which then reads that one record, as ever).
   */
  setFastPath(fast: ((data: Buffer, start: number, end: number) => number) | null): void {
    this.fast = fast;
  }

  /** Lines a fast path read, so the line numbers of later records stay right. */
  countLines(lines: number): void {
    this.lines += lines;
  }

  /** Scans a chunk; a record cut at the chunk's end waits for the next one. */
  push(chunk: Buffer): void {
    let data: Buffer;
    if (this.first) {
      const head = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
      if (head.length < 3) {
        // Too short to tell whether a byte-order mark starts the input.
        this.carry = Buffer.from(head);
        return;
      }
      this.first = false;
      data = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? head.subarray(3) : head;
    } else data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = null;
    const rest = this.scan(data, false);
    if (rest < data.length) {
      if (data.length - rest > MAX_RECORD_BYTES)
        throw new MaasError(
          'MAAS_ERR_DATA_FORMAT',
          `Cannot parse CSV: the record at line ${this.lines} is longer than ${MAX_RECORD_BYTES} bytes (a quote that never closes?)`,
        );
      this.carry = Buffer.from(data.subarray(rest));
    }
  }

  /** Scans what is left at the end of the input. */
  end(): void {
    let data = this.carry ?? Buffer.alloc(0);
    this.carry = null;
    if (this.first && data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
    this.first = false;
    this.scan(data, true);
  }

  /** Field i as text (quotes removed, "" read as "). */
  text(i: number): string {
    const s = this.starts[i]!;
    const e = this.ends[i]!;
    if (this.flags[i] === ESCAPED) return utf8Slice.call(this.buf, s, e).replaceAll('""', '"');
    if (e - s > SHORT_TEXT) return utf8Slice.call(this.buf, s, e);
    // Short fields repeat (categories, labels): look the bytes up before decoding them.
    const buf = this.buf;
    let hash = 0x811c9dc5 ^ (e - s);
    for (let k = s; k < e; k++) hash = Math.imul(hash ^ buf[k]!, 0x01000193);
    const known = this.texts.get(hash);
    if (known !== undefined && known.bytes.length === e - s) {
      let same = true;
      for (let k = 0; k < e - s; k++)
        if (known.bytes[k] !== buf[s + k]) {
          same = false;
          break;
        }
      if (same) return known.text;
    }
    const text = utf8Slice.call(buf, s, e);
    if (this.texts.size >= MAX_KNOWN_TEXTS) this.texts.clear();
    this.texts.set(hash, { bytes: Buffer.from(buf.subarray(s, e)), text });
    return text;
  }

  /**
   * Field i as a number when it is a plain decimal (sign, up to 15 digits, a point, an exponent),
   * exactly as Number() reads it; undefined for anything else, which the caller reads as text.
   */
  number(i: number): number | undefined {
    if (this.flags[i] === ESCAPED) return undefined;
    const buf = this.buf;
    const e = this.ends[i]!;
    let p = this.starts[i]!;
    let negative = false;
    if (p < e && (buf[p] === MINUS || buf[p] === PLUS)) negative = buf[p++] === MINUS;
    let mantissa = 0;
    let digits = 0;
    let scale = 0;
    while (p < e && buf[p]! >= ZERO && buf[p]! <= NINE) {
      mantissa = mantissa * 10 + (buf[p++]! - ZERO);
      digits++;
    }
    if (p < e && buf[p] === DOT) {
      p++;
      while (p < e && buf[p]! >= ZERO && buf[p]! <= NINE) {
        mantissa = mantissa * 10 + (buf[p++]! - ZERO);
        digits++;
        scale--;
      }
    }
    if (digits === 0 || digits > 15) return undefined;
    if (p < e && (buf[p] === 0x65 || buf[p] === 0x45)) {
      p++;
      let expNegative = false;
      if (p < e && (buf[p] === MINUS || buf[p] === PLUS)) expNegative = buf[p++] === MINUS;
      let exponent = 0;
      let expDigits = 0;
      while (p < e && buf[p]! >= ZERO && buf[p]! <= NINE && expDigits < 4) {
        exponent = exponent * 10 + (buf[p++]! - ZERO);
        expDigits++;
      }
      if (expDigits === 0) return undefined;
      scale += expNegative ? -exponent : exponent;
    }
    if (p !== e || scale > 22 || scale < -22) return undefined;
    const value = scale >= 0 ? mantissa * POW10[scale]! : mantissa / POW10[-scale]!;
    return negative ? -value : value;
  }

  private failure(what: string): MaasError {
    return new MaasError('MAAS_ERR_DATA_FORMAT', `Cannot parse CSV: ${what} at line ${this.lines}`);
  }

  private addField(start: number, end: number, flag: number): void {
    if (this.count === this.starts.length) {
      const grow = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.starts = grow(this.starts, (n) => new Int32Array(n));
      this.ends = grow(this.ends, (n) => new Int32Array(n));
      this.flags = grow(this.flags, (n) => new Uint8Array(n));
    }
    this.starts[this.count] = start;
    this.ends[this.count] = end;
    this.flags[this.count++] = flag;
  }

  /** Scans whole records from data; returns where the unfinished one starts (data.length when none). */
  private scan(data: Buffer, final: boolean): number {
    this.buf = data;
    const end = data.length;
    const delimiter = this.delimiter;
    let p = 0;
    records: while (p < end) {
      if (this.fast !== null) {
        p = this.fast(data, p, end);
        if (p >= end) break;
      }
      const recordStart = p;
      const lineAtStart = this.lines;
      this.count = 0;
      let quotedAny = false;
      let stop: number; // the byte that ended the record's last field: LF, CR, HASH or -1 (end of input)
      for (;;) {
        while (p < end && isBlank(data[p]!)) p++;
        if (p < end && data[p] === QUOTE) {
          quotedAny = true;
          const s = p + 1;
          let q = s;
          let flag = QUOTED;
          let close: number;
          for (;;) {
            close = data.indexOf(QUOTE, q);
            if (close < 0 || (close + 1 === end && !final)) {
              if (!final) return this.cut(recordStart, lineAtStart);
              throw this.failure('a quoted field is not closed');
            }
            if (data[close + 1] === QUOTE) {
              flag = ESCAPED;
              q = close + 2;
              continue;
            }
            break;
          }
          for (let k = s; k < close; k++) if (data[k] === LF || (data[k] === CR && data[k + 1] !== LF)) this.lines++;
          p = close + 1;
          while (p < end && isBlank(data[p]!)) p++;
          this.addField(s, close, flag);
          if (p >= end) {
            if (!final) return this.cut(recordStart, lineAtStart);
            stop = -1;
            break;
          }
          const c = data[p]!;
          if (c === delimiter) {
            p++;
            continue;
          }
          if (c === LF || c === CR || c === HASH) {
            stop = c;
            break;
          }
          throw this.failure(`text after a closing quote (${JSON.stringify(String.fromCharCode(c))})`);
        }
        const s = p;
        const special = this.special;
        while (p < end && special[data[p]!] === 0) p++;
        if (p < end && data[p] === QUOTE) throw this.failure('a quote inside an unquoted field');
        if (p >= end && !final) return this.cut(recordStart, lineAtStart);
        let e = p;
        while (e > s && isBlank(data[e - 1]!)) e--;
        this.addField(s, e, PLAIN);
        if (p >= end) {
          stop = -1;
          break;
        }
        if (data[p] === delimiter) {
          p++;
          continue;
        }
        stop = data[p]!;
        break;
      }
      if (stop === HASH) {
        while (p < end && data[p] !== LF && data[p] !== CR) p++;
        if (p >= end && !final) return this.cut(recordStart, lineAtStart);
        stop = p < end ? data[p]! : -1;
      }
      if (stop === CR) {
        if (p + 1 >= end && !final) return this.cut(recordStart, lineAtStart);
        p += data[p + 1] === LF ? 2 : 1;
      } else if (stop === LF) p++;
      this.line = lineAtStart;
      this.lines++;
      // An empty line (or one of blanks, or only a comment) is no record.
      if (this.count === 1 && !quotedAny && this.starts[0] === this.ends[0]) continue records;
      this.onRecord(this);
    }
    return end;
  }

  /** Leaves the unfinished record for the next chunk, with the line count it started at. */
  private cut(recordStart: number, lineAtStart: number): number {
    this.lines = lineAtStart;
    return recordStart;
  }
}

/** A delimiter as the byte the scanner takes: one ASCII character, or a coded error. */
export function delimiterCode(delimiter: unknown): number {
  if (typeof delimiter !== 'string' || delimiter.length !== 1 || delimiter.charCodeAt(0) > 0x7f)
    throw new MaasError(
      'MAAS_ERR_ARG_RANGE',
      `Expected a one-character ASCII delimiter but received ${JSON.stringify(delimiter)}`,
    );
  return delimiter.charCodeAt(0);
}

/** Runs a scanner over a stream of chunks, calling onRecord for each record. */
export async function scanCsv(
  input: AsyncIterable<Buffer | string>,
  delimiter: string,
  onRecord: (scanner: CsvScanner) => void,
): Promise<void> {
  const scanner = new CsvScanner(delimiterCode(delimiter), onRecord);
  for await (const chunk of input) scanner.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  scanner.end();
}
