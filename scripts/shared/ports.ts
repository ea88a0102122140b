import { createServer } from 'node:net';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function getFreePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolvePromise(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

/**
 * Rejects with the listen error (EADDRINUSE, and the `port` it is about) for the first port that
 * cannot be taken: a command says so before it starts anything, rather than a child dying on it.
 */
export async function assertPortsFree(ports: Array<{ host: string; port: number }>): Promise<void> {
  for (const { host, port } of ports) {
    await new Promise<void>((resolvePromise, reject) => {
      const probe = createServer();
      probe.once('error', (error: NodeJS.ErrnoException) => reject(Object.assign(error, { port })));
      probe.listen(port, host, () => probe.close(() => resolvePromise()));
    });
  }
}
