/**
 * Reading what the server sent on a raw HTTP/2 connection: its frames, and its header blocks
 * through a small HPACK decoder (RFC 7541: the static and dynamic tables, Huffman strings), so
 * that a raw case is judged by the gRPC status and messages the server really answered with.
 * Only the server's own bytes are decoded here; after a header block that does not decode (the
 * dynamic table is then unknown) later blocks are left undecoded and the reading says why, but
 * its frames (DATA bytes, END_STREAM, RST_STREAM, GOAWAY) are still read to the end.
 */

/** RFC 7541 Appendix A: the static table (index 1 …). */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/**
 * RFC 7541 Appendix B: the Huffman code's length in bits for symbols 0 … 256 (EOS), one letter
 * each ('A' = 5 bits … '^' = 30). The code is canonical (codes of one length are consecutive, in
 * symbol order, after every shorter code), so the lengths alone define it.
 */
const HUFFMAN_LENGTHS =
  'ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ';

const EOS = 256;

/** The canonical code: per length, the first code, how many codes, and where its symbols start in `symbols`. */
const HUFFMAN = (() => {
  const lengths = Array.from(HUFFMAN_LENGTHS, (c) => c.charCodeAt(0) - 'A'.charCodeAt(0) + 5);
  const symbols = lengths.map((_, s) => s).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const first = new Array<number>(31).fill(0);
  const count = new Array<number>(31).fill(0);
  const offset = new Array<number>(31).fill(0);
  for (const s of symbols) count[lengths[s]!]!++;
  let code = 0;
  let at = 0;
  for (let length = 1; length <= 30; length++) {
    first[length] = code;
    offset[length] = at;
    code = (code + count[length]!) * 2;
    at += count[length]!;
  }
  return { symbols, first, count, offset };
})();

/** Huffman-decodes a string literal (RFC 7541 §5.2); throws on EOS or an over-long code. */
export function huffmanDecode(bytes: Buffer): Buffer {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      const index = code - HUFFMAN.first[length]!;
      if (index >= 0 && index < HUFFMAN.count[length]!) {
        const symbol = HUFFMAN.symbols[HUFFMAN.offset[length]! + index]!;
        if (symbol === EOS) throw new Error('Huffman string holds EOS');
        out.push(symbol);
        code = 0;
        length = 0;
      } else if (length >= 30) throw new Error('Huffman code past 30 bits');
    }
  }
  // What is left is padding: fewer than 8 bits, all ones (the EOS prefix).
  if (length >= 8 || code !== 2 ** length - 1) throw new Error('Huffman string badly padded');
  return Buffer.from(out);
}

/** A decoder of one connection's header blocks, in order (the dynamic table spans the connection). */
export class HpackDecoder {
  private readonly dynamic: [string, string][] = [];
  private size = 0;

  constructor(private maxSize = 4096) {}

  /** The header fields of one whole block, in order; throws on anything that does not decode. */
  decode(block: Buffer): [string, string][] {
    const fields: [string, string][] = [];
    const reader = { at: 0 };
    while (reader.at < block.length) {
      const first = block[reader.at]!;
      if (first & 0x80) {
        fields.push(this.entry(integer(block, reader, 7)));
      } else if (first & 0x40) {
        const field = this.literal(block, reader, 6);
        this.insert(field);
        fields.push(field);
      } else if (first & 0x20) {
        this.maxSize = integer(block, reader, 5);
        this.evict();
      } else {
        fields.push(this.literal(block, reader, 4)); // without indexing (0000) or never indexed (0001)
      }
    }
    return fields;
  }

  private literal(block: Buffer, reader: { at: number }, prefix: number): [string, string] {
    const index = integer(block, reader, prefix);
    const name = index === 0 ? string(block, reader) : this.entry(index)[0];
    return [name, string(block, reader)];
  }

  private entry(index: number): [string, string] {
    if (index >= 1 && index <= STATIC_TABLE.length) return [...STATIC_TABLE[index - 1]!];
    const entry = this.dynamic[index - STATIC_TABLE.length - 1];
    if (!entry) throw new Error(`HPACK index ${index} past the tables`);
    return [...entry];
  }

  private insert(field: [string, string]): void {
    this.dynamic.unshift(field);
    this.size += entrySize(field);
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize && this.dynamic.length > 0) this.size -= entrySize(this.dynamic.pop()!);
  }
}

function entrySize([name, value]: [string, string]): number {
  return Buffer.byteLength(name, 'latin1') + Buffer.byteLength(value, 'latin1') + 32;
}

/** An HPACK integer with an `prefix`-bit prefix (RFC 7541 §5.1). */
function integer(block: Buffer, reader: { at: number }, prefix: number): number {
  if (reader.at >= block.length) throw new Error('HPACK integer past the block');
  const max = (1 << prefix) - 1;
  let value = block[reader.at++]! & max;
  if (value < max) return value;
  for (let shift = 0; ; shift += 7) {
    if (reader.at >= block.length || shift > 28) throw new Error('HPACK integer unterminated or too large');
    const byte = block[reader.at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
}

/** An HPACK string literal (RFC 7541 §5.2), as latin1 text. */
function string(block: Buffer, reader: { at: number }): string {
  if (reader.at >= block.length) throw new Error('HPACK string past the block');
  const huffman = (block[reader.at]! & 0x80) !== 0;
  const length = integer(block, reader, 7);
  if (reader.at + length > block.length) throw new Error('HPACK string past the block');
  const bytes = block.subarray(reader.at, reader.at + length);
  reader.at += length;
  return (huffman ? huffmanDecode(bytes) : bytes).toString('latin1');
}

/** What the server sent on one stream. */
export interface H2StreamAnswer {
  /** Every header field of every block on the stream (response headers, then trailers), by name. */
  headers: Record<string, string>;
  /** DATA payload bytes (padding excluded). */
  dataBytes: number;
  /** The server ended the stream (END_STREAM). */
  ended: boolean;
  /** The server reset the stream. */
  reset: boolean;
}

/** The server's side of a raw HTTP/2 connection, read frame by frame. */
export interface H2Answers {
  streams: Map<number, H2StreamAnswer>;
  goaway: boolean;
  /** Why header blocks stopped being decoded (one did not decode; the frames are still read). */
  error?: string;
}

const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const GOAWAY = 7;
const CONTINUATION = 9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

/** Reads the server's frames (a frame cut short at the end is left out) and decodes its header blocks. */
export function readH2Answers(received: Buffer): H2Answers {
  const decoder = new HpackDecoder();
  const streams = new Map<number, H2StreamAnswer>();
  const answers: H2Answers = { streams, goaway: false };
  const streamOf = (id: number) => {
    let stream = streams.get(id);
    if (!stream) streams.set(id, (stream = { headers: {}, dataBytes: 0, ended: false, reset: false }));
    return stream;
  };
  let block: { stream: number; parts: Buffer[]; endStream: boolean } | null = null;
  let at = 0;
  while (at + 9 <= received.length) {
    const length = received.readUIntBE(at, 3);
    const type = received[at + 3]!;
    const flags = received[at + 4]!;
    const id = received.readUInt32BE(at + 5) & 0x7fffffff;
    if (at + 9 + length > received.length) break;
    let payload = received.subarray(at + 9, at + 9 + length);
    at += 9 + length;
    if (type === DATA || type === HEADERS) payload = unpadded(payload, flags);
    if (type === DATA) {
      const stream = streamOf(id);
      stream.dataBytes += payload.length;
      if (flags & END_STREAM) stream.ended = true;
    } else if (type === HEADERS) {
      if (flags & PRIORITY) payload = payload.subarray(5);
      block = { stream: id, parts: [payload], endStream: (flags & END_STREAM) !== 0 };
    } else if (type === CONTINUATION && block) {
      block.parts.push(payload);
    } else if (type === RST_STREAM) {
      streamOf(id).reset = true;
    } else if (type === GOAWAY) {
      answers.goaway = true;
    }
    if (block && (type === HEADERS || type === CONTINUATION) && flags & END_HEADERS) {
      const stream = streamOf(block.stream);
      // After a block that does not decode, the table is unknown: later blocks are not read.
      if (answers.error === undefined) {
        try {
          for (const [name, value] of decoder.decode(Buffer.concat(block.parts))) stream.headers[name] = value;
        } catch (error) {
          answers.error = `stream ${block.stream}: ${(error as Error).message}`;
        }
      }
      if (block.endStream) stream.ended = true;
      block = null;
    }
  }
  return answers;
}

function unpadded(payload: Buffer, flags: number): Buffer {
  if (!(flags & PADDED) || payload.length === 0) return payload;
  return payload.subarray(1, Math.max(1, payload.length - payload[0]!));
}
