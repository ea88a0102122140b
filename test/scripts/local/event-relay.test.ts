import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createEventRelay, type EventRelay } from '../../../scripts/local/event-relay.ts';
import { getFreePort } from '../../../scripts/minio.ts';

/**
 * The relay's contract with MinIO's webhook: acknowledge (2xx) only what the function
 * processed, so that MinIO keeps and re-sends the rest; refuse callers without the token.
 * A stand-in plays serverless-offline's Lambda invoke API here.
 */

let relay: EventRelay | undefined;
let lambda: Server | undefined;
afterEach(async () => {
  await relay?.stop();
  await new Promise((resolve) => (lambda ? lambda.close(resolve) : resolve(undefined)));
});

async function fakeLambda(answer: (body: string) => { status: number; headers?: Record<string, string>; body: string }) {
  const received: string[] = [];
  lambda = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      received.push(body);
      const reply = answer(body);
      res.writeHead(reply.status, reply.headers).end(reply.body);
    });
  });
  await new Promise<void>((resolve) => lambda!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(lambda.address() as { port: number }).port}/invoke`, received };
}

async function startRelay(invokeUrl: string, authToken?: string) {
  const port = await getFreePort();
  relay = await createEventRelay({ invokeUrl, listen: { host: '127.0.0.1', port, authToken }, log: () => undefined });
  return `http://127.0.0.1:${port}/minio-events`;
}

const event = JSON.stringify({ Records: [{ eventName: 's3:ObjectCreated:Put' }] });

describe('event relay', () => {
  it('forwards the event untouched and acknowledges once the function succeeded', async () => {
    const fake = await fakeLambda(() => ({ status: 200, body: JSON.stringify({ results: [{ outcome: 'ready', fileId: 'f' }] }) }));
    const url = await startRelay(fake.url);
    const response = await fetch(url, { method: 'POST', body: event });
    expect(response.status).toBe(200);
    expect(fake.received).toEqual([event]);
  });

  it('answers 503 when the function failed, so MinIO delivers the event again', async () => {
    const fake = await fakeLambda(() => ({ status: 200, headers: { 'x-amz-function-error': 'Unhandled' }, body: '{"errorMessage":"boom"}' }));
    const url = await startRelay(fake.url);
    expect((await fetch(url, { method: 'POST', body: event })).status).toBe(503);
  });

  it('answers 503 when the functions are not running', async () => {
    const url = await startRelay(`http://127.0.0.1:${await getFreePort()}/invoke`);
    expect((await fetch(url, { method: 'POST', body: event })).status).toBe(503);
  });

  it('refuses a caller without the webhook token, and bodies that are not JSON', async () => {
    const fake = await fakeLambda(() => ({ status: 200, body: '{}' }));
    const url = await startRelay(fake.url, 'events-token');
    expect((await fetch(url, { method: 'POST', body: event })).status).toBe(401);
    expect((await fetch(url, { method: 'POST', body: event, headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(url, { method: 'POST', body: '{', headers: { authorization: 'Bearer events-token' } })).status).toBe(400);
    expect((await fetch(url, { method: 'POST', body: event, headers: { authorization: 'Bearer events-token' } })).status).toBe(200);
    expect(fake.received).toEqual([event]);
  });
});
