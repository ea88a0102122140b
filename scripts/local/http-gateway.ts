/**
 * The front door of `npm start`, where API Gateway stands when deployed: it passes every
 * request to serverless-offline and its answer back untouched, except where serverless-offline
 * would answer in a way API Gateway never does. Three such cases, each rendered as the
 * catalogue's error by the one renderer (lib/http/error-response.ts), never as a 200, a stack
 * or a local path:
 *
 * - serverless-offline turns a function's timeout or unhandled error into HTTP 200 with
 *   `{errorMessage, errorType, stackTrace}` (the httpApi payload 2.0 wrapping): 504 for a
 *   timeout, 500 otherwise;
 * - the functions crashed or are restarting (the connection is refused or reset): requests
 *   wait up to `waitForFunctionsMs` for them to be back, then 504; a request cut off mid-way 500;
 * - no answer within `timeoutMs`: 504.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { StorageFileSizeError, StorageOperationError, StorageTimeoutError, type StorageError } from '../../lib/errors/catalogue.ts';
import { renderError } from '../../lib/http/error-response.ts';
import { listen, type Listening } from './listening.ts';

/**
 * The API's requests are small JSON (a create is under 2 KB): a bound far below API Gateway's
 * 10 MB keeps a flood of large bodies, read before any token is checked, from filling memory.
 */
const MAX_REQUEST_BYTES = 256 * 1024;

export type HttpGateway = Listening;

export function createHttpGateway(options: {
  listen: { host: string; port: number };
  /** Where serverless-offline listens now, or undefined while it is down. */
  upstream: () => { host: string; port: number } | undefined;
  timeoutMs: number;
  waitForFunctionsMs: number;
  log: (line: string) => void;
}): Promise<HttpGateway> {
  const server = createServer((req, res) => void forward(req, res));

  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const operation = `${req.method} ${(req.url ?? '/').split('?')[0]!.replace(/[0-9a-f-]{36}/gi, '{fileId}')}`;
    const fail = (error: StorageError) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const rendered = renderError(error, randomUUID());
      // Browsers read it like the functions' own errors (serverless.yml's httpApi CORS: any origin).
      const headers = { ...(rendered.headers as Record<string, string>), 'Access-Control-Allow-Origin': '*' };
      res.writeHead(rendered.statusCode ?? 500, headers).end(rendered.body);
    };
    const timedOut = () => new StorageTimeoutError('No answer in time.', { operation });

    // API requests are small JSON (recordings go straight to the bucket): read them whole, so a
    // request refused by functions that are restarting can be sent again once they are back.
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        return fail(new StorageFileSizeError(`The request body is over ${MAX_REQUEST_BYTES} bytes.`, { operation }));
      }
      chunks.push(chunk);
    }
    const body = Buffer.concat(chunks);

    const waitUntil = Date.now() + options.waitForFunctionsMs;
    for (;;) {
      const target = options.upstream();
      if (target !== undefined) {
        const sent = await attempt(target);
        if (sent !== 'refused') return;
      }
      if (Date.now() > waitUntil) return fail(timedOut());
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    function attempt(target: { host: string; port: number }): Promise<'done' | 'refused'> {
      return new Promise((settle) => {
        const upstream = request({ host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          const type = String(answer.headers['content-type'] ?? '');
          answer.on('error', () => fail(new StorageOperationError('The function was cut off.', { operation })));
          answer.on('close', () => settle('done'));
          if (answer.statusCode !== 200 || !type.startsWith('application/json')) {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            return;
          }
          // JSON answers are small: read them whole to catch serverless-offline's own error shape.
          const parts: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => parts.push(chunk));
          answer.on('end', () => {
            const json = Buffer.concat(parts);
            const failure = functionFailure(json);
            if (failure === undefined) {
              res.writeHead(200, answer.headers).end(json);
              return;
            }
            options.log(`${operation}: the function failed (${failure.errorType ?? 'error'}); answered with the catalogue's error`);
            fail(
              failure.errorType === 'LambdaTimeoutError'
                ? timedOut()
                : new StorageOperationError('The function failed.', { operation, details: { errorType: failure.errorType } }),
            );
          });
        });
        upstream.setTimeout(options.timeoutMs, () => {
          upstream.destroy();
          fail(timedOut());
          settle('done');
        });
        upstream.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code === 'ECONNREFUSED') return settle('refused');
          fail(new StorageOperationError('The function was cut off.', { operation }));
          settle('done');
        });
        upstream.end(body);
      });
    }
  }

  return listen(server, options.listen);
}

/** serverless-offline's error result (never one of ours: ours are `{error: {...}}`). */
function functionFailure(body: Buffer): { errorType?: string } | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    return parsed !== null && typeof parsed === 'object' && 'errorMessage' in parsed && 'stackTrace' in parsed
      ? { errorType: typeof parsed.errorType === 'string' ? parsed.errorType : undefined }
      : undefined;
  } catch {
    return undefined;
  }
}
