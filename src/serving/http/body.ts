/**
 * Request bodies, read under the size limit: refused on a declared length above it before a byte
 * is buffered, and cut off as soon as what arrived passes it. A body bound for the JSON parse
 * thread is copied, a chunk at a time as it arrives, into blocks that own their memory once it
 * passes `blockBytes`, so it can be moved to the thread without one long copy on the event loop.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MaasError } from '../../core/errors.js';

/** Bytes per block of a large body: a few hundred copies per 64 MiB, each too small to be felt. */
const BLOCK_BYTES = 1024 * 1024;

/** How long a connection whose upload was refused stays open after the answer (lingering close). */
const LINGER_MS = 2000;

/** A body as it was read: its bytes in one or more parts. */
export class Body {
  private joined: Buffer | null = null;

  constructor(
    /** The parts, in order; when `owned`, each is the whole of its own ArrayBuffer but the last may be a prefix. */
    readonly parts: Uint8Array[],
    readonly size: number,
    /** Whether the parts own their memory (blocks), and so may be moved to another thread. */
    readonly owned: boolean,
  ) {}

  /** The body in one buffer (joined once, on first use). */
  bytes(): Buffer {
    if (!this.joined) {
      this.joined =
        this.parts.length === 1 && !this.owned
          ? Buffer.from(this.parts[0]!.buffer, this.parts[0]!.byteOffset, this.size)
          : Buffer.concat(this.parts, this.size);
    }
    return this.joined;
  }
}

/** MAAS_ERR_MESSAGE_TOO_LARGE for a body above `limit`. */
export function tooLarge(limit: number, received: string): MaasError {
  return new MaasError(
    'MAAS_ERR_MESSAGE_TOO_LARGE',
    `Expected a body of at most ${limit} bytes (--max-message-bytes) but received ${received}`,
  );
}

/**
 * Lingering close for a refused upload: the client is still sending, and closing the socket on
 * unread bytes resets the connection, which can destroy the 413 before the client reads it. So
 * after the answer the server sends a FIN, stops reading (the client's window fills and it
 * waits, at no cost here), and closes the socket LINGER_MS later.
 */
export function lingerAfterRefusal(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    req.pause(); // after node's own finish handler, which resumes a body nobody read, to drop it
    const socket = req.socket;
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

/** Copies chunks into blocks of BLOCK_BYTES as they come. */
class BlockWriter {
  readonly blocks: Uint8Array[] = [];
  private used = BLOCK_BYTES;

  write(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.used === BLOCK_BYTES) {
        this.blocks.push(Buffer.allocUnsafeSlow(BLOCK_BYTES));
        this.used = 0;
      }
      const n = Math.min(chunk.length - at, BLOCK_BYTES - this.used);
      this.blocks[this.blocks.length - 1]!.set(chunk.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
    }
  }

  /** The blocks, the last cut to what it holds. */
  finish(): Uint8Array[] {
    if (this.blocks.length > 0) this.blocks[this.blocks.length - 1] = this.blocks.at(-1)!.subarray(0, this.used);
    return this.blocks;
  }
}

/**
 * Reads a body up to `limit` bytes. From `blockBytes` on it is kept in owned blocks (pass Infinity
 * for a body that will be needed in one buffer anyway). After a refusal the connection closes,
 * lingering long enough for the client to read the answer.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, limit: number, blockBytes: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      lingerAfterRefusal(req, res);
      reject(tooLarge(limit, `a declared ${declared}`));
      return;
    }
    let chunks: Buffer[] = [];
    let blocks: BlockWriter | null = null;
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        chunks = []; // what was read is garbage now, not when the request object goes
        blocks = null;
        lingerAfterRefusal(req, res);
        reject(tooLarge(limit, 'more'));
        return;
      }
      if (!blocks && size >= blockBytes) {
        blocks = new BlockWriter();
        for (const earlier of chunks) blocks.write(earlier);
        chunks = [];
      }
      if (blocks) blocks.write(chunk);
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(blocks ? new Body(blocks.finish(), size, true) : new Body(chunks, size, false)));
    req.on('error', reject);
  });
}
