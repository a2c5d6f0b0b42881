/**
 * The byte-level CSV scanner against csv-parse (which readCsv uses, with the same settings) on
 * generated files: quoting, escaped quotes, delimiters and line breaks inside quotes, blanks
 * around fields, comments, empty lines, CRLF and CR, a byte-order mark, non-ASCII text, and every
 * file cut into chunks at random places; numbers read from the bytes exactly as Number() reads
 * them; malformed quoting refused by both.
 */
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { csvSettings } from '../../src/data/csv.js';
import { CsvScanner, MAX_RECORD_BYTES } from '../../src/data/csv-scan.js';
import { MaasError } from '../../src/index.js';
import { rng } from '../helpers.js';
import type { Random } from '../../src/core/random.js';

/** readCsv's own csv-parse settings: the scanner must read what readCsv reads. */
const SETTINGS = csvSettings(',');

/** Scans `text` pushed in chunks cut at `cuts`; returns every record's fields as text. */
function scan(bytes: Buffer, cuts: number[], delimiter = ','): string[][] {
  const records: string[][] = [];
  const scanner = new CsvScanner(delimiter.charCodeAt(0), (s) =>
    records.push(Array.from({ length: s.count }, (_, i) => s.text(i))),
  );
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    scanner.push(bytes.subarray(at, cut));
    at = cut;
  }
  scanner.end();
  return records;
}

function randomCuts(r: Random, length: number): number[] {
  const n = Math.floor(r.next() * 6);
  return Array.from({ length: n }, () => Math.floor(r.next() * length)).sort((a, b) => a - b);
}

const WORDS = ['a', 'north', 'São Paulo', 'x y', '12', '-3.5e2', 'na', '', 'ü€'];

/** A random field as the file spells it (possibly quoted, with blanks around). */
function field(r: Random): string {
  const pick = r.next();
  let value: string;
  if (pick < 0.3) value = (r.normal() * 1000).toFixed(Math.floor(r.next() * 5));
  else if (pick < 0.6) value = WORDS[Math.floor(r.next() * WORDS.length)]!;
  else
    value = Array.from({ length: 1 + Math.floor(r.next() * 6) }, () => 'ab,"\n\r c'[Math.floor(r.next() * 9)]).join('');
  const needsQuotes = /[",\n\r#]/.test(value) || /^\s|\s$/.test(value);
  const quoted = needsQuotes || r.next() < 0.1 ? `"${value.replaceAll('"', '""')}"` : value;
  const pad = () => (r.next() < 0.15 ? ' \t'[Math.floor(r.next() * 2)]! : '');
  return `${pad()}${quoted}${pad()}`;
}

/** A random CSV file: a header, rows of fields, with empty lines, comment lines and trailing comments. */
function file(r: Random): string {
  const eol = ['\n', '\r\n', '\r'][Math.floor(r.next() * 3)]!;
  const columns = 1 + Math.floor(r.next() * 5);
  const lines = [Array.from({ length: columns }, (_, i) => `c${i}`).join(',')];
  const rows = Math.floor(r.next() * 12);
  for (let i = 0; i < rows; i++) {
    const roll = r.next();
    if (roll < 0.05) lines.push('');
    else if (roll < 0.1) lines.push('# a comment, with "quotes"');
    else {
      const line = Array.from({ length: columns }, () => field(r)).join(',');
      lines.push(roll < 0.15 ? `${line} # trailing` : line);
    }
  }
  const text = lines.join(eol) + (r.next() < 0.5 ? eol : '');
  return r.next() < 0.1 ? `\ufeff${text}` : text;
}

describe('CsvScanner', () => {
  it('reads 2 000 generated files as csv-parse does, cut into chunks anywhere', () => {
    const r = rng(71);
    for (let n = 0; n < 2000; n++) {
      const text = file(r);
      const bytes = Buffer.from(text, 'utf8');
      const expected: string[][] = parse(text, SETTINGS);
      expect(scan(bytes, randomCuts(r, bytes.length)), JSON.stringify(text)).toEqual(expected);
    }
  });

  it('reads numbers from the bytes exactly as Number() does, and leaves the rest to the text', () => {
    const r = rng(72);
    const cells = [
      '0',
      '-0',
      '+5',
      '1.',
      '.5',
      '1e5',
      '1E+05',
      '2.5e-3',
      '00012',
      '123456789012345',
      '1234567890123456',
      '0x10',
      '1e400',
      '1_000',
      '.',
      '-',
      'e5',
      '1e',
      '9007199254740993',
      ...Array.from({ length: 3000 }, () => {
        const v = r.normal() * 10 ** Math.floor(r.next() * 30 - 15);
        return r.next() < 0.5 ? v.toFixed(Math.floor(r.next() * 8)) : v.toExponential(Math.floor(r.next() * 14));
      }),
    ];
    const scanner = new CsvScanner(0x2c, (s) => {
      for (let i = 0; i < s.count; i++) {
        const text = s.text(i);
        const fast = s.number(i);
        if (fast !== undefined) expect(Object.is(fast, Number(text)), text).toBe(true);
      }
    });
    scanner.push(Buffer.from(`${cells.join(',')}\n`));
    scanner.end();
    let fastOnes = 0;
    const counter = new CsvScanner(0x2c, (s) => {
      for (let i = 0; i < s.count; i++) if (s.number(i) !== undefined) fastOnes++;
    });
    counter.push(Buffer.from(cells.join(',')));
    counter.end();
    // Most decimals take the fast path; the oddities fall back to text.
    expect(fastOnes).toBeGreaterThan(2500);
  });

  it('refuses malformed quoting as csv-parse does, with the line', () => {
    for (const text of ['a,b\n1,x"y"\n', 'a,b\n"1"x,2\n', 'a,b\n1,"never closed\n']) {
      expect(() => parse(text, SETTINGS)).toThrow();
      let error: unknown;
      try {
        scan(Buffer.from(text), []);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MaasError);
      expect((error as MaasError).code).toBe('MAAS_ERR_DATA_FORMAT');
      expect((error as MaasError).message).toMatch(/at line 2/);
    }
  });

  it('refuses a record that grows past the limit instead of holding it', () => {
    const scanner = new CsvScanner(0x2c, () => undefined);
    scanner.push(Buffer.from('a\n"'));
    const chunk = Buffer.alloc(2 ** 20, 0x61);
    let error: unknown;
    try {
      for (let i = 0; i <= MAX_RECORD_BYTES / chunk.length + 1; i++) scanner.push(chunk);
    } catch (e) {
      error = e;
    }
    expect((error as MaasError).code).toBe('MAAS_ERR_DATA_FORMAT');
    expect((error as MaasError).message).toMatch(/longer than/);
  });

  it('refuses delimiters it cannot tell from the syntax', () => {
    for (const d of ['"', '\n', '#', ' '])
      expect(() => new CsvScanner(d.charCodeAt(0), () => undefined)).toThrow(MaasError);
  });
});
