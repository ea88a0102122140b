import { createServer, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpGateway, type HttpGateway } from '../../../scripts/local/http-gateway.ts';
import { getFreePort } from '../../../scripts/shared/ports.ts';
import { expectErrorBody } from '../../support/api-client.ts';

/**
 * The gateway in front of serverless-offline, against a stand-in that answers the way
 * serverless-offline does when a function fails: whatever happens behind it, a client gets the
 * function's own answer or the catalogue's error, never serverless-offline's 200 with a stack.
 */

let gateway: HttpGateway | undefined;
let upstream: Server | undefined;
afterEach(async () => {
  await gateway?.stop();
  await new Promise((resolve) => (upstream ? upstream.close(resolve) : resolve(undefined)));
  upstream = undefined;
});

async function behind(answer: (res: ServerResponse) => void, options: { up?: () => boolean; timeoutMs?: number; waitMs?: number } = {}) {
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((resolve) => upstream!.listen(0, '127.0.0.1', resolve));
  const target = { host: '127.0.0.1', port: (upstream.address() as { port: number }).port };
  const port = await getFreePort();
  gateway = await createHttpGateway({
    listen: { host: '127.0.0.1', port },
    upstream: () => (options.up?.() ?? true ? target : undefined),
    timeoutMs: options.timeoutMs ?? 5_000,
    waitForFunctionsMs: options.waitMs ?? 2_000,
    log: () => undefined,
  });
  return `http://127.0.0.1:${port}`;
}

const offlineFailure = (errorType: string, errorMessage: string) => (res: ServerResponse) =>
  res
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ errorMessage, errorType, stackTrace: ['Error: boom', '    at handler (/work/main/functions/get-file-info.ts:5:11)'] }));

describe('local HTTP gateway', () => {
  it("turns serverless-offline's timeout (a 200 with a stack) into the catalogue's 504", async () => {
    const api = await behind(offlineFailure('LambdaTimeoutError', '[504] - Lambda timeout.'));
    const response = await fetch(`${api}/files/3f8b2c1a-1234-4abc-8def-0123456789ab`);
    expect(response.status).toBe(504);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const body = (await response.json()) as { error: { operation: string } };
    expectErrorBody(body, 'StorageTimeoutError');
    expect(body.error.operation).toBe('GET /files/{fileId}');
    expect(JSON.stringify(body)).not.toMatch(/\/work\/|Lambda timeout/);
  });

  it("turns a function's unhandled error into the catalogue's 500", async () => {
    const api = await behind(offlineFailure('Error', 'boom'));
    const response = await fetch(`${api}/files`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(500);
    expectErrorBody(await response.json(), 'StorageOperationError');
  });

  it("passes the functions' own answers through untouched, errors and bytes alike", async () => {
    const api = await behind((res) =>
      res.writeHead(206, { 'content-type': 'audio/wav', 'content-range': 'bytes 0-3/10', 'accept-ranges': 'bytes' }).end(Buffer.from('RIFF')),
    );
    const bytes = await fetch(`${api}/files/x/content`);
    expect(bytes.status).toBe(206);
    expect(bytes.headers.get('content-range')).toBe('bytes 0-3/10');
    expect(Buffer.from(await bytes.arrayBuffer()).toString()).toBe('RIFF');

    await gateway!.stop();
    await new Promise((resolve) => upstream!.close(resolve));
    const ours = { error: { type: 'StorageFileNotFoundError', message: 'File not found.', operation: 'getFileInfo', timestamp: new Date().toISOString(), requestId: 'r' } };
    const api2 = await behind((res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify(ours)));
    const notFound = await fetch(`${api2}/files/x`);
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toEqual(ours);
  });

  it('answers a request cut off by a crash of the functions with the catalogue error', async () => {
    const api = await behind((res) => res.socket?.destroy());
    const response = await fetch(`${api}/files/x`);
    expect(response.status).toBe(500);
    expectErrorBody(await response.json(), 'StorageOperationError');
  });

  it('holds requests while the functions restart, then serves them; gives up with 504 if they stay down', async () => {
    let up = false;
    setTimeout(() => (up = true), 600);
    const api = await behind((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'), { up: () => up });
    const held = await fetch(`${api}/files/x`);
    expect(held.status).toBe(200);
    expect(await held.json()).toEqual({ ok: true });

    up = false;
    const refused = await fetch(`${api}/files/x`);
    expect(refused.status).toBe(504);
    expectErrorBody(await refused.json(), 'StorageTimeoutError');
  });

  it('refuses a body far larger than any API request before passing anything on', async () => {
    let reached = 0;
    const api = await behind((res) => {
      reached++;
      res.writeHead(200).end();
    });
    const response = await fetch(`${api}/files`, { method: 'POST', body: 'x'.repeat(1024 * 1024) });
    expect(response.status).toBe(413);
    expectErrorBody(await response.json(), 'StorageFileSizeError');
    expect(reached).toBe(0);
  });

  it('answers 504 when the functions take longer than the gateway waits', async () => {
    const api = await behind((res) => setTimeout(() => res.writeHead(200).end(), 3_000), { timeoutMs: 300 });
    const response = await fetch(`${api}/files/x`);
    expect(response.status).toBe(504);
    expectErrorBody(await response.json(), 'StorageTimeoutError');
  });
});
