/**
 * REST connections: how many requests of one connection run at once (HTTP/1.1 pipelining lets a
 * client send any number before reading an answer), closing a connection that carries
 * nothing for the idle time, whether or not it ever sent a request, and ending one that has
 * lived past the maximum age after its current answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** One connection's requests: those running, and those waiting, in order, for a place. */
interface Connection {
  /** When it was accepted (ms). */
  readonly since: number;
  running: number;
  waiting: (() => void)[];
  closed: boolean;
}

/**
 * Admits each connection's requests `maxInFlight` at a time, in order. Up to as many again wait;
 * a connection that pipelines further ahead of its answers is closed (node's HTTP parser reads
 * on regardless, so waiting without a bound would hold every request the client sends).
 */
export class ConnectionGate {
  private readonly connections = new WeakMap<Socket, Connection>();
  /** Requests running on all connections (read by /metrics). */
  running = 0;

  /** `maxAgeMs`: a connection older than this is closed after its next answer (0: no limit). */
  constructor(
    private readonly maxInFlight: number,
    private readonly maxAgeMs = 0,
  ) {}

  /** Runs `handle` now, or once an earlier request of the same connection has been answered. */
  admit(req: IncomingMessage, res: ServerResponse, handle: () => void): void {
    const socket = req.socket;
    const state = this.connections.get(socket) ?? this.track(socket);
    const run = () => {
      // Past its age the answer says "Connection: close" and the socket ends after it.
      if (this.maxAgeMs > 0 && Date.now() - state.since >= this.maxAgeMs) res.shouldKeepAlive = false;
      state.running++;
      this.running++;
      res.once('close', () => {
        if (state.closed) return;
        state.running--;
        this.running--;
        state.waiting.shift()?.();
      });
      handle();
    };
    if (state.running < this.maxInFlight) run();
    else if (state.waiting.length < this.maxInFlight) state.waiting.push(run);
    else socket.destroy();
  }

  private track(socket: Socket): Connection {
    const connection: Connection = { since: Date.now(), running: 0, waiting: [], closed: false };
    this.connections.set(socket, connection);
    // Answers still queued behind a pipelined one never emit 'close' when the socket goes.
    socket.once('close', () => {
      connection.closed = true;
      this.running -= connection.running;
      connection.running = 0;
      connection.waiting = [];
    });
    return connection;
  }

  /** Closes `socket` when nothing of it runs or waits (the server's idle timer fired). */
  closeIfIdle(socket: Socket): void {
    const connection = this.connections.get(socket);
    if (!connection || (connection.running === 0 && connection.waiting.length === 0)) socket.destroy();
  }
}
