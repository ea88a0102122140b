/**
 * The door MinIO's webhook notification target knocks on (`npm start` with a MinIO).
 *
 * MinIO delivers from its queue_dir one event per request, strictly in order, and re-sends an
 * event every 3 s, forever, until it is answered 2xx; while it does, every later event waits
 * behind it. So the door answers at once, and answers 2xx to anything it will never be able to
 * handle, rather than holding up every upload behind it:
 *
 * - a request without the bearer token (`Authorization: Bearer <token>`, which MinIO sends as
 *   MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>) is refused with 401 and said so in the log, once a
 *   minute: that is a configuration to fix, and MinIO keeps the events until it is;
 * - a body over `maxBodyBytes` is cut off with 413 (MinIO's events are about 1 KB);
 * - an empty body is answered 200; one that is not JSON is logged and acknowledged;
 * - anything else is handed to the event queue and acknowledged; records that name no upload
 *   (another bucket, a malformed key) are skipped by the function and logged there.
 *
 * What the queue then loses, the sweep finds (event-queue.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { listen, type Listening } from './listening.ts';

export type EventRelay = Listening;

export const MAX_EVENT_BYTES = 64 * 1024;

export function createEventRelay(options: {
  listen: { host: string; port: number };
  token: string;
  accept: (event: unknown) => void;
  log: (line: string) => void;
  maxBodyBytes?: number;
}): Promise<EventRelay> {
  const limit = options.maxBodyBytes ?? MAX_EVENT_BYTES;
  const expected = Buffer.from(`Bearer ${options.token}`);
  let lastRefusal = 0;
  const authorised = (header: string | undefined) => {
    const given = Buffer.from(header ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  };

  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    if (!authorised(req.headers.authorization)) {
      if (Date.now() - lastRefusal > 60_000) {
        lastRefusal = Date.now();
        options.log(
          'refused a webhook call without the right bearer token: start MinIO with MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID> set to ' +
            'TRANSCRIBO_EVENTS_TOKEN (or the eventsToken of .local/dev-secrets.json); until then the sweep processes uploads',
        );
      }
      res.writeHead(401, { connection: 'close' }).end();
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = () => {
      options.log(`dropped a webhook call of more than ${limit} bytes`);
      res.writeHead(413, { connection: 'close' }).end();
      req.destroy();
    };
    if (declared > limit) return tooLarge();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return;
      const body = Buffer.concat(chunks).toString('utf8');
      if (body.trim() !== '') {
        let event: unknown;
        try {
          event = JSON.parse(body);
        } catch {
          options.log(`acknowledged and dropped a webhook call whose ${size}-byte body is not JSON`);
          res.writeHead(200).end();
          return;
        }
        options.accept(event);
      }
      res.writeHead(200).end();
    });
  });
  return listen(server, options.listen);
}
