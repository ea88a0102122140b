/**
 * Carries object-created events to the process-upload function that serverless-offline
 * runs, through its Lambda invoke API, the way S3 invokes it when deployed.
 *
 * MinIO posts each event to the relay's webhook endpoint and keeps it in its queue_dir until
 * the relay answers 2xx. The relay answers only after the function has succeeded, so an
 * upload made while the functions were down, or one whose processing failed, is delivered
 * again when they are back: nothing is lost, and the function is idempotent.
 */
import { createServer, type Server } from 'node:http';

export interface EventRelay {
  server: Server | undefined;
  deliver(event: unknown): Promise<void>;
  stop(): Promise<void>;
}

export function functionInvokeUrl(lambdaPort: number, functionName: string): string {
  return `http://127.0.0.1:${lambdaPort}/2015-03-31/functions/${functionName}/invocations`;
}

export function createEventRelay(options: {
  invokeUrl: string;
  /** Where MinIO's webhook posts; undefined for in-process events only (embedded emulator). */
  listen?: { host: string; port: number; authToken?: string | undefined };
  log: (line: string) => void;
}): Promise<EventRelay> {
  const deliver = async (event: unknown): Promise<void> => {
    const response = await fetch(options.invokeUrl, { method: 'POST', body: JSON.stringify(event) });
    const text = await response.text();
    if (!response.ok || response.headers.has('x-amz-function-error')) {
      throw new Error(`process-upload failed (${response.status}): ${text.slice(0, 300)}`);
    }
    for (const result of (JSON.parse(text || '{}') as { results?: Array<{ outcome: string; fileId?: string; reason?: string }> }).results ?? []) {
      options.log(`upload ${result.fileId ?? '(not an upload)'}: ${result.outcome}${result.reason ? ` (${result.reason})` : ''}`);
    }
  };

  const relay: EventRelay = { server: undefined, deliver, stop: async () => undefined };
  const listen = options.listen;
  if (!listen) return Promise.resolve(relay);

  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    if (listen.authToken && req.headers.authorization !== `Bearer ${listen.authToken}`) {
      res.writeHead(401).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      // MinIO checks the endpoint at start-up with an empty request.
      if (body.trim() === '') {
        res.writeHead(200).end();
        return;
      }
      let event: unknown;
      try {
        event = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      deliver(event).then(
        () => res.writeHead(200).end(),
        (error: unknown) => {
          options.log(`event not processed, MinIO will deliver it again: ${(error as Error).message}`);
          res.writeHead(503).end();
        },
      );
    });
  });
  relay.server = server;
  relay.stop = () => new Promise((resolve) => server.close(() => resolve()));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve(relay));
  });
}
