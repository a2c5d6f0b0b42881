/**
 * REST JSON bodies into objects: a small body is parsed on the event loop; one of `threadBytes` or
 * more in a thread (DESIGN decision 11), so a 60 MB request does not hold up every other request
 * for the time its parse takes. The thread starts on the first large body and ends when idle,
 * taking the garbage of its parses with it.
 */
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { moduleEntry } from '../../core/module-entry.js';
import { MaasError, isErrorCode } from '../../core/errors.js';
import { Body } from './body.js';
import { parseJsonObject, type BodyKind } from './json-parse.js';
import type { JsonReply, JsonTask } from './json-thread.js';

/** How JSON bodies are parsed. */
export interface JsonBodyOptions {
  /** Bodies of this many bytes or more are parsed in the thread. */
  threadBytes: number;
  /** Input data elements one request may carry. */
  maxElements: number;
  /** The largest body, which sizes the thread's heap cap. */
  maxBodyBytes: number;
}

/** The parse thread's heap in MB: room for a body of the limit parsed into rows of numbers (8× its bytes), not more. */
export function threadHeapMb(maxBodyBytes: number): number {
  return Math.max(128, Math.ceil((8 * maxBodyBytes) / 2 ** 20));
}

/** Parses REST JSON bodies, on the event loop or in the parse thread by size. */
export class JsonBodies {
  private thread: Piscina | null = null;
  private closed = false;

  constructor(private readonly options: JsonBodyOptions) {}

  /** A JSON object body; an inference request's input data come back as typed arrays when parsed in the thread. */
  async parse(body: Body | Uint8Array, kind: BodyKind): Promise<Record<string, unknown>> {
    const size = body instanceof Body ? body.size : body.byteLength;
    if (size < this.options.threadBytes) return parseJsonObject(body instanceof Body ? body.bytes() : body, kind);
    if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
    const parts =
      body instanceof Body && body.owned ? body.parts : [ownedCopyOf(body instanceof Body ? body.bytes() : body)];
    const task: JsonTask = { parts, kind, maxElements: this.options.maxElements };
    let reply: JsonReply;
    try {
      reply = (await this.pool().run(task, { transferList: parts.map((p) => p.buffer as ArrayBuffer) })) as JsonReply;
    } catch (error) {
      // The thread died: over its heap cap (JSON.parse cannot be stopped midway, so the counts
      // checked before it are the real bound and this one a last resort), or stopped at close.
      if ((error as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new MaasError(
          'MAAS_ERR_TOO_MANY_ELEMENTS',
          `Expected a JSON ${kind} that parses within the parse thread's ${threadHeapMb(this.options.maxBodyBytes)} MB heap but it outgrew it`,
        );
      }
      if (this.closed) throw new MaasError('MAAS_ERR_SERVER_STOPPING', 'The server is shutting down');
      throw error;
    }
    if (!reply.ok) throw new MaasError(isErrorCode(reply.code) ? reply.code : 'MAAS_ERR_HTTP_BODY', reply.message);
    return reply.value;
  }

  /** Stops the thread (a parse in progress is answered with an error). */
  async close(): Promise<void> {
    this.closed = true;
    const thread = this.thread;
    this.thread = null;
    await thread?.destroy();
  }

  private pool(): Piscina {
    if (!this.thread) {
      const entry = moduleEntry(import.meta.url, 'json-thread');
      this.thread = new Piscina({
        filename: pathToFileURL(entry.module).href,
        execArgv: entry.execArgv,
        minThreads: 0,
        maxThreads: 1,
        idleTimeout: 10_000,
        maxQueue: Infinity,
        resourceLimits: { maxOldGenerationSizeMb: threadHeapMb(this.options.maxBodyBytes) },
      });
    }
    return this.thread;
  }
}

/**
 * The bytes in an ArrayBuffer of their own, which can be moved to the thread: a body read into its
 * own buffer is moved as it is; one that shares a buffer (a slice of a larger read) is copied.
 */
function ownedCopyOf(bytes: Uint8Array): Uint8Array {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    !(bytes.buffer instanceof SharedArrayBuffer)
  )
    return bytes;
  return bytes.slice();
}
