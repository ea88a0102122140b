import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mp3, sha256, wav } from '../support/audio-fixtures.ts';
import { ApiClient, expectErrorBody } from '../support/api-client.ts';
import { launchChromium, serveFolder } from '../support/browser.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';

/**
 * A browser as users meet the product, in Debian's headless Chromium, against `npm start` on a
 * MinIO of this file's own (its webhook target feeds one npm start at a time): the example page
 * uploads a 60 MB recording in parts (one part's first attempt cut off; another upload resumed
 * after its tab was closed), a small one in one form, and a fake one that ends rejected; it reads
 * what it uploaded back by ranges and plays it from a playback link. A bare `<audio src=link>`
 * plays and seeks the 60 MB fetching a fraction of it, with no header; expired and tampered
 * links are refused.
 */

// What the functions that run in the page use (the project's lib has no DOM, and should not get one).
declare const document: { getElementById(id: string): any; body: unknown };
declare const window: Record<string, any>;
declare const MutationObserver: new (callback: () => void) => { observe(target: unknown, options: object): void };
interface AudioElement {
  src: string;
  muted: boolean;
  hidden: boolean;
  duration: number;
  currentTime: number;
  paused: boolean;
  error: { code: number; message: string } | null;
  onerror: (() => void) | null;
  onloadedmetadata: (() => void) | null;
  play(): Promise<void>;
  addEventListener(event: string, listener: () => void, options?: { once: boolean }): void;
}

const SIZE = 60_000_000; // 16 kHz mono 16-bit: 32,000 bytes a second
const DURATION = (SIZE - 44) / 32_000; // ≈ 1875 s
const MiB = 1024 * 1024;

let stack: IsolatedStack;
let site: { origin: string; close(): Promise<void> };
let browser: Browser;
let alice: ApiClient;
let folder: string;
let recording: { path: string; bytes: Buffer };
/** The recording the page uploaded (test a), played by the others. */
let uploaded: string | undefined;

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'transcribo-browser-'));
  const bytes = wav(SIZE);
  // Playwright hands a browser at most 50 MB as a buffer: larger files go by path, as a user picks them.
  recording = { path: join(folder, 'long interview.wav'), bytes };
  writeFileSync(recording.path, bytes);
  [stack, site, browser] = await Promise.all([
    startIsolatedStack(),
    serveFolder(resolve(import.meta.dirname, '..', '..', 'examples')),
    launchChromium(),
  ]);
  alice = new ApiClient(stack.product.api, await stack.token('alice'));
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await site?.close();
  await stack?.close();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

async function playbackLink(fileId: string, expiresIn?: number): Promise<string> {
  const response = await alice.request('POST', `/files/${fileId}/links`, { body: JSON.stringify(expiresIn === undefined ? {} : { expiresIn }) });
  expect(response.status, await response.clone().text()).toBe(201);
  return ((await response.json()) as { url: string }).url;
}

/** The page's fileId, or (when test a did not run or failed) the same recording uploaded over plain HTTP. */
async function readyRecording(): Promise<string> {
  if (uploaded) return uploaded;
  const { bytes } = recording;
  const created = await alice.create({ filename: 'long interview.wav', contentType: 'audio/wav', size: bytes.length, uploadMethod: 'MULTIPART' });
  const { partSize, partCount } = created.upload;
  const numbers = Array.from({ length: partCount }, (_, i) => i + 1);
  const signed = (await (await alice.request('POST', `/files/${created.fileId}/parts`, { body: JSON.stringify({ partNumbers: numbers }) })).json()) as {
    parts: Array<{ partNumber: number; url: string }>;
  };
  for (const part of signed.parts) {
    const body = bytes.subarray((part.partNumber - 1) * partSize, part.partNumber * partSize);
    expect((await fetch(part.url, { method: 'PUT', body })).status).toBe(200);
  }
  expect((await alice.request('POST', `/files/${created.fileId}/complete`)).status).toBe(202);
  expect((await alice.settled(created.fileId, 60_000)).status).toBe('ready');
  return (uploaded = created.fileId);
}

/** The example page in a fresh browser context, as a user opens it. */
async function examplePage(context?: BrowserContext): Promise<Page> {
  const page = await (context ?? (await browser.newContext())).newPage();
  await page.goto(`${site.origin}/browser-upload.html?api=${encodeURIComponent(stack.product.api)}&token=${alice.token}`);
  return page;
}

/** Waits for the page to finish (or give up) and returns what `#status` says. */
async function outcome(page: Page, timeout = 30_000): Promise<Record<string, string | undefined>> {
  await page.waitForFunction(
    () => ['verified', 'mismatch', 'rejected', 'failed', 'expired', 'error'].includes(document.getElementById('status').textContent),
    null,
    { timeout },
  );
  return page.$eval('#status', (el) => ({ text: el.textContent ?? undefined, ...(el as unknown as { dataset: Record<string, string> }).dataset }));
}

/** A page with nothing but an `<audio>` element, as a player embedded in another app would have. */
async function barePlayer(): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.setContent('<!doctype html><audio id="player" preload="metadata"></audio>');
  return page;
}

describe('in headless Chromium, against npm start on a MinIO of its own', { timeout: 90_000 }, () => {
  it('the example page uploads 60 MB in parts with progress, resumes a part cut off, ends ready, verifies by ranges, plays from a link', async () => {
    const page = await examplePage();
    // A network slower than loopback (30 MB/s up), so the bar has time to move inside parts.
    await (await page.context().newCDPSession(page)).send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 30_000_000,
    });

    // The network as the page used it: part PUTs to the bucket (how many at once), ranges read back.
    const parts: number[] = [];
    let open = 0;
    let mostOpen = 0;
    const ranges: string[] = [];
    const isPart = (request: Request) => request.method() === 'PUT' && /[?&]partNumber=\d+/.test(request.url());
    page.on('request', (request) => {
      if (isPart(request)) {
        parts.push(Number(/[?&]partNumber=(\d+)/.exec(request.url())![1]));
        mostOpen = Math.max(mostOpen, ++open);
      }
      if (request.method() === 'GET' && request.url().endsWith('/content')) ranges.push(request.headers().range ?? '(whole)');
    });
    const closed = (request: Request) => void (isPart(request) && open--);
    page.on('requestfinished', closed);
    page.on('requestfailed', closed);
    // A flaky network: part 2's first attempt is cut off. Only that part is sent again.
    let cut = false;
    await page.route(/[?&]partNumber=2(&|$)/, (route) => {
      if (route.request().method() !== 'PUT' || cut) return route.fallback();
      cut = true;
      return route.abort('connectionreset');
    });
    // Every value the progress bar shows, with the phase it was shown in.
    await page.evaluate(() => {
      const seen: Array<[string, number]> = (window.seen = []);
      const bar = document.getElementById('progress');
      const status = document.getElementById('status');
      new MutationObserver(() => seen.push([status.textContent, bar.value])).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
    });

    const started = Date.now();
    await page.setInputFiles('#file', recording.path);
    await page.click('#upload');
    const state = await outcome(page, 80_000);
    const log = (await page.textContent('#log')) ?? '';
    process.stdout.write(`browser page: 60 MB uploaded, verified and playable in ${Date.now() - started} ms\n${log}`);
    expect(state, log).toMatchObject({ text: 'verified', method: 'multipart', verified: 'true' });
    const fileId = state.fileId!;

    // Multipart, 2-3 parts at a time; part 2 went twice, every other part once.
    const info = await alice.info(fileId);
    expect(info).toMatchObject({ status: 'ready', size: SIZE, sha256: sha256(recording.bytes) });
    const partCount = Math.ceil(SIZE / (8 * MiB));
    expect(cut).toBe(true);
    expect(parts.toSorted((a, b) => a - b)).toEqual([1, 2, ...Array.from({ length: partCount - 1 }, (_, i) => i + 2)]);
    expect(mostOpen).toBeGreaterThanOrEqual(2);
    expect(mostOpen).toBeLessThanOrEqual(3);
    expect(log).toMatch(/part 2: .*again in/);

    // The bar moved through many values while uploading, and ended full.
    const seen: Array<[string, number]> = await page.evaluate(() => window.seen);
    const uploading = [...new Set(seen.filter(([phase]) => phase === 'uploading').map(([, value]) => value))];
    // ...and not only as whole parts landed: it shows the bytes of the parts on their way.
    const lastPart = SIZE - (partCount - 1) * 8 * MiB;
    const wholeParts = (v: number) =>
      Array.from({ length: partCount }, (_, k) => [k * 8 * MiB, k * 8 * MiB + lastPart]).some((sums) => sums.some((sum) => Math.abs(v * SIZE - sum) < 1));
    const partial = uploading.filter((v) => v > 0 && v < 1 && !wholeParts(v));
    process.stdout.write(`progress bar: ${uploading.length} distinct values while uploading, ${partial.length} inside parts\n`);
    expect(uploading.filter((v) => v > 0 && v < 1).length, JSON.stringify(uploading)).toBeGreaterThanOrEqual(5);
    expect(partial.length, JSON.stringify(uploading)).toBeGreaterThanOrEqual(3);
    expect(uploading).toContain(1);

    // Read back by ranges of at most 4 MiB, never whole; all of them compared.
    expect(ranges).not.toContain('(whole)');
    expect(ranges.length).toBe(Math.ceil(SIZE / (4 * MiB)));
    for (const range of ranges) {
      const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(range)!;
      expect(Number(b) - Number(a) + 1).toBeLessThanOrEqual(4 * MiB);
    }
    expect(log).toContain(`read back ${SIZE} bytes in ${ranges.length} ranges, identical`);

    // The player holds a playback link, knows the duration, and plays.
    const player = await page.$eval('#player', async (audio: AudioElement) => {
      audio.muted = true;
      await audio.play();
      const from = audio.currentTime;
      await new Promise((r) => setTimeout(r, 700));
      return { src: audio.src, duration: audio.duration, played: audio.currentTime - from, hidden: audio.hidden };
    });
    expect(player.src.startsWith(`${stack.product.api}/files/${fileId}/content?token=`)).toBe(true);
    expect(player.hidden).toBe(false);
    expect(player.duration).toBeCloseTo(DURATION, 0);
    expect(player.played).toBeGreaterThan(0.2);
    await page.screenshot({ path: join(tmpdir(), 'transcribo-browser-upload.png') });
    uploaded = fileId;
    await page.context().close();
  });

  it('the example page resumes a multipart upload after the tab was closed mid-way, from the parts already stored', async () => {
    const context = await browser.newContext();
    const partOf = (request: Request) => (request.method() === 'PUT' ? Number(/[?&]partNumber=(\d+)/.exec(request.url())?.[1] ?? 0) : 0);

    // First visit: parts 1-3 land, then the network hangs on the rest and the tab is closed.
    const first = await examplePage(context);
    let landed = 0;
    first.on('requestfinished', (request) => void (partOf(request) > 0 && landed++));
    await first.route(/[?&]partNumber=\d+/, (route) => (partOf(route.request()) > 3 ? new Promise<void>(() => undefined) : route.fallback()));
    await first.setInputFiles('#file', recording.path);
    await first.click('#upload');
    await expect.poll(() => landed, { timeout: 30_000 }).toBe(3);
    const fileId = await first.$eval('#status', (el) => (el as unknown as { dataset: Record<string, string> }).dataset.fileId!);
    await first.close();

    // Second visit, same file picked again: only the missing parts are sent, into the same file.
    const second = await examplePage(context);
    const sent: number[] = [];
    second.on('request', (request) => void (partOf(request) > 0 && sent.push(partOf(request))));
    await second.setInputFiles('#file', recording.path);
    await second.click('#upload');
    const state = await outcome(second, 60_000);
    const log = (await second.textContent('#log')) ?? '';
    expect(state, log).toMatchObject({ text: 'verified', fileId, verified: 'true' });
    const partCount = Math.ceil(SIZE / (8 * MiB));
    // Parts 1-3 landed before the tab closed; a hung part can still land as the tab goes (seen under
    // load: 4 of 8), so the page is held to what the storage server says it holds, not to 3.
    const held = Number(new RegExp(`resuming ${fileId}: (\\d+) of ${partCount} parts already stored`).exec(log)?.[1]);
    expect(held, log).toBeGreaterThanOrEqual(3);
    expect(new Set(sent).size).toBe(partCount - held);
    expect(sent.every((n) => n > 3 && n <= partCount)).toBe(true);
    expect(await alice.info(fileId)).toMatchObject({ status: 'ready', size: SIZE, sha256: sha256(recording.bytes) });
    await context.close();
  });

  it('the example page sends a small recording in one presigned form, reads the ETag, verifies it and plays it', async () => {
    const page = await examplePage();
    const bytes = wav(180_000);
    await page.setInputFiles('#file', { name: 'voice memo.wav', mimeType: 'audio/wav', buffer: bytes });
    await page.click('#upload');
    const state = await outcome(page);
    const log = (await page.textContent('#log')) ?? '';
    expect(state, log).toMatchObject({ text: 'verified', method: 'single', verified: 'true' });
    // The ETag is readable from the page: CORS exposes it, as multipart uploads from browsers need.
    expect(log).toMatch(/uploaded in one form, ETag "?[0-9a-f]{32}/);
    expect(log).toContain(`read back ${bytes.length} bytes in 1 range, identical`);
    expect(await alice.info(state.fileId!)).toMatchObject({ status: 'ready', sha256: sha256(bytes) });
    expect(await page.$eval('#player', (audio: AudioElement) => audio.duration)).toBeCloseTo((bytes.length - 44) / 32_000, 1);
    await page.context().close();
  });

  it('the example page shows a rejected upload with its reason', async () => {
    const page = await examplePage();
    await page.setInputFiles('#file', { name: 'not really.wav', mimeType: 'audio/wav', buffer: mp3(50_000) });
    await page.click('#upload');
    const state = await outcome(page);
    expect(state).toMatchObject({ text: 'rejected', method: 'single' });
    expect(state.reason).toMatch(/mp3/);
    expect(state.verified).toBeUndefined();
    await page.context().close();
  });

  it('a bare <audio src=link> plays 60 MB and seeks to the middle, fetching a fraction of it, with no header', async () => {
    const fileId = await readyRecording();
    const link = await playbackLink(fileId);
    const page = await barePlayer();
    // Every request for the link, with what was asked and what the server said it served.
    const fetched: Array<Promise<{ range?: string; authorization?: string; status?: number; contentRange?: string }>> = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(`${stack.product.api}/files/${fileId}/content`)) return;
      fetched.push(
        Promise.all([request.allHeaders(), request.response()]).then(([headers, response]) => ({
          range: headers.range,
          authorization: headers.authorization,
          status: response?.status(),
          contentRange: response?.headers()['content-range'],
        })),
      );
    });

    const result = await page.$eval(
      '#player',
      async (audio: AudioElement, src) => {
        const failed = () => new Error(`MediaError ${audio.error?.code}: ${audio.error?.message}`);
        const once = (event: string) =>
          new Promise<void>((resolve, reject) => {
            audio.addEventListener(event, () => resolve(), { once: true });
            audio.addEventListener('error', () => reject(failed()), { once: true });
          });
        audio.muted = true;
        const loaded = once('loadedmetadata');
        audio.src = src;
        await loaded;
        const duration = audio.duration;
        await audio.play();
        const target = duration / 2;
        const seeked = once('seeked');
        const asked = performance.now();
        audio.currentTime = target;
        await seeked;
        const seekMs = performance.now() - asked;
        const landed = audio.currentTime;
        // And it plays on from there.
        await new Promise((r) => setTimeout(r, 1000));
        return { duration, target, landed, seekMs, after: audio.currentTime, paused: audio.paused };
      },
      link,
    );
    const responses = await Promise.all(fetched);
    await page.context().close();

    expect(result.duration).toBeCloseTo(DURATION, 0);
    expect(Math.abs(result.landed - result.target)).toBeLessThan(1.5);
    expect(result.paused).toBe(false);
    expect(result.after).toBeGreaterThan(result.landed + 0.2);

    // Every request was a range answered 206 with at most 4 MiB, none carried a header of ours;
    // what Content-Range says was served bounds what crossed the network.
    expect(responses.length).toBeGreaterThan(0);
    let served = 0;
    for (const r of responses) {
      expect(r.authorization).toBeUndefined();
      expect(r.range).toMatch(/^bytes=\d+-\d*$/);
      if (r.status === undefined) continue; // cancelled by the player before any answer
      expect(r.status).toBe(206);
      const [, a, b, total] = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(r.contentRange ?? '')!;
      expect(Number(total)).toBe(SIZE);
      served += Number(b) - Number(a) + 1;
    }
    const middle = 44 + Math.floor(result.target) * 32_000;
    const starts = responses.map((r) => Number(/^bytes=(\d+)/.exec(r.range!)![1]));
    process.stdout.write(
      `bare player: ${responses.length} requests (${responses.map((r) => r.range).join(', ')}), ${(served / 1e6).toFixed(1)} MB served of ${SIZE / 1e6} MB; seek took ${result.seekMs.toFixed(0)} ms, landed at ${result.landed.toFixed(2)} s for ${result.target.toFixed(2)} s\n`,
    );
    expect(served).toBeLessThan(20_000_000);
    expect(starts.some((start) => Math.abs(start - middle) < 2 * MiB)).toBe(true);
  });

  it('refuses an expired or a tampered link: the <audio> element reports a MediaError, fetch a 401', async () => {
    const fileId = await readyRecording();
    const expired = await playbackLink(fileId, 1);
    const fresh = await playbackLink(fileId);
    const token = new URL(fresh).searchParams.get('token')!;
    const at = token.length - 20; // inside the signature
    const tampered = fresh.replace(token, token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1));
    await new Promise((r) => setTimeout(r, 2100));

    const page = await barePlayer();
    for (const [name, url, message] of [
      ['expired', expired, /expired/],
      ['tampered', tampered, /not valid/],
    ] as const) {
      const seen = await page.$eval(
        '#player',
        async (audio: AudioElement, src) => {
          const outcome = new Promise<string>((resolve) => {
            audio.onerror = () => resolve(`MediaError ${audio.error?.code}`);
            audio.onloadedmetadata = () => resolve('loaded');
          });
          audio.src = src;
          const media = await outcome;
          const response = await fetch(src);
          return { media, status: response.status, body: (await response.json()) as { error: { message: string } } };
        },
        url,
      );
      expect(seen.media, name).toMatch(/^MediaError [1-4]$/);
      expect(seen.status, name).toBe(401);
      expectErrorBody(seen.body, 'UnauthorizedError');
      expect(seen.body.error.message, name).toMatch(message);
    }
    await page.context().close();
    // The same link, untampered and in time, still plays: the refusals were the link's, not the file's.
    const fine = await fetch(fresh, { headers: { range: 'bytes=0-99' } });
    expect(fine.status).toBe(206);
    expect(Buffer.from(await fine.arrayBuffer()).equals(recording.bytes.subarray(0, 100))).toBe(true);
  });
});
