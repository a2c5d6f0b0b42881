/**
 * POST /v2/models/{m}[/versions/{v}]/update: the update extension over REST. The body is read as
 * it streams in, one message at a time, in one of three forms by its content type:
 *   application/json      one object: {"parameters": {…}, "batches": [{"set", "x", "y"}, …]}
 *   application/x-ndjson  one object a line: {"parameters": {…}} first (optional), then batches
 *   application/octet-stream  frames: a 4-byte little-endian length, that many bytes of a JSON
 *                         header ({"parameters"} or {"set", "x": {"binary_data_size"}, "y": {…}}),
 *                         then the batch's FP32 little-endian bytes, x then y
 * A refusal before the rows are all in is an ordinary error answer. Once they are, the answer is
 * NDJSON events, one a line — "training", "epoch"…, then "result" or "error" — so a client sees
 * the training as it goes. Closing the connection cancels the update.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MaasError, describeValue } from '../../core/errors.js';
import { isPlainObject } from '../../core/validation.js';
import { lingerAfterRefusal, tooLarge } from './body.js';
import { fp32Copy, type DataPlane, type UpdateBatch, type UpdateSession } from '../dataplane.js';
import type { BodyKind } from './json-parse.js';

/** What the route needs of the server: the body limit and the JSON parser (on the loop or in its thread). */
export interface UpdateRequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** The largest message (a JSON body, an NDJSON line, a frame). */
  limit: number;
  parseJson: (bytes: Uint8Array, kind: BodyKind) => Promise<Record<string, unknown>>;
}

/** Largest JSON header of a binary frame. */
const MAX_FRAME_HEADER_BYTES = 64 * 1024;

type Message = Record<string, unknown>;

/** The body's messages, as they stream in (each parsed before the next is read). */
async function* messages(ctx: UpdateRequestContext): AsyncGenerator<{ message: Message; binary?: Buffer }> {
  const type = (ctx.req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    const whole = await readAll(ctx);
    const body = whole.length === 0 ? {} : await ctx.parseJson(whole, 'request body');
    if (body.batches !== undefined && !Array.isArray(body.batches))
      throw new MaasError(
        'MAAS_ERR_UPDATE_DATA',
        `Expected a batches array but received ${describeValue(body.batches)}`,
      );
    yield { message: { parameters: body.parameters } };
    for (const batch of (body.batches ?? []) as unknown[]) {
      if (!isPlainObject(batch))
        throw new MaasError('MAAS_ERR_UPDATE_DATA', `Expected a batch object but received ${describeValue(batch)}`);
      yield { message: batch };
    }
    return;
  }
  if (type === 'application/x-ndjson' || type === 'application/jsonl') {
    for await (const line of lines(ctx)) yield { message: await ctx.parseJson(line, 'request body') };
    return;
  }
  if (type === 'application/octet-stream') {
    yield* frames(ctx);
    return;
  }
  throw new MaasError(
    'MAAS_ERR_HTTP_BODY',
    `Expected an update body of application/json, application/x-ndjson or application/octet-stream but received ${describeValue(type)}`,
  );
}

async function readAll(ctx: UpdateRequestContext): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > ctx.limit) throw tooLarge(ctx.limit, 'more');
    parts.push(chunk);
  }
  return Buffer.concat(parts, size);
}

/** Whether a line holds only JSON whitespace (looked at in place: a line may be megabytes). */
function blank(line: Buffer): boolean {
  for (const byte of line) if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0d && byte !== 0x0a) return false;
  return true;
}

/** NDJSON lines (blank ones skipped), each at most the limit. */
async function* lines(ctx: UpdateRequestContext): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingSize = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const line = Buffer.concat([...pending, chunk.subarray(start, nl)]);
      pending = [];
      pendingSize = 0;
      start = nl + 1;
      if (line.length > ctx.limit) throw tooLarge(ctx.limit, `a line of ${line.length} bytes`);
      if (!blank(line)) yield line;
    }
    pendingSize += chunk.length - start;
    if (pendingSize > ctx.limit) throw tooLarge(ctx.limit, 'a longer line');
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  const last = Buffer.concat(pending);
  if (!blank(last)) yield last;
}

/** Reads exactly n bytes from the body (null at its end before any byte of them). */
class ByteReader {
  private buffered: Buffer[] = [];
  private size = 0;
  private readonly source: AsyncIterator<Buffer>;

  constructor(req: IncomingMessage) {
    this.source = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async read(n: number): Promise<Buffer | null> {
    while (this.size < n) {
      const next = await this.source.next();
      if (next.done) {
        if (this.size === 0) return null;
        throw new MaasError('MAAS_ERR_HTTP_BODY', `The update body ended inside a frame (${this.size} of ${n} bytes)`);
      }
      this.buffered.push(next.value);
      this.size += next.value.length;
    }
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.size);
    this.buffered = all.length > n ? [all.subarray(n)] : [];
    this.size -= n;
    return all.subarray(0, n);
  }
}

function binarySize(part: unknown, what: string): number {
  const size = isPlainObject(part) ? part.binary_data_size : undefined;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0)
    throw new MaasError(
      'MAAS_ERR_UPDATE_DATA',
      `Expected ${what}: {"binary_data_size": <bytes>} in a frame header but received ${describeValue(part)}`,
    );
  return size;
}

/** Binary frames: length, JSON header, then the bytes it announces. */
async function* frames(ctx: UpdateRequestContext): AsyncGenerator<{ message: Message; binary?: Buffer }> {
  const reader = new ByteReader(ctx.req);
  for (;;) {
    const prefix = await reader.read(4);
    if (!prefix) return;
    const headerBytes = prefix.readUInt32LE(0);
    if (headerBytes === 0 || headerBytes > MAX_FRAME_HEADER_BYTES)
      throw new MaasError(
        'MAAS_ERR_HTTP_BODY',
        `Expected a frame header of 1 to ${MAX_FRAME_HEADER_BYTES} bytes but received a length of ${headerBytes}`,
      );
    const header = await reader.read(headerBytes);
    if (!header)
      throw new MaasError('MAAS_ERR_HTTP_BODY', 'The update body ended after a frame’s length, before its header');
    const message = await ctx.parseJson(header, 'request body');
    if (message.x === undefined && message.y === undefined) {
      yield { message };
      continue;
    }
    const xBytes = binarySize(message.x, 'x');
    const yBytes = binarySize(message.y, 'y');
    if (xBytes + yBytes > ctx.limit) throw tooLarge(ctx.limit, `a frame of ${xBytes + yBytes} bytes`);
    const binary = xBytes + yBytes === 0 ? Buffer.alloc(0) : await reader.read(xBytes + yBytes);
    if (!binary) throw new MaasError('MAAS_ERR_HTTP_BODY', 'The update body ended before a frame’s rows');
    yield { message, binary };
  }
}

/** A message's batch for the session (null: it carries none). */
function batchOf(message: Message, binary: Buffer | undefined): UpdateBatch | null {
  if (message.x === undefined && message.y === undefined) return null;
  const set = (message.set ?? 'train') as UpdateBatch['set'];
  const rows = message.rows === undefined ? {} : { rows: message.rows as number };
  if (!binary) return { set, x: message.x, y: message.y, ...rows };
  const xBytes = binarySize(message.x, 'x');
  return {
    set,
    x: fp32Copy(binary.subarray(0, xBytes), 'x', 'MAAS_ERR_UPDATE_DATA'),
    y: fp32Copy(binary.subarray(xBytes), 'y', 'MAAS_ERR_UPDATE_DATA'),
    ...rows,
  };
}

/**
 * Reads the update's messages into a session: the first message's parameters start it (a refusal
 * there — busy, unknown model, a bad parameter — is thrown, to be answered as any error), the
 * batches follow. Returns the session with every row in, and enough of them to run; the caller
 * runs it. A failure while reading, or too few rows, cancels the session and is thrown.
 */
export async function receiveUpdate(
  dataplane: DataPlane,
  model: string,
  version: string | undefined,
  ctx: UpdateRequestContext,
): Promise<UpdateSession> {
  let session: UpdateSession | null = null;
  try {
    for await (const { message, binary } of messages(ctx)) {
      if (!session) {
        const parameters = message.parameters ?? {};
        if (!isPlainObject(parameters))
          throw new MaasError(
            'MAAS_ERR_UPDATE_PARAMETER',
            `Expected a parameters object but received ${describeValue(parameters)}`,
          );
        session = await dataplane.beginUpdate(model, version, parameters);
      } else if (message.parameters !== undefined)
        throw new MaasError('MAAS_ERR_UPDATE_PARAMETER', 'Parameters go in the first message of an update only');
      const batch = batchOf(message, binary);
      if (batch) session.add(batch);
    }
    session ??= await dataplane.beginUpdate(model, version, {});
    session.checkRows(); // enough rows to run: still an ordinary error answer otherwise
    return session;
  } catch (error) {
    // The rest of a refused body is not read: the connection closes after the answer.
    if (!ctx.req.complete) lingerAfterRefusal(ctx.req, ctx.res);
    // Answered once the model is free again: a client that retries at once is not refused as busy.
    await session?.cancel('its body was refused');
    throw error;
  }
}
