/**
 * A raw TCP exchange: connect, write the case's bytes, and collect what the server sends until
 * it closes, the answer is complete, or the deadline passes. For HTTP/1.1 the client half-closes
 * after writing: no more bytes are coming, so an incomplete request is answered (or the
 * connection closed) at once instead of waited on, and a server that does neither hangs. HTTP/2
 * drops a connection's streams on a half-close, so there the client waits for `complete` instead.
 */
import { connect } from 'node:net';

/** What came back over one connection. */
export interface Exchange {
  received: Buffer;
  /** The server closed (or reset) the connection. */
  closed: boolean;
  /** Neither closed nor done by the deadline. */
  timedOut: boolean;
  /** The connection could not be made at all (the server is gone). */
  refused: boolean;
}

/** How an exchange ends on the client's side. */
export interface ExchangeOptions {
  deadlineMs: number;
  /** Half-close after writing (default true). */
  halfClose?: boolean;
  /** True once what was received is a whole answer: the exchange ends there. */
  complete?: (received: Buffer) => boolean;
}

/** Sends `chunks` (written one after another) to `port` and collects the answer. */
export function exchange(
  host: string,
  port: number,
  chunks: readonly Buffer[],
  options: ExchangeOptions,
): Promise<Exchange> {
  const { deadlineMs, halfClose = true, complete } = options;
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    let connected = false;
    let settled = false;
    const socket = connect({ host, port });
    const finish = (result: Omit<Exchange, 'received'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(received), ...result });
    };
    const timer = setTimeout(() => finish({ closed: false, timedOut: true, refused: false }), deadlineMs);
    socket.on('connect', () => {
      connected = true;
      void writeAll();
    });
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      if (complete?.(Buffer.concat(received))) finish({ closed: false, timedOut: false, refused: false });
    });
    socket.on('error', () => {}); // a reset or a broken pipe: 'close' follows and says the rest
    socket.on('close', () => finish({ closed: true, timedOut: false, refused: !connected }));

    async function writeAll(): Promise<void> {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        // Waiting for each write lets a server that closes early stop us writing into the void.
        const ok = socket.write(chunk);
        if (!ok) await new Promise((r) => socket.once('drain', r).once('close', r));
      }
      if (!socket.destroyed && halfClose) socket.end();
    }
  });
}
