import type { Server } from 'node:http';

/** A local HTTP server listening, with a stop that also cuts connections kept alive. */
export interface Listening {
  server: Server;
  stop(): Promise<void>;
}

export function listen(server: Server, at: { host: string; port: number }): Promise<Listening> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () =>
      resolve({
        server,
        stop: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      }),
    );
  });
}
