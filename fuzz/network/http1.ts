/**
 * Reading the REST server's answers off a raw connection (HTTP/1.1 responses, possibly several
 * for pipelined requests) and judging them: an error must be the adapter's `{"error": "..."}`
 * JSON with a status other than 500; a connection closed without an answer is acceptable for
 * garbage, a connection neither answered nor closed by the deadline is a hang. Each answer is
 * also read for access control: a 2xx to a request outside the open health routes is a call
 * served, a 401 a refusal for the credentials.
 */
import { isOpenRestTarget, noAccessSeen, type AccessSeen, type AccessVerdict } from './auth.js';
import type { Exchange } from './socket.js';

/** One parsed response. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function parseHead(text: string): { status: number; headers: Record<string, string> } | null {
  const [statusLine, ...lines] = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!match) return null;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(match[1]), headers };
}

function dechunk(data: Buffer, at: number): { body: Buffer; next: number } | null {
  const parts: Buffer[] = [];
  for (;;) {
    const eol = data.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = parseInt(data.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) return null;
    at = eol + 2;
    if (size === 0) {
      const end = data.indexOf('\r\n\r\n', at - 2);
      return end < 0 ? null : { body: Buffer.concat(parts), next: end + 4 };
    }
    parts.push(data.subarray(at, at + size));
    at += size + 2;
  }
}

/**
 * The whole responses in `data`, in order; `methods` are the requests' methods (a HEAD answer has
 * no body); a body without a length ends at the close, so it counts only once `closed`. Stops at
 * the first thing that is not a whole response.
 */
export function parseResponses(data: Buffer, methods: readonly string[], closed: boolean): HttpAnswer[] {
  const answers: HttpAnswer[] = [];
  let at = 0;
  let request = 0;
  while (at < data.length) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const head = parseHead(data.subarray(at, headEnd).toString('latin1'));
    if (!head) break;
    at = headEnd + 4;
    if (head.status >= 100 && head.status < 200) continue; // 100 Continue: the real answer follows
    let body: Buffer;
    if (methods[request] === 'HEAD' || head.status === 204 || head.status === 304) body = Buffer.alloc(0);
    else if (head.headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      const chunked = dechunk(data, at);
      if (!chunked) break;
      body = chunked.body;
      at = chunked.next;
    } else if (head.headers['content-length'] !== undefined) {
      const length = Number(head.headers['content-length']);
      if (at + length > data.length) break;
      body = data.subarray(at, at + length);
      at += length;
    } else {
      if (!closed) break;
      body = data.subarray(at);
      at = data.length;
    }
    answers.push({ ...head, body });
    request++;
  }
  return answers;
}

/** Why an error answer is not a coded one, or null when it is. */
export function uncodedReason(answer: HttpAnswer, method: string | undefined): string | null {
  if (answer.status < 400) return null;
  const shown = answer.body.toString('utf8', 0, 200);
  if (answer.status === 500) return `HTTP 500: ${shown}`;
  if (method === 'HEAD') {
    return answer.headers['content-type']?.startsWith('application/json')
      ? null
      : `HTTP ${answer.status} to HEAD without a JSON error`;
  }
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as { error?: unknown };
    if (typeof parsed?.error === 'string' && parsed.error.length > 0) return null;
  } catch {
    // not JSON: reported below
  }
  return `HTTP ${answer.status} without a JSON {"error": ...} body: '${shown}'`;
}

/**
 * What the answers show about access: the i-th answer goes to the i-th request (HTTP/1.1
 * answers in order); a 2xx to a target that is not an open health route (or to no request the
 * case knows of) was served, a 401 refused the credentials.
 */
function restAccess(
  answers: readonly HttpAnswer[],
  methods: readonly string[],
  targets: readonly string[],
): AccessSeen {
  const seen = noAccessSeen();
  for (const [i, answer] of answers.entries()) {
    if (answer.status >= 200 && answer.status < 300 && !isOpenRestTarget(targets[i]))
      seen.served.push(
        `${(methods[i] ?? '(no request)').slice(0, 20)} ${(targets[i] ?? '').slice(0, 80)}: HTTP ${answer.status} '${answer.body.toString('utf8', 0, 80)}'`,
      );
    if (answer.status === 401) seen.denied++;
  }
  return seen;
}

/** A REST case's verdict from what came back on its connection, with what it showed about access control. */
export function judgeHttp(result: Exchange, methods: readonly string[], targets: readonly string[]): AccessVerdict {
  const answers = parseResponses(result.received, methods, result.closed);
  const access = restAccess(answers, methods, targets);
  for (const [i, answer] of answers.entries()) {
    const reason = uncodedReason(answer, methods[i]);
    if (reason) return { class: 'uncoded', detail: reason, access };
  }
  if (result.timedOut && answers.length < methods.length)
    return {
      class: 'hang',
      detail: `${answers.length} of ${methods.length} answers by the deadline, the connection still open${result.received.length > 0 ? `: '${result.received.toString('latin1', 0, 120)}'` : ''}`,
      access,
    };
  if (answers.length === 0) return { class: 'closed', access };
  return { class: answers.some((a) => a.status >= 400) ? 'refused' : 'answered', access };
}
