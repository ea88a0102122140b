import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pipeline, Transform } from 'node:stream';

/**
 * A network fault between the functions and a real MinIO, for tests that need the storage
 * server to fail on cue (the way a flaky network or an overloaded server does) without
 * stopping the MinIO other test files share. Requests pass through untouched, Host header
 * included, so signatures still verify; a request the fail rule picks is answered with a
 * connection reset instead, and the answer to one the slow rule picks trickles, as over a poor
 * network. MinIO does all the storage work: nothing here imitates S3.
 */
export interface FaultProxy {
  /** Host and port to give a storage context instead of MinIO's. */
  host: string;
  port: number;
  /** Requests for which `rule` is true are cut; `undefined` lets everything through. */
  fail(rule: ((req: IncomingMessage) => boolean) | undefined): void;
  /** Answers to requests for which `rule` is true arrive at `bytesPerSecond`. */
  slow(rule: ((req: IncomingMessage) => boolean) | undefined, bytesPerSecond?: number): void;
  /** Requests for which `rule` is true are held `ms` before they are passed on (a slow or retried call). */
  delay(rule: ((req: IncomingMessage) => boolean) | undefined, ms?: number): void;
  /**
   * The answers to requests for which `rule` is true come with only their first `keep` bytes, and
   * a Content-Length that says so: what a store that writes objects in place serves while a write
   * is under way (a torn read), which the client cannot tell from a whole answer.
   */
  tear(rule: ((req: IncomingMessage) => boolean) | undefined, keep?: number): void;
  /** Requests cut so far. */
  readonly cut: number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let rule: ((req: IncomingMessage) => boolean) | undefined;
  let slowRule: ((req: IncomingMessage) => boolean) | undefined;
  let delayRule: ((req: IncomingMessage) => boolean) | undefined;
  let delayMs = 0;
  let tearRule: ((req: IncomingMessage) => boolean) | undefined;
  let tearKeep = 0;
  let rate = 1024 * 1024;
  let cut = 0;
  const server: Server = createServer((req, res) => {
    if (rule?.(req)) {
      cut++;
      req.socket.destroy();
      return;
    }
    if (delayRule?.(req)) {
      req.pause();
      setTimeout(() => forward(req, res), delayMs);
      return;
    }
    forward(req, res);
  });
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const upstream = request(
      { host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (tearRule?.(req)) {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const torn = Buffer.concat(chunks).subarray(0, tearKeep);
            res.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'content-length': String(torn.length) });
            res.end(torn);
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        // A server that dies mid-answer resets its connections: the client must see that too.
        const stages = slowRule?.(req) ? [answer, trickle(rate), res] : [answer, res];
        pipeline(stages, (error) => error && res.destroy());
      },
    );
    upstream.on('error', () => res.destroy());
    req.on('error', () => upstream.destroy());
    req.pipe(upstream);
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    host: '127.0.0.1',
    port,
    fail: (next) => {
      rule = next;
    },
    slow: (next, bytesPerSecond = rate) => {
      slowRule = next;
      rate = bytesPerSecond;
    },
    delay: (next, ms = 1000) => {
      delayRule = next;
      delayMs = ms;
    },
    tear: (next, keep = 0) => {
      tearRule = next;
      tearKeep = keep;
    },
    get cut() {
      return cut;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Passes bytes on in 16 KiB steps at `bytesPerSecond`. */
function trickle(bytesPerSecond: number): Transform {
  const step = 16 * 1024;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const pieces: Buffer[] = [];
      for (let at = 0; at < chunk.length; at += step) pieces.push(chunk.subarray(at, at + step));
      const next = () => {
        const piece = pieces.shift();
        if (piece === undefined) return callback();
        this.push(piece);
        setTimeout(next, (piece.length / bytesPerSecond) * 1000);
      };
      next();
    },
  });
}
