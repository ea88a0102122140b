import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { launchChromium, serveFolder } from '../support/browser.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';

/**
 * Uppy 6 as it is published (@uppy/core + @uppy/aws-s3 6.3.1, unmodified), with the adapter the
 * project ships in examples/uppy/, bundled here with esbuild and run in Debian's Chromium against
 * `npm start` on a MinIO of this file's own. Uppy sends every S3 request to MinIO itself; the test
 * watches them from the browser: a 60 MB recording goes up in parts, the network to MinIO is cut
 * after three parts, Uppy fails, and retryAll() resumes from ListParts without sending a stored
 * part again; a small one goes up as a single PUT. Both end ready and byte-identical.
 */

const MiB = 1024 * 1024;
const examples = resolve(import.meta.dirname, '..', '..', 'examples', 'uppy');
let stack: IsolatedStack;
let site: { origin: string; close(): Promise<void> };
let browser: Browser;
let token: string;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'transcribo-uppy-'));
  const served = join(work, 'site');
  // The README's one command, as an API call: the example's script and Uppy from node_modules.
  await build({ entryPoints: [join(examples, 'app.js')], bundle: true, format: 'esm', minify: true, outfile: join(served, 'dist', 'app.js'), logLevel: 'silent' });
  copyFileSync(join(examples, 'index.html'), join(served, 'index.html'));
  [stack, site, browser] = await Promise.all([startIsolatedStack(), serveFolder(served), launchChromium()]);
  token = await stack.token('uppy-user');
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
  await stack?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** One request the page sent to MinIO, as the browser saw it. */
interface S3Call {
  method: string;
  partNumber?: number;
  uploadId?: string;
  outcome: 'pending' | 'failed' | number;
}

interface Net {
  /** While on, every request to MinIO is aborted. */
  cut: boolean;
  /** The cut starts when a part after this one is sent. */
  cutAfterPart: number;
  /** Called for each part sent; true aborts it. */
  onPart?: (partNumber: number) => Promise<boolean>;
}

/** Every request the page sends to MinIO; while `cut` is on, each is aborted as a dead network would. */
async function watchMinio(page: Page) {
  const calls: S3Call[] = [];
  const byRequest = new Map<Request, S3Call>();
  const net: Net = { cut: false, cutAfterPart: Infinity };
  const isMinio = (url: string) => url.startsWith(`${stack.minio.endpoint}/`);
  page.on('request', (request) => {
    if (!isMinio(request.url())) return;
    const query = new URL(request.url()).searchParams;
    const call: S3Call = { method: request.method(), outcome: 'pending' };
    if (query.has('partNumber')) call.partNumber = Number(query.get('partNumber'));
    if (query.has('uploadId')) call.uploadId = query.get('uploadId')!;
    calls.push(call);
    byRequest.set(request, call);
  });
  page.on('response', (response) => {
    const call = byRequest.get(response.request());
    if (call) call.outcome = response.status();
  });
  page.on('requestfailed', (request) => {
    const call = byRequest.get(request);
    if (call) call.outcome = 'failed';
  });
  await page.route(
    (url) => isMinio(url.href),
    async (route) => {
      const partNumber = Number(new URL(route.request().url()).searchParams.get('partNumber') ?? 0);
      const part = route.request().method() === 'PUT' && partNumber > 0;
      if (part && partNumber > net.cutAfterPart) net.cut = true;
      if (net.cut || (part && (await net.onPart?.(partNumber)))) return route.abort('internetdisconnected');
      return route.continue();
    },
  );
  /** The calls so far, once the browser has reported how each ended (its events come a moment later). */
  const settledCalls = async () => {
    await expect.poll(() => calls.filter((c) => c.outcome === 'pending').length, { timeout: 10_000 }).toBe(0);
    return [...calls];
  };
  return { calls: settledCalls, net };
}

async function openPage(): Promise<{ page: Page; calls: () => Promise<S3Call[]>; net: Net }> {
  const page = await browser.newPage();
  const pageLog: string[] = [];
  page.on('console', (message) => pageLog.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => pageLog.push(`pageerror: ${error.message}`));
  onTestFailed(async () => {
    process.stderr.write(`page console:\n${pageLog.join('\n')}\npage log:\n${await page.textContent('#log').catch(() => '')}\n`);
  });
  const watched = await watchMinio(page);
  await page.goto(`${site.origin}/index.html?api=${encodeURIComponent(stack.product.api)}&token=${token}`);
  await page.waitForFunction(() => 'uppy' in globalThis);
  return { page, ...watched };
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${stack.product.api}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });
}

async function settled(fileId: string, timeoutMs = 45_000): Promise<{ status: string; size: number; sha256: string; filename: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await (await api(`/files/${fileId}`)).json()) as { status: string; size: number; sha256: string; filename: string };
    if (!['awaiting_upload', 'processing'].includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`${fileId} still ${info.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Ready, the SHA-256 the product recorded is the source's, and ranges read back are the source's bytes. */
async function expectStoredAsIs(fileId: string, bytes: Buffer, ranges: Array<[number, number]>): Promise<void> {
  const info = await settled(fileId);
  expect(info).toMatchObject({ status: 'ready', size: bytes.length, sha256: sha256(bytes) });
  for (const [start, end] of ranges) {
    const response = await api(`/files/${fileId}/content`, { headers: { range: `bytes=${start}-${end}` } });
    expect(response.status).toBe(206);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes.subarray(start, end + 1))).toBe(true);
  }
}

/** What Uppy's result says of each file, made serialisable. */
type Outcome = { name: string; fileId?: string; key?: string; location?: string; error?: string };

describe('Uppy 6 (@uppy/core + @uppy/aws-s3 6.3.1) with examples/uppy/transcribo-uppy.js, in Chromium', { timeout: 90_000 }, () => {
  it('multipart: a 60 MB WAV, the network to MinIO cut after 3 parts, resumed by retryAll() from ListParts; ready and byte-identical', async () => {
    const bytes = wav(60_000_000);
    const source = join(work, 'interview.wav');
    writeFileSync(source, bytes);
    const { page, calls, net } = await openPage();
    net.cutAfterPart = 3;

    await page.setInputFiles('#file', source);
    await page.click('#upload');
    // Part 4 never reaches MinIO: Uppy retries it, then gives up with an upload error.
    await page.waitForFunction(() => (globalThis as any).uppy.getFiles()[0]?.error, null, { timeout: 45_000 });
    const failed = await page.evaluate(() => {
      const [file] = (globalThis as any).uppy.getFiles();
      return { fileId: file.meta.fileId as string, partSize: file.meta.partSize as number, uploadId: file.s3Multipart?.uploadId as string, error: String(file.error) };
    });
    expect(failed.error).toMatch(/network/i);
    expect(failed.partSize).toBe(8 * MiB);
    expect(failed.uploadId).toBeTruthy();
    const cut = await calls();
    const ok = (c: S3Call) => c.outcome === 200;
    // Up to the cut: one create, parts 1-3 stored once each, part 4 tried (and aborted) only.
    expect(cut.filter((c) => c.method === 'POST' && c.uploadId === undefined).map((c) => c.outcome)).toEqual([200]);
    expect(cut.filter((c) => c.method === 'PUT' && ok(c)).map((c) => c.partNumber)).toEqual([1, 2, 3]);
    expect(cut.filter((c) => c.method === 'PUT' && !ok(c)).every((c) => c.partNumber === 4 && c.outcome === 'failed')).toBe(true);
    expect(cut.some((c) => c.partNumber === 4)).toBe(true);
    expect(cut.every((c) => c.uploadId === undefined || c.uploadId === failed.uploadId)).toBe(true);
    expect(((await (await api(`/files/${failed.fileId}`)).json()) as { status: string }).status).toBe('awaiting_upload');

    // The network is back; the app's retry (its "Retry failed" button) resumes.
    net.cut = false;
    net.cutAfterPart = Infinity;
    const result = await page.evaluate(async () => {
      const { successful, failed } = await (globalThis as any).uppy.retryAll();
      const plain = (files: any[]) => files.map((f) => ({ name: f.name, fileId: f.meta.fileId, key: f.response?.body?.key, location: f.response?.body?.location, error: f.error ?? undefined }));
      return { successful: plain(successful), failed: plain(failed) };
    });
    expect(result.failed).toEqual([]);
    expect(result.successful).toHaveLength(1);
    const [done] = result.successful as [Outcome];
    expect(done.fileId).toBe(failed.fileId);
    expect(done.key).toBe(`uploads/${failed.fileId}`);
    expect(done.location).toMatch(new RegExp(`/uploads/${failed.fileId}$`));

    const all = await calls();
    const after = all.slice(cut.length);
    // It resumed: first it asked MinIO which parts it holds, then sent only the others, once each.
    expect(after[0]).toMatchObject({ method: 'GET', uploadId: failed.uploadId, outcome: 200 });
    expect(after.filter((c) => c.method === 'PUT').map((c) => [c.partNumber, c.outcome])).toEqual([4, 5, 6, 7, 8].map((n) => [n, 200]));
    expect(after.at(-1)).toMatchObject({ method: 'POST', uploadId: failed.uploadId, outcome: 200 });
    for (const n of [1, 2, 3]) expect(all.filter((c) => c.method === 'PUT' && c.partNumber === n)).toHaveLength(1);

    await expectStoredAsIs(failed.fileId, bytes, [
      [0, MiB - 1],
      [3 * 8 * MiB - 1000, 3 * 8 * MiB + 1000], // across the cut: the end of part 3, the start of part 4
      [bytes.length - 4096, bytes.length - 1],
    ]);
    const left = await stack.leftovers();
    expect(left.multipart).toEqual([]);
    expect(left.incoming).toEqual([]);
    await page.close();
  });

  it('offline: the browser goes offline during part 2 of a 20 MB WAV; back online, the adapter resumes by itself', async () => {
    const bytes = wav(20_000_000);
    const { page, calls, net } = await openPage();
    // The "network cut" here is the browser's own: offline, as a phone losing its signal.
    let wentOffline = false;
    net.onPart = async (partNumber) => {
      if (partNumber !== 2 || wentOffline) return false;
      wentOffline = true;
      await page.context().setOffline(true);
      return true;
    };
    const source = join(work, 'call.wav');
    writeFileSync(source, bytes); // a path, not a buffer: Playwright would ship 20 MB through the protocol
    await page.setInputFiles('#file', source);
    await page.click('#upload');
    await page.waitForFunction(() => (globalThis as any).uppy.getFiles()[0]?.error, null, { timeout: 30_000 });
    const fileId = await page.evaluate(() => (globalThis as any).uppy.getFiles()[0].meta.fileId as string);
    const cut = await calls();
    expect(cut.filter((c) => c.method === 'PUT' && c.outcome === 200).map((c) => c.partNumber)).toEqual([1]);

    // Nothing but the browser coming back online: no retry call from the app.
    await page.context().setOffline(false);
    await page.waitForFunction(() => (globalThis as any).document.getElementById('status')?.textContent === 'uploaded', null, { timeout: 30_000 });
    const all = await calls();
    const after = all.slice(cut.length);
    expect(after[0]).toMatchObject({ method: 'GET', outcome: 200 });
    expect(after.filter((c) => c.method === 'PUT').map((c) => [c.partNumber, c.outcome])).toEqual([[2, 200], [3, 200]]);
    expect(all.filter((c) => c.method === 'PUT' && c.partNumber === 1)).toHaveLength(1);
    await expectStoredAsIs(fileId, bytes, [[8 * MiB - 10, 8 * MiB + 10]]);
    await page.close();
  });

  it('single request: a 2 MB WAV goes up as one signed PUT, ready and byte-identical; a file the API refuses fails alone', async () => {
    const bytes = wav(2_000_000);
    const refused = wav(100_000);
    const { page, calls } = await openPage();
    await page.setInputFiles('#file', [
      { name: 'memo.wav', mimeType: 'audio/wav', buffer: bytes },
      { name: 'not-audio.wav', mimeType: 'video/mp4', buffer: refused },
    ]);
    const result: { successful: Outcome[]; failed: Outcome[] } = await page.evaluate(async () => {
      const { successful, failed } = await (globalThis as any).uppy.upload();
      const plain = (files: any[]) => files.map((f) => ({ name: f.name, fileId: f.meta.fileId, key: f.response?.body?.key, location: f.response?.body?.location, error: f.error ?? undefined }));
      return { successful: plain(successful), failed: plain(failed) };
    });
    expect(result.successful.map((f) => f.name)).toEqual(['memo.wav']);
    const [done] = result.successful as [Outcome];
    expect(done.fileId).toMatch(/^[0-9a-f-]{36}$/);
    expect(done.key).toBe(`uploads/${done.fileId}`);
    // The refused file failed with the API's own message and never reached MinIO.
    expect(result.failed).toMatchObject([{ name: 'not-audio.wav', fileId: undefined }]);
    expect(result.failed[0]!.error).toMatch(/^Content type "video\/mp4" does not fit a \.wav file/);
    expect((await calls()).map((c) => [c.method, c.partNumber, c.uploadId, c.outcome])).toEqual([['PUT', undefined, undefined, 200]]);

    await expectStoredAsIs(done.fileId!, bytes, [
      [0, 99],
      [1_000_000, 1_999_999],
    ]);
    expect((await settled(done.fileId!)).filename).toBe('memo.wav');
    await page.close();
  });
});
