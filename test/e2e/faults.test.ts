import { execFile } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';

import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { incomingKey } from '../../lib/storage/object-layout.ts';
import { wav } from '../support/audio-fixtures.ts';
import { expectErrorBody } from '../support/api-client.ts';
import { Client, sendToBucket, sha256 } from '../support/client-journey.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';
import { s3Event } from '../support/lambda-events.ts';

/**
 * Faults as an operator meets them, against `npm start` on a real MinIO of this file's own:
 * the functions killed mid-run, MinIO stopped mid-run, one event delivered three times at once,
 * events lost for good. The functions reach MinIO through a proxy that slows their reading of
 * uploads to 12 MiB/s (a slow network), so a 50 MB run lasts long enough to be hit; clients
 * upload to MinIO directly. Every scenario ends with each file ready and byte-identical, read
 * back over HTTP, and nothing else left in either bucket: no upload, no marker, no dead letter,
 * no open multipart upload.
 */

const LEASE_S = 6;
const MB = 1024 * 1024;
let stack: IsolatedStack;
let proxy: FaultProxy;
let client: Client;

beforeAll(async () => {
  stack = await startIsolatedStack(
    {
      STORAGE_PROCESSING_LEASE_SECONDS: String(LEASE_S),
      STORAGE_SWEEP_INTERVAL_SECONDS: '2',
      STORAGE_MAX_FILE_SIZE: String(64 * MB),
    },
    async (minio) => {
      proxy = await startFaultProxy({ host: '127.0.0.1', port: minio.port });
      proxy.slow(slowUploads, 12 * MB);
      return { STORAGE_PORT: String(proxy.port), STORAGE_PUBLIC_ENDPOINT: minio.endpoint };
    },
  );
  client = new Client(() => stack.product.api, await stack.token('alice'));
}, 180_000);
afterAll(async () => {
  await stack?.close();
  await proxy?.close();
});

/** `npm run redrive` as an operator runs it, against this stack's npm start. */
async function redriveCommand(): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['scripts/redrive.ts'], { env: { ...process.env, TRANSCRIBO_LAMBDA_PORT: String(stack.product.lambdaPort) } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** On failure, the product's log goes where the failure message says. */
function keepLogOnFailure(): void {
  onTestFailed(() => {
    const file = join(tmpdir(), `transcribo-faults-${Date.now()}.log`);
    writeFileSync(file, stack.product.output());
    process.stderr.write(`npm start's output: ${file}\n`);
  });
}

/** Processing reads uploads over a slow link (12 MiB/s), so a 50 MB run lasts long enough to be hit. */
const slowUploads = (req: IncomingMessage) => req.method === 'GET' && (req.url ?? '').includes('/iso-incoming/uploads/');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function statusOf(fileId: string): Promise<string | undefined> {
  return (await stack.ctx.manifests.read(fileId))?.manifest.status;
}

async function waitForStatus(fileId: string, status: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await statusOf(fileId)) !== status) {
    if (Date.now() > deadline) throw new Error(`${fileId} never reached ${status}`);
    await sleep(25);
  }
}

/** Ready, byte-identical over HTTP, and nothing of any file left but its object and manifest. */
async function expectStoredAndClean(files: Array<{ fileId: string; bytes: Buffer }>): Promise<void> {
  for (const { fileId, bytes } of files) {
    const seen: string[] = [];
    const info = await client.settled(fileId, { timeoutMs: 90_000, seen });
    expect(info).toMatchObject({ status: 'ready', size: bytes.length, sha256: sha256(bytes) });
    expect(await client.readBack(fileId, bytes.length)).toBe(sha256(bytes));
    // Nothing wrong was served on the way: only the statuses a file passes through.
    expect(seen.filter((s) => !['awaiting_upload', 'processing', 'ready'].includes(s))).toEqual([]);
  }
  // A dead run's open multipart upload goes at the next sweep after its lease: allow for one.
  const expected = files.flatMap(({ fileId }) => [`files/${fileId}`, `manifests/${fileId}.json`]).sort();
  const deadline = Date.now() + 20_000;
  let left = await stack.leftovers();
  while ((left.multipart.length > 0 || left.incoming.length > 0) && Date.now() < deadline) {
    await sleep(500);
    left = await stack.leftovers();
  }
  expect(left.incoming).toEqual([]);
  expect(left.multipart).toEqual([]);
  // usage/ is the ledger's own record of what is stored (test/lib/storage/usage-ledger.test.ts).
  expect(left.files.filter((k) => files.some((f) => k.includes(f.fileId)) && !k.startsWith('usage/')).sort()).toEqual(expected);
  expect(left.files.filter((k) => k.startsWith('pending/') || k.startsWith('dead-letters/'))).toEqual([]);
}

/** No answer of the API was a 5xx other than the ones a fault explains, or serverless-offline's own. */
function expectOnlyExplainedErrors(allowed: string[] = []): void {
  const unexpected = [...client.answers.keys()].filter(
    (kind) => !/^(200|201|204|206)$/.test(kind) && kind !== 'unreachable' && !allowed.includes(kind),
  );
  expect(unexpected).toEqual([]);
  client.answers.clear();
}

/** A 50 MB recording uploaded, with its run half a second into processing it. */
async function fiftyMegabytesBeingProcessed(): Promise<{ fileId: string; bytes: Buffer }> {
  keepLogOnFailure();
  const bytes = wav(50 * MB);
  const { fileId } = await client.upload(bytes);
  await waitForStatus(fileId, 'processing');
  await sleep(500);
  return { fileId, bytes };
}

/**
 * The sweep made these files ready. A file is ready before the sweep that stored it returns (it
 * still has other files, multipart debris and the usage ledger to see to), and npm start prints
 * the sweep's report only then: wait for the line rather than read it once.
 */
async function expectSweptReady(fileIds: string[]): Promise<void> {
  for (const fileId of fileIds) {
    await expect.poll(() => stack.product.output(), { timeout: 30_000, interval: 250 }).toMatch(new RegExp(`sweep: .*${fileId}: ready`));
  }
}

describe('fault runs against npm start on a real MinIO', { timeout: 180_000 }, () => {
  it('the functions killed (SIGKILL) while a 50 MB upload is processing, then restarted: the file ends ready', async () => {
    const { fileId, bytes } = await fiftyMegabytesBeingProcessed();
    await stack.product.kill();
    // The run died mid-way: its claim is all that is left of it.
    expect(await statusOf(fileId)).toBe('processing');
    await sleep(2000);
    await stack.restartProduct();
    await expectStoredAndClean([{ fileId, bytes }]);
    await expectSweptReady([fileId]);
    expectOnlyExplainedErrors();
  });

  it('MinIO stopped mid-processing and restarted on the same data: the file ends ready', async () => {
    const { fileId, bytes } = await fiftyMegabytesBeingProcessed();
    await stack.minio.halt('SIGKILL');
    // Meanwhile a client asking is told the storage is unreachable, and nothing else.
    const during = await client.call('GET', `/files/${fileId}`);
    expect(during.status).toBe(503);
    expect(((await during.json()) as { error: { type: string } }).error.type).toBe('StorageConnectionError');
    await sleep(6000);
    await stack.minio.resume();
    await expectStoredAndClean([{ fileId, bytes }]);
    expectOnlyExplainedErrors(['503 StorageConnectionError']);
  });

  it('the same event delivered three times at once: stored once', async () => {
    keepLogOnFailure();
    const bytes = wav(3 * MB);
    const { fileId } = await client.upload(bytes);
    const event = JSON.stringify(s3Event(stack.config.incomingBucket, incomingKey(fileId), { flavour: 'minio' }));
    const deliveries = await Promise.all(
      [1, 2, 3].map(() =>
        fetch(`http://127.0.0.1:${stack.env.TRANSCRIBO_EVENTS_PORT}/minio-events`, {
          method: 'POST',
          body: event,
          headers: { authorization: `Bearer ${stack.env.TRANSCRIBO_EVENTS_TOKEN}` },
        }),
      ),
    );
    expect(deliveries.map((d) => d.status)).toEqual([200, 200, 200]);
    await expectStoredAndClean([{ fileId, bytes }]);
    await sleep(1000);
    const stored = stack.product.output().match(new RegExp(`upload ${fileId}: ready`, 'g')) ?? [];
    expect(stored).toHaveLength(1);
    expectOnlyExplainedErrors();
  });

  it('a file that fails for good is dead-lettered, and npm run redrive stores it once the fault is gone', async () => {
    keepLogOnFailure();
    const bytes = wav(1 * MB);
    // Every write of this file's object is cut, as a full disk or a broken route would.
    let fileId = '';
    proxy.fail((req) => fileId !== '' && req.method !== 'GET' && (req.url ?? '').includes(`/files/${fileId}`));
    const created = await client.create(bytes);
    fileId = created.fileId;
    await sendToBucket(created, bytes);
    const failed = await client.settled(fileId, { timeoutMs: 90_000 });
    expect(failed).toMatchObject({ status: 'failed', reason: expect.stringMatching(/after 3 attempts/) });
    const letters = async () => (await stack.leftovers()).files.filter((k) => k.startsWith('dead-letters/'));
    expect((await letters()).length).toBeGreaterThanOrEqual(1);

    // While the fault lasts, a redrive keeps the letter and says so.
    const early = await redriveCommand();
    expect(early.code).toBe(1);
    expect(early.stdout).toContain(`${fileId}: failed`);

    proxy.fail(undefined);
    const fixed = await redriveCommand();
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect(fixed.stdout).toContain(`${fileId}: ready`);
    expect(await letters()).toEqual([]);
    await expectStoredAndClean([{ fileId, bytes }]);
    expectOnlyExplainedErrors();
  });

  it('a function that runs out of time answers the catalogue 504 through npm start, never a 200 with a stack', async () => {
    keepLogOnFailure();
    const bytes = wav(4 * MB);
    const { fileId } = await client.upload(bytes);
    await client.settled(fileId, { timeoutMs: 60_000 });
    // Its stored object now comes over a link so slow (64 KiB/s) that a 4 MiB read outlives the function's 29 s.
    proxy.slow((req) => req.method === 'GET' && (req.url ?? '').includes(`/files/${fileId}`), 64 * 1024);
    try {
      const started = Date.now();
      const response = await client.call('GET', `/files/${fileId}/content`, { headers: { range: `bytes=0-${bytes.length - 1}` } });
      const body = await response.text();
      expect(response.status, body).toBe(504);
      expectErrorBody(JSON.parse(body), 'StorageTimeoutError');
      expect(body).not.toMatch(/stack|\/work\/|node_modules|Lambda timeout/);
      // middy answers 3 s before the 29 s timeout, well before the gateway's own 32 s.
      expect(Date.now() - started).toBeLessThan(31_000);
    } finally {
      proxy.slow(slowUploads, 12 * MB);
    }
    expect(await client.readBack(fileId, bytes.length)).toBe(sha256(bytes));
    expectOnlyExplainedErrors(['504 StorageTimeoutError']);
  });

  it('events dropped entirely (webhook target down and its queue removed): the sweep finds the uploads', async () => {
    keepLogOnFailure();
    const files = [wav(200_000), wav(2 * MB), wav(5 * MB)].map((bytes) => ({ bytes, fileId: '' }));
    const creations = await Promise.all(files.map(({ bytes }) => client.create(bytes)));
    await stack.product.stop();
    for (const [i, created] of creations.entries()) {
      files[i]!.fileId = created.fileId;
      await sendToBucket(created, files[i]!.bytes);
    }
    // MinIO holds the events in its queue while nobody listens; then the queue is lost.
    const queued = () => readdirSync(stack.minio.queueDir, { recursive: true }).filter((f) => String(f).endsWith('.event'));
    const deadline = Date.now() + 10_000;
    while (queued().length < files.length && Date.now() < deadline) await sleep(200);
    expect(queued().length).toBeGreaterThanOrEqual(files.length);
    await stack.minio.halt('SIGTERM');
    rmSync(stack.minio.queueDir, { recursive: true, force: true });
    await stack.minio.resume();
    await stack.restartProduct();
    await expectStoredAndClean(files);
    await expectSweptReady(files.map((f) => f.fileId));
    expect(queued()).toEqual([]);
    expectOnlyExplainedErrors();
  });
});

