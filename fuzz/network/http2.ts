/**
 * HTTP/2 cases against the gRPC port. h2-frames: a valid ModelInfer conversation (preface,
 * SETTINGS, HEADERS in literal HPACK, DATA) as raw frames, then broken at the frame level (bad
 * preface, lengths, types, flags, stream ids, HPACK bytes) or flooded (RST_STREAM, SETTINGS,
 * PING, WINDOW_UPDATE 0, GOAWAY, thousands of streams); the server may close such a connection,
 * but must stay up and keep answering others. h2-grpc: well-formed HTTP/2 from node:http2 with
 * gRPC's own framing and headers mutated (content-type, path, grpc-timeout, grpc-encoding,
 * compressed flag, length prefix); each must end in a gRPC status, and not INTERNAL or UNKNOWN.
 * Under access control (`--auth valid`) every request carries the token: as the last field of
 * each request's header block, which no mutation edits, and as a node:http2 header.
 */
import { connect, constants as h2, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { type Rng, mutateBytes } from '../random.js';
import type { NetworkClass, Verdict } from '../report.js';
import { UNAUTHENTICATED_CODE, isOpenGrpcPath, noAccessSeen, type AccessSeen, type AccessVerdict } from './auth.js';
import { protoType } from './grpc.js';
import { readH2Answers } from './hpack.js';
import { PROBE_INPUT, PROBE_MODEL, PROBE_WIDTH } from './models.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';

const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
  /** A length field that lies about the payload. */
  declaredLength?: number;
  /**
   * Bytes after the payload that no mutation edits: the token's HPACK field at the end of a
   * request's header block. A lying length lies by as much about the payload with them.
   */
  suffix?: Buffer;
}

function frameBytes(f: Frame): Buffer {
  const header = Buffer.alloc(9);
  const payload = f.suffix ? Buffer.concat([f.payload, f.suffix]) : f.payload;
  const declared =
    f.declaredLength === undefined ? payload.length : Math.min(0xffffff, f.declaredLength + (f.suffix?.length ?? 0));
  header.writeUIntBE(declared & 0xffffff, 0, 3);
  header[3] = f.type & 0xff;
  header[4] = f.flags & 0xff;
  header.writeUInt32BE(f.stream >>> 0, 5);
  return Buffer.concat([header, payload]);
}

/** An HPACK integer with an `n`-bit prefix, `first` holding the bits above the prefix. */
function hpackInt(value: number, n: number, first = 0): Buffer {
  const max = (1 << n) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}

/** A header as an HPACK literal without indexing, new name (no Huffman). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v]);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

function setting(id: number, value: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(id & 0xffff);
  b.writeUInt32BE(value >>> 0, 2);
  return b;
}

/** A ModelInfer request as a gRPC length-prefixed message. */
function grpcMessage(compressed = 0, declared?: number): Buffer {
  const t = protoType('ModelInferRequest');
  const raw = Buffer.from(PROBE_INPUT.buffer, PROBE_INPUT.byteOffset, PROBE_INPUT.byteLength);
  const body = Buffer.from(
    t
      .encode(
        t.fromObject({
          model_name: PROBE_MODEL,
          inputs: [{ name: 'input', datatype: 'FP32', shape: [2, PROBE_WIDTH] }],
          raw_input_contents: [raw],
        }),
      )
      .finish(),
  );
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed;
  prefix.writeUInt32BE((declared ?? body.length) >>> 0, 1);
  return Buffer.concat([prefix, body]);
}

/** A request's HEADERS frame; `token` (the token's HPACK field) ends its block, outside the payload mutations edit. */
function requestHeaders(stream: number, token?: Buffer): Frame {
  const block = Buffer.concat([
    literal(':method', 'POST'),
    literal(':scheme', 'http'),
    literal(':path', INFER_PATH),
    literal(':authority', 'localhost'),
    literal('content-type', 'application/grpc'),
    literal('te', 'trailers'),
  ]);
  return { type: FrameType.HEADERS, flags: END_HEADERS, stream, payload: block, ...(token ? { suffix: token } : {}) };
}

/** The conversation's frames, with its request's HEADERS and DATA frames by name (a mutation may retype them). */
interface Conversation {
  frames: Frame[];
  headers: Frame;
  data: Frame;
  /** The token's HPACK field, that every request's header block ends with (absent: no token). */
  token?: Buffer;
}

function conversation(authorization?: string): Conversation {
  const token = authorization === undefined ? undefined : literal('authorization', authorization);
  const headers = requestHeaders(1, token);
  const data: Frame = { type: FrameType.DATA, flags: END_STREAM, stream: 1, payload: grpcMessage() };
  return {
    frames: [{ type: FrameType.SETTINGS, flags: 0, stream: 0, payload: Buffer.alloc(0) }, headers, data],
    headers,
    data,
    ...(token ? { token } : {}),
  };
}

function storm(count: number, make: (i: number) => Frame): Frame[] {
  return Array.from({ length: count }, (_, i) => make(i));
}

/** Frame-level breakages of the conversation (after the preface). */
const FRAME_MUTATIONS: readonly ((rng: Rng, conversation: Conversation) => string)[] = [
  (rng, { frames }) => {
    const f = rng.pick(frames);
    f.declaredLength = rng.pick([0, 1, f.payload.length + 1, Math.max(0, f.payload.length - 1), 16_385, 0xffffff]);
    return `frame ${f.type} declares length ${f.declaredLength}`;
  },
  (rng, { frames }) => {
    const f = rng.pick(frames);
    f.type = rng.pick([
      FrameType.PUSH_PROMISE,
      FrameType.CONTINUATION,
      FrameType.PRIORITY,
      FrameType.GOAWAY,
      0x0a,
      0x10,
      0xff,
    ]);
    return `a frame retyped ${f.type}`;
  },
  (rng, { frames }) => {
    const f = rng.pick(frames);
    f.flags = rng.below(256);
    return `frame ${f.type} flags ${f.flags}`;
  },
  (rng, { frames }) => {
    const f = rng.pick(frames);
    f.stream = rng.pick([0, 2, 3, 0x7fffffff, 0x80000001]);
    return `frame ${f.type} on stream ${f.stream}`;
  },
  (rng, { headers }) => {
    const mutated = mutateBytes(rng, headers.payload);
    headers.payload = mutated.data;
    return `HPACK block: ${mutated.what}`;
  },
  (rng, { headers }) => {
    const bad = rng.pick([
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), // indexed field far past the tables
      Buffer.from([0x3f, 0xe1, 0xff, 0xff, 0xff, 0x0f]), // dynamic table size update, huge
      Buffer.concat([Buffer.from([0x00, 0x7f]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])]), // name length overflows
      Buffer.from([0x00, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61]), // Huffman name of bad code
      Buffer.from([0x80]), // index 0
      literal('x-big', 'v'.repeat(rng.pick([5000, 70_000]))),
      literal('grpc-timeout', rng.pick(['1x', '999999999S', '-1S', ''])),
      literal('content-length', rng.pick(['-1', '0', '99999999999'])),
      literal(':path', rng.pick(['', '*', '/x', INFER_PATH + '/extra'])),
      literal('Upper-Case', 'v'),
      literal('connection', 'keep-alive'),
    ]);
    headers.payload = rng.chance(0.5) ? Buffer.concat([bad, headers.payload]) : Buffer.concat([headers.payload, bad]);
    return `HPACK field ${bad.subarray(0, 6).toString('hex')}`;
  },
  (rng, { frames, headers }) => {
    const cut = rng.below(headers.payload.length);
    const continuation: Frame = {
      type: FrameType.CONTINUATION,
      flags: END_HEADERS,
      stream: headers.stream,
      payload: headers.payload.subarray(cut),
      ...(headers.suffix ? { suffix: headers.suffix } : {}),
    };
    headers.payload = headers.payload.subarray(0, cut);
    delete headers.suffix; // the token ends the block: it moves to the frame that now ends it
    headers.flags &= ~END_HEADERS;
    const between = rng.pick<Frame | null>([
      null,
      { type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.alloc(8) },
      { type: FrameType.DATA, flags: 0, stream: 1, payload: Buffer.alloc(4) },
    ]);
    frames.splice(
      frames.indexOf(headers) + 1,
      0,
      ...(between ? [between] : []),
      ...(rng.chance(0.8) ? [continuation] : []),
    );
    return `HEADERS split at ${cut}${between ? ` with frame ${between.type} between` : ''}`;
  },
  (rng, { data }) => {
    const pad = rng.pick([0, 1, 255]);
    data.flags |= PADDED;
    data.payload = Buffer.concat([
      Buffer.from([pad]),
      data.payload.subarray(0, rng.chance(0.5) ? data.payload.length : 3),
    ]);
    return `DATA padded ${pad}`;
  },
  (rng, { data }) => {
    data.payload = rng.pick([
      grpcMessage(1),
      grpcMessage(0, 0xffffffff),
      grpcMessage(0, 0x7fffffff),
      grpcMessage(0, 3),
      grpcMessage(2),
      Buffer.concat([grpcMessage(), grpcMessage()]),
      Buffer.alloc(0),
      Buffer.from([0, 0, 0]),
    ]);
    return `gRPC framing of ${data.payload.length} bytes`;
  },
  (rng, { frames }) => {
    const count = rng.pick([10, 1000, 20_000]);
    frames.splice(
      1,
      0,
      ...storm(count, (i) => ({ type: FrameType.RST_STREAM, flags: 0, stream: 2 * i + 3, payload: u32(8) })),
    );
    return `${count} RST_STREAM`;
  },
  (rng, { frames }) => {
    const count = rng.pick([10, 1000, 20_000]);
    const ack = rng.chance(0.3);
    frames.splice(
      1,
      0,
      ...storm(count, () => ({
        type: FrameType.SETTINGS,
        flags: ack ? 1 : 0,
        stream: 0,
        payload: ack ? Buffer.alloc(0) : setting(4, 65_535),
      })),
    );
    return `${count} SETTINGS${ack ? ' ACK' : ''}`;
  },
  (rng, { frames }) => {
    const count = rng.pick([10, 1000, 20_000]);
    frames.splice(
      1,
      0,
      ...storm(count, (i) => ({ type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.alloc(8, i & 0xff) })),
    );
    return `${count} PING`;
  },
  (rng, { frames }) => {
    const stream = rng.pick([0, 1]);
    const increment = rng.pick([0, 0x7fffffff, 0x80000000]);
    const copies = rng.pick([1, 2, 100]);
    frames.splice(
      rng.between(1, frames.length),
      0,
      ...storm(copies, () => ({ type: FrameType.WINDOW_UPDATE, flags: 0, stream, payload: u32(increment) })),
    );
    return `WINDOW_UPDATE ${increment} on stream ${stream} ×${copies}`;
  },
  (rng, { frames }) => {
    const values = rng.pick([
      setting(2, 2), // ENABLE_PUSH 2
      setting(4, 0x80000000), // INITIAL_WINDOW_SIZE past 2^31-1
      setting(5, 100), // MAX_FRAME_SIZE below 16384
      setting(5, 0x1000000), // MAX_FRAME_SIZE past 2^24-1
      setting(1, 0xffffffff), // HEADER_TABLE_SIZE huge
      setting(3, 0), // MAX_CONCURRENT_STREAMS 0
      Buffer.from([0, 4, 0, 0]), // a length not a multiple of 6
      setting(0x99, 1), // unknown setting
    ]);
    frames[0] = { type: FrameType.SETTINGS, flags: 0, stream: 0, payload: values };
    return `SETTINGS ${values.toString('hex')}`;
  },
  (rng, { frames }) => {
    const goaway: Frame = {
      type: FrameType.GOAWAY,
      flags: 0,
      stream: 0,
      payload: Buffer.concat([
        u32(rng.pick([0, 1, 0x7fffffff])),
        u32(rng.pick([0, 1, 2, 0xffffffff])),
        rng.bytes(rng.length(64)),
      ]),
    };
    frames.splice(rng.between(1, frames.length), 0, ...storm(rng.pick([1, 50]), () => goaway));
    return 'GOAWAY';
  },
  (rng, { frames }) => {
    const f: Frame = rng.pick([
      { type: FrameType.PRIORITY, flags: 0, stream: 1, payload: Buffer.concat([u32(1), Buffer.from([16])]) }, // depends on itself
      { type: FrameType.PRIORITY, flags: 0, stream: 1, payload: Buffer.alloc(3) },
      { type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.alloc(7) },
      { type: FrameType.PING, flags: 0, stream: 1, payload: Buffer.alloc(8) },
      {
        type: FrameType.PUSH_PROMISE,
        flags: END_HEADERS,
        stream: 1,
        payload: Buffer.concat([u32(2), literal(':path', '/')]),
      },
      { type: FrameType.RST_STREAM, flags: 0, stream: 0, payload: u32(0) },
      { type: FrameType.RST_STREAM, flags: 0, stream: 1, payload: Buffer.alloc(2) },
      { type: FrameType.DATA, flags: 0, stream: 0, payload: Buffer.alloc(10) },
      { type: FrameType.DATA, flags: 0, stream: 1, payload: Buffer.alloc(70_000) }, // past the window
      { type: FrameType.CONTINUATION, flags: END_HEADERS, stream: 1, payload: literal('x', 'y') },
    ]);
    frames.splice(rng.between(1, frames.length), 0, f);
    return `stray frame ${f.type} on stream ${f.stream}`;
  },
  (rng, { frames, token }) => {
    const count = rng.pick([100, 2000]);
    frames.splice(2, 0, ...storm(count, (i) => requestHeaders(2 * i + 3, token)));
    return `${count} streams opened`;
  },
];

/** The unbroken conversation's bytes: a ModelInfer call the server answers (the cases' baseline). */
export function validH2Conversation(authorization?: string): Buffer {
  return Buffer.concat([PREFACE, ...conversation(authorization).frames.map(frameBytes)]);
}

/**
 * How the server's bytes so far end the conversation: 'refused' by a GOAWAY or a RST_STREAM,
 * 'answered' by the end (END_STREAM) of a stream the client opened, or null while neither came.
 */
export function h2Ending(received: Buffer): 'answered' | 'refused' | null {
  let at = 0;
  while (at + 9 <= received.length) {
    const length = received.readUIntBE(at, 3);
    const type = received[at + 3]!;
    const flags = received[at + 4]!;
    const stream = received.readUInt32BE(at + 5) & 0x7fffffff;
    if (type === FrameType.GOAWAY || (stream > 0 && type === FrameType.RST_STREAM)) return 'refused';
    if (stream > 0 && (type === FrameType.HEADERS || type === FrameType.DATA) && flags & END_STREAM) return 'answered';
    at += 9 + length;
  }
  return null;
}

/** Whether the server's bytes so far end the conversation (see h2Ending). */
export function h2ConversationOver(received: Buffer): boolean {
  return h2Ending(received) !== null;
}

/** An h2-frames case: the bytes of one connection. */
export interface H2FramesCase {
  target: 'h2-frames';
  description: string;
  bytes: Buffer;
}

/** h2-frames: the conversation (carrying `authorization` when given), broken. */
export function h2FramesCase(rng: Rng, authorization?: string): H2FramesCase {
  const c = conversation(authorization);
  const steps: string[] = [];
  let preface: Buffer = PREFACE;
  if (rng.chance(0.08)) {
    const mutated = mutateBytes(rng, PREFACE, 1);
    preface = mutated.data;
    steps.push(`preface: ${mutated.what}`);
  }
  for (let i = rng.between(1, 2); i > 0; i--) steps.push(rng.pick(FRAME_MUTATIONS)(rng, c));
  let bytes = Buffer.concat([preface, ...c.frames.map(frameBytes)]);
  if (rng.chance(0.1)) {
    const at = rng.between(PREFACE.length, bytes.length);
    bytes = bytes.subarray(0, at);
    steps.push(`cut at ${at}`);
  }
  return { target: 'h2-frames', description: steps.join(', '), bytes };
}

/** An h2-grpc case: one request's headers and body. */
export interface H2GrpcCase {
  target: 'h2-grpc';
  description: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** The unbroken h2-grpc request: a ModelInfer call the server answers (the cases' baseline). */
export function validH2GrpcCase(authorization?: string): H2GrpcCase {
  return {
    target: 'h2-grpc',
    description: 'unbroken ModelInfer',
    headers: {
      [h2.HTTP2_HEADER_METHOD]: 'POST',
      [h2.HTTP2_HEADER_PATH]: INFER_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(authorization === undefined ? {} : { authorization }),
    },
    body: grpcMessage(),
  };
}

/** h2-grpc: a valid ModelInfer call (carrying `authorization` when given) over node:http2 with its gRPC headers or framing mutated. */
export function h2GrpcCase(rng: Rng, authorization?: string): H2GrpcCase {
  const { headers } = validH2GrpcCase(authorization);
  let body = grpcMessage();
  const steps: string[] = [];
  const edits: (() => string)[] = [
    () => {
      headers['content-type'] = rng.pick([
        'application/grpc+json',
        'application/grpc+proto',
        'text/plain',
        'application/grpcx',
        '',
      ]);
      return `content-type '${headers['content-type']}'`;
    },
    () => {
      const path = rng.pick([
        '/inference.GRPCInferenceService/Nope',
        '/x',
        '/inference.GRPCInferenceService/',
        '/inference.GRPCInferenceService/ModelInfer?x',
        '/' + 'p'.repeat(5000),
      ]);
      headers[h2.HTTP2_HEADER_PATH] = path;
      return `path ${path.slice(0, 50)}`;
    },
    () => {
      headers['grpc-timeout'] = rng.pick([
        '1x',
        '-1S',
        '999999999S',
        '',
        '1',
        'S',
        '00000001n',
        '18446744073709551615m',
      ]);
      return `grpc-timeout '${headers['grpc-timeout']}'`;
    },
    () => {
      headers['grpc-encoding'] = rng.pick(['gzip', 'deflate', 'br', 'identity', 'x']);
      body = rng.chance(0.5) ? grpcMessage(1) : grpcMessage();
      return `grpc-encoding ${headers['grpc-encoding']} (flag ${body[0]})`;
    },
    () => {
      body = rng.pick([
        grpcMessage(1),
        grpcMessage(0, 0xffffffff),
        grpcMessage(0, 2),
        Buffer.concat([grpcMessage(), grpcMessage()]),
        Buffer.alloc(0),
        Buffer.from([0, 0, 0, 0, 0]),
        Buffer.from([0, 0]),
      ]);
      return `body of ${body.length} bytes`;
    },
    () => {
      const name = rng.pick(['x-bin', 'grpc-trace-bin', 'x-meta', 'grpc-accept-encoding', 'user-agent']);
      headers[name] = rng.pick(['!!!not base64', 'v'.repeat(rng.pick([100, 8000, 20_000])), '']);
      return `metadata ${name}`;
    },
    () => {
      delete headers[rng.pick(['te', 'content-type'])];
      return 'a required header left out';
    },
  ];
  for (let i = rng.between(1, 2); i > 0; i--) steps.push(rng.pick(edits)());
  return { target: 'h2-grpc', description: steps.join(', '), headers, body };
}

/**
 * Sends an h2-grpc case over a fresh session and judges the status it ends with; the verdict
 * carries what the answer showed about access control (a call served, a credentials refusal).
 */
export function runH2GrpcCase(port: number, c: H2GrpcCase, deadlineMs: number): Promise<AccessVerdict> {
  return new Promise((resolve) => {
    let session: ClientHttp2Session;
    let settled = false;
    let response: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    let dataBytes = 0;
    const finish = (verdict: Verdict<NetworkClass>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session?.destroy();
      resolve({ ...verdict, access: h2GrpcAccess(c.headers[h2.HTTP2_HEADER_PATH], response, trailers, dataBytes) });
    };
    const timer = setTimeout(() => finish({ class: 'hang', detail: 'no status by the deadline' }), deadlineMs);
    try {
      session = connect(`http://127.0.0.1:${port}`);
      session.on('error', () => finish({ class: 'closed' }));
      const request = session.request(c.headers, { endStream: false });
      request.on('response', (headers) => (response = headers));
      request.on('trailers', (headers: IncomingHttpHeaders) => (trailers = headers));
      request.on('data', (chunk: Buffer) => (dataBytes += chunk.length));
      request.on('error', () => {});
      request.on('close', () => finish(judgeH2Status(response, trailers)));
      request.end(c.body);
    } catch (error) {
      finish({ class: 'refused', detail: `not sent: ${(error as Error).message}` });
    }
  });
}

/** The INTERNAL statuses @grpc/grpc-js sends by itself, before a maas handler sees the call. */
const GRPC_JS_INTERNALS = /^(Invalid grpc-timeout value|Failed to decompress message)/;

function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function judgeH2Status(response: IncomingHttpHeaders, trailers: IncomingHttpHeaders): Verdict<NetworkClass> {
  const all = { ...response, ...trailers };
  const httpStatus = Number(response[h2.HTTP2_HEADER_STATUS] ?? 0);
  if (httpStatus === 0) return { class: 'closed' }; // reset before any answer
  if (httpStatus !== 200) return { class: 'refused' }; // 415 for a non-gRPC content-type
  const status = Number(all['grpc-status'] ?? -1);
  if (status === 0) return { class: 'answered' };
  const message = percentDecoded(String(all['grpc-message'] ?? ''));
  if (status === -1) return { class: 'uncoded', detail: 'HTTP 200 without a grpc-status' };
  if (status === 13 && all['maas-error-code'] === undefined && GRPC_JS_INTERNALS.test(message))
    return { class: 'grpc-js', detail: `INTERNAL from grpc-js: ${message}` };
  if (status === 13 || status === 2) return { class: 'uncoded', detail: `status ${status}: ${message}` };
  return { class: 'refused' };
}

/** A gRPC status's credentials refusal: counted when it carries its maas code, reported when it does not. */
function credentialsRefusal(seen: AccessSeen, status: string | undefined, code: string | undefined): void {
  if (status !== '16') return;
  if (code === UNAUTHENTICATED_CODE) seen.denied++;
  else seen.uncoded = `UNAUTHENTICATED with maas-error-code ${code ?? '(none)'}`;
}

/** What an h2-grpc answer shows about access: served (an OK status or message bytes on a path not open), or refused for its credentials. */
function h2GrpcAccess(
  path: string | undefined,
  response: IncomingHttpHeaders,
  trailers: IncomingHttpHeaders,
  dataBytes: number,
): AccessSeen {
  const all = { ...response, ...trailers };
  const status = all['grpc-status'] === undefined ? undefined : String(all['grpc-status']);
  const seen = noAccessSeen();
  if ((status === '0' || dataBytes > 0) && !isOpenGrpcPath(path))
    seen.served.push(
      `${String(path).slice(0, 80)}: HTTP ${String(response[h2.HTTP2_HEADER_STATUS])}, grpc-status ${status ?? '(none)'}, ${dataBytes} message bytes`,
    );
  const code = all['maas-error-code'];
  credentialsRefusal(seen, status, code === undefined ? undefined : String(code));
  return seen;
}

/**
 * What a raw h2-frames connection's answers show about access, from the server's frames and
 * decoded header blocks: every client stream answered with message bytes or grpc-status 0 was
 * served (the request is a ModelInfer, never an open RPC), and each UNAUTHENTICATED is counted.
 */
export function h2FramesAccess(received: Buffer): AccessSeen {
  const answers = readH2Answers(received);
  const seen = noAccessSeen();
  for (const [id, stream] of answers.streams) {
    if (id === 0) continue;
    const status = stream.headers['grpc-status'];
    if (status === '0' || stream.dataBytes > 0)
      seen.served.push(
        `ModelInfer on stream ${id}: grpc-status ${status ?? '(none)'}, ${stream.dataBytes} message bytes`,
      );
    credentialsRefusal(seen, status, stream.headers['maas-error-code']);
  }
  return seen;
}
