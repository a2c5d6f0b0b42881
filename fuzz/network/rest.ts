/**
 * REST cases, written as raw HTTP/1.1 bytes so that nothing a client library would refuse to
 * send is out of reach: mutated bodies (JSON structure, text bytes, the binary tensor data
 * extension's header length), request targets (%-escapes, dot segments, long and non-ASCII
 * paths, methods, versions) and headers (huge, many, duplicated, bad lengths, chunked framing).
 * Under access control (`--auth valid`) every request carries `authorization: Bearer <token>`,
 * a header no mutation edits or removes.
 */
import { mutateJson, type Json } from '../json.js';
import { type Rng, mutateBytes } from '../random.js';
import { mutateConfig } from './config.js';
import { PROBE_INPUT, PROBE_MODEL, PROBE_WIDTH } from './models.js';

/** A REST case: the bytes to write (in chunks) and the methods of the requests they hold. */
export interface RestCase {
  target: 'rest-body' | 'rest-url' | 'rest-header';
  description: string;
  chunks: Buffer[];
  methods: string[];
  /** The requests' targets as sent (latin1), one per method: what decides whether an answer served an open route. */
  targets: string[];
  /**
   * The bytes may stop inside a request (a body shorter than its declared length, a chunked body
   * without its last chunk): the server may rightly wait for more, so the client half-closes.
   * Any other case is whole requests, each of which must be answered (or the connection closed).
   */
  mayBeIncomplete?: boolean;
  /** A model load: slow work by nature, given the load deadline instead of the request deadline. */
  loads?: boolean;
}

type Header = [string, string];

function requestBytes(method: string, target: string | Buffer, headers: Header[], body: Buffer, version = 'HTTP/1.1') {
  const head = Buffer.concat([
    Buffer.from(`${method} `, 'latin1'),
    typeof target === 'string' ? Buffer.from(target, 'latin1') : target,
    Buffer.from(` ${version}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1'),
  ]);
  return Buffer.concat([head, body]);
}

const HOST: Header = ['host', 'localhost'];

/** The host header, then the token's when the case carries one. */
function baseHeaders(authorization: string | undefined): Header[] {
  return authorization === undefined ? [HOST] : [HOST, ['authorization', authorization]];
}

/** The bodies the REST routes take, each a valid request before mutation. */
interface BodySeed {
  path: string;
  document: Json;
  binary?: Buffer;
}

function bodySeeds(): BodySeed[] {
  const data = Array.from(PROBE_INPUT);
  const raw = Buffer.from(PROBE_INPUT.buffer, PROBE_INPUT.byteOffset, PROBE_INPUT.byteLength);
  const input = { name: 'input', datatype: 'FP32', shape: [2, PROBE_WIDTH] };
  return [
    {
      path: `/v2/models/${PROBE_MODEL}/infer`,
      document: { id: 'a', inputs: [{ ...input, data }], outputs: [{ name: 'output' }], parameters: { priority: 1 } },
    },
    {
      path: `/v2/models/${PROBE_MODEL}/versions/1/infer`,
      document: {
        inputs: [{ ...input, parameters: { binary_data_size: raw.length } }],
        outputs: [{ name: 'output', parameters: { binary_data: true } }],
        parameters: { binary_data_output: true, timeout: 100000 },
      },
      binary: raw,
    },
    {
      path: '/v2/models/convert/infer',
      document: { inputs: [{ name: 'input', datatype: 'INT64', shape: [1, PROBE_WIDTH], data: [[1, -2, 3, 4]] }] },
    },
    { path: '/v2/repository/index', document: { ready: true } },
    {
      path: '/v2/repository/models/scratch/load',
      document: { parameters: { config: JSON.stringify({ max_batch_size: 4, dynamic_batching: {} }) } },
    },
    { path: '/v2/repository/models/scratch/unload', document: {} },
  ];
}

const BODY_SEEDS = bodySeeds();

/** A valid infer request on the probe model (pipelined and header cases start from it). */
function inferRequest(authorization?: string): { head: Header[]; body: Buffer; path: string } {
  const seed = BODY_SEEDS[0]!;
  const body = Buffer.from(JSON.stringify(seed.document));
  return {
    head: [
      ...baseHeaders(authorization),
      ['content-type', 'application/json'],
      ['content-length', String(body.length)],
    ],
    body,
    path: seed.path,
  };
}

/** rest-body: one seed body, mutated in its JSON structure, its text, or its binary framing. */
export function restBodyCase(rng: Rng, authorization?: string): RestCase {
  const seed = rng.weighted(BODY_SEEDS.map((s, i) => [s, i === 4 ? 1 : 4] as const));
  let json: Buffer = Buffer.from(JSON.stringify(seed.document));
  let what: string;
  const mode = rng.weighted<'json' | 'bytes' | 'framing'>([
    ['json', 6],
    ['bytes', 3],
    ['framing', seed.binary ? 3 : 0],
  ]);
  if (mode === 'json' && seed.path.endsWith('/load') && rng.chance(0.5)) {
    // The config override is JSON inside a JSON string: mutated as a document of its own.
    const config = mutateConfig(rng);
    json = Buffer.from(JSON.stringify({ parameters: { config: config.text } }));
    what = `config ${config.what}`;
  } else if (mode === 'json') {
    const mutated = mutateJson(rng, seed.document);
    json = Buffer.from(mutated.text);
    what = mutated.what;
  } else if (mode === 'bytes') {
    const mutated = mutateBytes(rng, json);
    json = mutated.data;
    what = mutated.what;
  } else what = 'binary framing';
  let binary = seed.binary ?? Buffer.alloc(0);
  const headers: Header[] = baseHeaders(authorization);
  let declared: string | null = seed.binary ? String(json.length) : null;
  if (mode === 'framing') {
    const choice = rng.below(4);
    if (choice === 0) {
      declared = rng.pick(['-1', '0', '1.5', 'abc', '', '1e3', '99999999999', String(json.length + binary.length + 1)]);
      what = `Inference-Header-Content-Length ${declared}`;
    } else if (choice === 1) {
      declared = String(json.length + rng.pick([-1, 1, 4, -4]));
      what = `Inference-Header-Content-Length ${declared} for a ${json.length}-byte header`;
    } else if (choice === 2) {
      binary = binary.subarray(0, rng.below(binary.length));
      what = `binary part cut to ${binary.length} bytes`;
    } else {
      binary = Buffer.concat([binary, rng.bytes(rng.between(1, 64))]);
      what = `binary part extended to ${binary.length} bytes`;
    }
  } else if (seed.binary && rng.chance(0.2)) declared = null; // binary bytes without the header length
  if (declared !== null) headers.push(['inference-header-content-length', declared]);
  const body = Buffer.concat([json, binary]);
  headers.push(['content-type', seed.binary ? 'application/octet-stream' : 'application/json']);
  headers.push(['content-length', String(body.length)]);
  return {
    target: 'rest-body',
    description: `POST ${seed.path}: ${what}`,
    chunks: [requestBytes('POST', seed.path, headers, body)],
    methods: ['POST'],
    targets: [seed.path],
    loads: seed.path.endsWith('/load'),
  };
}

const URL_SEEDS = [
  '/v2',
  '/v2/health/live',
  '/v2/health/ready',
  `/v2/models/${PROBE_MODEL}`,
  `/v2/models/${PROBE_MODEL}/versions/1`,
  `/v2/models/${PROBE_MODEL}/ready`,
  `/v2/models/${PROBE_MODEL}/versions/1/config`,
  `/v2/models/${PROBE_MODEL}/stats`,
  '/v2/models/stats',
  `/v2/models/${PROBE_MODEL}/infer`,
  '/v2/repository/index',
  '/v2/repository/models/scratch/load',
];

const METHODS = [
  'GET',
  'GET',
  'POST',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'HEAD',
  'TRACE',
  'CONNECT',
  'get',
  'FOO',
  'G\u00e9T',
  'M'.repeat(300),
];

/** Path mutations, each on the path's bytes. */
const PATH_MUTATIONS: readonly ((rng: Rng, path: Buffer) => { path: Buffer; what: string })[] = [
  (rng, path) => {
    const escape = rng.pick(['%', '%G', '%zz', '%c3%28', '%ff', '%00', '%2f', '%252e', '%E0%A4%A', '%ed%a0%80', '%%']);
    const at = rng.below(path.length + 1);
    return {
      path: Buffer.concat([path.subarray(0, at), Buffer.from(escape), path.subarray(at)]),
      what: `escape ${escape} at ${at}`,
    };
  },
  (rng, path) => {
    const dots = rng.pick(['/..', '/.', '/../..', '/%2e%2e', '/..%2f', '//', '/./']);
    const segments = path.toString('latin1').split('/');
    const at = rng.between(1, segments.length);
    const joined = [...segments.slice(0, at), dots.slice(1), ...segments.slice(at)].join('/');
    return { path: Buffer.from(joined, 'latin1'), what: `dot segment ${dots} at segment ${at}` };
  },
  (rng, path) => {
    const length = rng.pick([1000, 8000, 17_000, 100_000]);
    const segment = rng.pick(['a', '%41', 'probe/', '../']);
    const long = segment.repeat(Math.ceil(length / segment.length)).slice(0, length);
    return { path: Buffer.concat([path, Buffer.from(`/${long}`)]), what: `${length}-char tail of ${segment}` };
  },
  (rng, path) => {
    const bytes = rng.pick([
      Buffer.from('ü'),
      Buffer.from('\u{1F600}'),
      Buffer.from([0xff]),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from([0x00]),
      Buffer.from([0x7f]),
      Buffer.from(' '),
      Buffer.from('\t'),
      Buffer.from('\r'),
      Buffer.from('\n'),
    ]);
    const at = rng.below(path.length + 1);
    return {
      path: Buffer.concat([path.subarray(0, at), bytes, path.subarray(at)]),
      what: `raw bytes ${bytes.toString('hex')} at ${at}`,
    };
  },
  (rng, path) => {
    const tail = rng.pick(['?', '?x=%zz', '?a=1&a=2', '#frag', '?' + 'q'.repeat(5000), ';param', '?%']);
    return { path: Buffer.concat([path, Buffer.from(tail)]), what: `suffix ${tail.slice(0, 20)}` };
  },
  (rng, path) => {
    const form = rng.pick(['http://localhost', 'http://[::1]:1', '*', '', 'v2', '//']);
    const out = form === '*' || form === '' ? Buffer.from(form) : Buffer.concat([Buffer.from(form), path]);
    return { path: out, what: `request target form '${form}'` };
  },
  (rng, path) => ({ path: mutateBytes(rng, path, 2).data, what: 'path bytes mutated' }),
];

/** rest-url: a method, a mutated request target, sometimes an odd HTTP version. */
export function restUrlCase(rng: Rng, authorization?: string): RestCase {
  const method = rng.pick(METHODS);
  let path: Buffer = Buffer.from(rng.pick(URL_SEEDS), 'latin1');
  const steps: string[] = [];
  for (let i = rng.between(1, 2); i > 0; i--) {
    const mutated = rng.pick(PATH_MUTATIONS)(rng, path);
    path = mutated.path;
    steps.push(mutated.what);
  }
  const version = rng.weighted([
    ['HTTP/1.1', 12],
    ['HTTP/1.0', 1],
    ['HTTP/2.0', 1],
    ['HTTP/9.9', 1],
    ['HTTP/1.1 extra', 1],
    ['', 1],
  ]);
  const body = method === 'POST' ? inferRequest().body : Buffer.alloc(0);
  const headers: Header[] = [
    ...baseHeaders(authorization),
    ['content-type', 'application/json'],
    ['content-length', String(body.length)],
  ];
  return {
    target: 'rest-url',
    description: `${method.slice(0, 20)} ${path.toString('latin1', 0, 60)} ${version}: ${steps.join(', ')}`,
    chunks: [requestBytes(method, path, headers, body, version)],
    methods: [method],
    targets: [path.toString('latin1')],
  };
}

/** Chunked transfer encoding of `body`, `pieces` chunks. */
function chunked(body: Buffer, pieces: number): Buffer {
  const parts: Buffer[] = [];
  const size = Math.max(1, Math.ceil(body.length / pieces));
  for (let at = 0; at < body.length; at += size) {
    const piece = body.subarray(at, at + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** The request a header mutation edits; it sets `incomplete` when its bytes may stop inside the request. */
interface EditedRequest {
  head: Header[];
  body: Buffer;
  incomplete: boolean;
}

type HeaderMutation = (rng: Rng, request: EditedRequest) => string;

const withoutLength = (head: Header[]) => head.filter(([k]) => k !== 'content-length');

const HEADER_MUTATIONS: readonly HeaderMutation[] = [
  (rng, r) => {
    const size = rng.pick([8000, 17_000, 70_000]);
    r.head.push([rng.pick(['x-big', 'user-agent', 'cookie', 'inference-header-content-length']), 'v'.repeat(size)]);
    return `${size}-byte header`;
  },
  (rng, r) => {
    const count = rng.pick([100, 2000, 5000]);
    for (let i = 0; i < count; i++) r.head.push([`x-h${i}`, String(i)]);
    return `${count} headers`;
  },
  (rng, r) => {
    const value = rng.pick([String(r.body.length), String(r.body.length + 1), '0']);
    r.head.push(['content-length', value]);
    return `second content-length ${value}`;
  },
  (rng, r) => {
    const value = rng.pick([
      '-1',
      'abc',
      '1e3',
      `+${r.body.length}`,
      ` ${r.body.length}`,
      '0x10',
      '99999999999999999999',
      '',
      String(r.body.length - 5),
      String(r.body.length + 5),
      '1, 1',
    ]);
    r.head = [...withoutLength(r.head), ['content-length', value]];
    r.incomplete = true;
    return `content-length '${value}'`;
  },
  (rng, r) => {
    r.head = [...withoutLength(r.head), ['transfer-encoding', 'chunked']];
    const pieces = rng.pick([1, 3, 50]);
    const valid = chunked(r.body, pieces);
    const corruption = rng.below(6);
    if (corruption === 0) {
      r.body = valid;
      return `chunked in ${pieces}`;
    }
    r.incomplete = corruption === 1 || corruption === 3 || corruption === 5;
    if (corruption === 1) {
      r.body = Buffer.concat([
        Buffer.from(`${rng.pick(['zz', '-1', 'ffffffffffffffffff', '7fffffff', ' 5', '5 '])}\r\n`),
        r.body,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
      return 'bad chunk size';
    }
    if (corruption === 2) {
      r.body = Buffer.concat([
        Buffer.from(`${r.body.length.toString(16)};${'e'.repeat(rng.pick([10, 20_000]))}\r\n`),
        r.body,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
      return 'chunk extension';
    }
    if (corruption === 3) {
      r.body = valid.subarray(0, valid.length - 5);
      return 'no last chunk';
    }
    if (corruption === 4) {
      r.body = Buffer.concat([
        valid.subarray(0, valid.length - 2),
        Buffer.from('x-trailer: 1\r\ncontent-length: 5\r\n\r\n'),
      ]);
      return 'trailers';
    }
    r.body = Buffer.concat([Buffer.from(`${(8 * 2 ** 20).toString(16)}\r\n`), rng.bytes(4096)]);
    return 'chunk declared past the body limit';
  },
  (rng, r) => {
    r.head.push(['transfer-encoding', rng.pick(['chunked', 'gzip', 'chunked, chunked', 'identity', 'gzip, chunked'])]);
    r.incomplete = true;
    return 'transfer-encoding beside content-length';
  },
  (rng, r) => {
    const value = rng.pick(['-1', '1.5', 'NaN', '99999999999', ' 12', '0x1', '', '1, 2']);
    r.head.push(['inference-header-content-length', value]);
    if (rng.chance(0.3)) r.head.push(['inference-header-content-length', '3']);
    return `inference-header-content-length '${value}'`;
  },
  (rng, r) => {
    r.head.push(['expect', rng.pick(['100-continue', 'garbage'])]);
    return 'expect';
  },
  (rng, r) => {
    r.head.push(['connection', 'Upgrade'], ['upgrade', rng.pick(['websocket', 'h2c', 'x'.repeat(100)])]);
    return 'upgrade';
  },
  (rng, r) => {
    r.head = rng.chance(0.5) ? r.head.filter(([k]) => k !== 'host') : [...r.head, ['host', 'other']];
    return 'host missing or twice';
  },
  (rng, r) => {
    const odd = rng.pick<Header>([
      ['x-folded', 'a\r\n folded'],
      ['no colon here\r\nx', 'y'],
      ['bad name', 'v'],
      ['x-nul', 'a\u0000b'],
      ['x-cr', 'a\rb'],
      ['', 'empty name'],
      ['content-type', 'application/json; charset=utf-16'],
      ['content-type', 'x'.repeat(200)],
      ['connection', 'close'],
      ['connection', 'keep-alive, x'],
    ]);
    r.head.push(odd);
    return `header ${JSON.stringify(odd[0]).slice(0, 20)}`;
  },
];

/** rest-header: a valid infer request with one or two header or framing mutations, or pipelined. */
export function restHeaderCase(rng: Rng, authorization?: string): RestCase {
  const base = inferRequest(authorization);
  if (rng.chance(0.12)) {
    const count = rng.pick([2, 10, 50]);
    const one = requestBytes('POST', base.path, base.head, base.body);
    const garbage = rng.chance(0.5) ? rng.bytes(rng.between(1, 40)) : Buffer.alloc(0);
    return {
      target: 'rest-header',
      description: `${count} pipelined requests${garbage.length ? ' then garbage' : ''}`,
      chunks: [Buffer.concat([...new Array<Buffer>(count).fill(one), garbage])],
      methods: new Array<string>(count).fill('POST'),
      targets: new Array<string>(count).fill(base.path),
    };
  }
  const request: EditedRequest = { head: base.head, body: base.body, incomplete: false };
  const steps: string[] = [];
  for (let i = rng.between(1, 2); i > 0; i--) steps.push(rng.pick(HEADER_MUTATIONS)(rng, request));
  let bytes = requestBytes('POST', base.path, request.head, request.body);
  if (rng.chance(0.1)) {
    bytes = Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    request.incomplete = true;
    steps.push('bare LF line ends');
  }
  // Sometimes the bytes arrive in pieces, so a parser sees a request split at an odd place.
  const split = rng.chance(0.2) ? rng.below(bytes.length) : bytes.length;
  const chunks = split < bytes.length ? [bytes.subarray(0, split), bytes.subarray(split)] : [bytes];
  return {
    target: 'rest-header',
    description: steps.join(', '),
    chunks,
    methods: ['POST'],
    targets: [base.path],
    mayBeIncomplete: request.incomplete,
  };
}
