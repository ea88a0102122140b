import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { ListMultipartUploadsCommand, ListPartsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { ensureJq, findCurl, requireCurl } from '../support/jq.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';

/**
 * The README's curl recipe for resumable uploads, run exactly as written, the way a phone's
 * upload is cut: killed half-way, then run again with the same FILE_ID. curl goes through a
 * shim that logs each call and holds uploads to a phone-like rate, so the cut lands mid-file
 * and the second run's uploads can be counted.
 */

const MiB = 1024 * 1024;
const OWNER = 'curl-user';
let stack: IsolatedStack;
let dir: string;
let curl: string | undefined;
/** What goes first on the recipe's PATH: the curl shim, then (when the system has none) a jq. */
let binDirs: string;

const recipe = (() => {
  const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const match = /<!-- tested by test\/e2e\/curl-multipart\.test\.ts -->\n```sh\n([\s\S]*?)```/.exec(readme);
  if (!match) throw new Error('README lost its curl recipe block');
  return match[1]!;
})();

beforeAll(async () => {
  // A missing curl fails the test itself (below), with the reason, rather than this hook.
  curl = findCurl();
  const [started, jq] = await Promise.all([startIsolatedStack({ STORAGE_MAX_FILE_SIZE: String(128 * MiB) }), ensureJq()]);
  stack = started;
  dir = mkdtempSync(join(tmpdir(), 'transcribo-curl-'));
  binDirs = jq.binDir ? `${dir}:${jq.binDir}` : dir;
  const found = spawnSync('bash', ['-c', 'command -v jq'], { env: { PATH: `${binDirs}:${process.env.PATH}` }, encoding: 'utf8' });
  expect(found.stdout.trim(), `the recipe must run the ${jq.source} jq`).toBe(jq.path);
  if (curl) {
    writeFileSync(
      join(dir, 'curl'),
      `#!/usr/bin/env bash\necho "$*" >> "$CURL_LOG"\nfor a in "$@"; do [ "$a" = -T ] && exec ${curl} --limit-rate 20M "$@"; done\nexec ${curl} "$@"\n`,
    );
    chmodSync(join(dir, 'curl'), 0o755);
  }
}, 180_000);
afterAll(() => stack?.close());

function runRecipe(env: Record<string, string>, log: string) {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', recipe], {
    env: { PATH: `${binDirs}:${process.env.PATH}`, HOME: process.env.HOME ?? dir, CURL_LOG: log, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const done = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, done, output: () => out };
}

const uploadsOf = (log: string) => readFileSync(log, 'utf8').split('\n').filter((line) => /(^| )-T /.test(line)).length;

describe('the README curl recipe, cut half-way and resumed', { timeout: 240_000 }, () => {
  it('a 70 MB WAV: killed after some parts, the second run sends only the rest, and the file ends ready and identical', async () => {
    requireCurl();
    const bytes = wav(70 * MiB);
    const file = join(dir, 'interview.wav');
    writeFileSync(file, bytes);
    const env = { API: stack.product.api, TOKEN: await stack.token(OWNER), FILE: file };

    // First run: wait until the storage server holds a few parts, then kill it as a phone kills an app.
    const first = runRecipe(env, join(dir, 'first.log'));
    let fileId: string | undefined;
    let held = 0;
    const deadline = Date.now() + 60_000;
    while (held < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      const open = (await stack.admin.send(new ListMultipartUploadsCommand({ Bucket: stack.config.incomingBucket }))).Uploads ?? [];
      const upload = open[0];
      if (!upload) continue;
      fileId = upload.Key!.replace('uploads/', '');
      held = ((await stack.admin.send(new ListPartsCommand({ Bucket: stack.config.incomingBucket, Key: upload.Key, UploadId: upload.UploadId }))).Parts ?? []).length;
    }
    try {
      process.kill(-first.child.pid!, 'SIGKILL');
    } catch {
      throw new Error(`the recipe ended before it could be cut: ${first.output()}`);
    }
    await first.done;
    expect(fileId, first.output()).toBeDefined();
    const { partCount } = await stack.service.listParts(OWNER, fileId!);
    const survived = (await stack.service.listParts(OWNER, fileId!)).parts.length;
    expect(partCount).toBe(9); // 70 MiB in 8 MiB parts
    expect(survived).toBeGreaterThanOrEqual(3);
    expect(survived, 'the cut came too late to prove anything').toBeLessThan(partCount);
    expect((await stack.service.getFileInfo(OWNER, fileId!)).status).toBe('awaiting_upload');

    // Second run, same FILE_ID: only the missing parts go.
    const secondLog = join(dir, 'second.log');
    const second = runRecipe({ ...env, FILE_ID: fileId! }, secondLog);
    expect(await second.done, second.output()).toBe(0);
    expect(second.output().trim()).toBe(`${fileId} ready`);
    expect(uploadsOf(secondLog)).toBe(partCount - survived);

    const info = await stack.service.getFileInfo(OWNER, fileId!);
    expect(info).toMatchObject({ status: 'ready', size: bytes.length, sha256: sha256(bytes), contentType: 'audio/wav' });
    const stored = await buffer((await stack.service.getFile(OWNER, fileId!)).stream);
    expect(stored.equals(bytes)).toBe(true);
    expect((await stack.leftovers()).multipart).toEqual([]);

    // Run once more on a ready file: nothing is sent, and it says so.
    const thirdLog = join(dir, 'third.log');
    const third = runRecipe({ ...env, FILE_ID: fileId! }, thirdLog);
    expect(await third.done, third.output()).toBe(0);
    expect(third.output().trim()).toBe(`${fileId} ready`);
    expect(uploadsOf(thirdLog)).toBe(0);

    // And back with curl, as a player or a script would: a playback link, no header, a range in the middle.
    const minted = await fetch(`${stack.product.api}/files/${fileId}/links`, { method: 'POST', headers: { authorization: `Bearer ${env.TOKEN}` } });
    const { url } = (await minted.json()) as { url: string };
    const got = spawnSync(curl!, ['-sS', '-f', '-r', '35000000-35000999', url], { encoding: 'buffer' });
    expect(got.status, got.stderr.toString()).toBe(0);
    expect(got.stdout.equals(bytes.subarray(35_000_000, 35_001_000))).toBe(true);
  });
});
