import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { ApiClient } from '../support/api-client.ts';
import { sendUpload } from '../support/http-client.ts';
import { getFreePort } from '../../scripts/shared/ports.ts';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { startProduct, type RunningProduct } from '../support/running-product.ts';

/**
 * The README's first command on a machine with nothing configured: `npm start` brings up the
 * embedded emulator, generates local secrets, and the client journey works end to end.
 * (Nothing here is evidence of security behaviour: the emulator enforces none.)
 */

const root = resolve(import.meta.dirname, '..', '..');
let product: RunningProduct;
let localDir: string;

beforeAll(async () => {
  localDir = mkdtempSync(join(tmpdir(), 'transcribo-local-'));
  const unconfigured = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('STORAGE_')).map((k) => [k, '']));
  product = await startProduct({
    ...unconfigured,
    TRANSCRIBO_LOCAL_DIR: localDir,
    TRANSCRIBO_EMBEDDED_S3_PORT: String(await getFreePort()),
  });
}, 120_000);
afterAll(async () => {
  await product?.stop();
  rmSync(localDir, { recursive: true, force: true });
});

describe('npm start with nothing configured', { timeout: 60_000 }, () => {
  it('says which storage it uses and how to try it', () => {
    expect(product.output()).toMatch(/storage\s+embedded S3 emulator \(s3rver\).*enforces no signatures/);
    expect(product.output()).toMatch(/export TOKEN='ey/);
  });

  it('prints commands that work pasted as they are, one after the other, in a shell', () => {
    const output = product.output();
    const block = output.slice(output.indexOf('each line pastes as it is:')).split('\n').slice(1);
    const commands = block.slice(0, block.findIndex((line) => line.trim() === '')).map((line) => line.trim());
    expect(commands).toHaveLength(3);
    // One shell, as a person pasting them would have: `export` carries on to the next lines.
    const script = `set -e\n${commands.join('\n')}\n`;
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(STORAGE_|TOKEN$|TRANSCRIBO_)/.test(name)));
    const run = spawnSync('bash', ['-c', script], { cwd: root, env: { ...env, TRANSCRIBO_LOCAL_DIR: localDir }, encoding: 'utf8', timeout: 90_000 });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    // npm run try: a generated recording stored, processed and read back identical.
    expect(run.stdout).toMatch(/status ready/);
    expect(run.stdout).toMatch(/identical/);
    // The curl: a new upload declared, its presigned form returned.
    expect(run.stdout).toMatch(/"fileId":"[0-9a-f-]{36}".*"upload":\{/);
    const page = /Or in a browser: (file:\S+)/.exec(output)?.[1];
    expect(new URL(page!).searchParams.get('api')).toBe(product.api);
  });

  it('stores an upload through real emulator events and serves it back decrypted', async () => {
    const secrets = JSON.parse(readFileSync(join(localDir, 'dev-secrets.json'), 'utf8'));
    const token = await signBearerToken(secrets.jwtSecret, 'dev', '5m');
    const client = new ApiClient(product.api, token);
    const bytes = wav(120_000);
    const created = await client.create({ filename: 'hello.wav', contentType: 'audio/wav', size: bytes.length });
    expect((await sendUpload(created.upload, bytes)).status).toBeLessThan(300);
    const info = await client.settled(created.fileId);
    expect(info).toMatchObject({ status: 'ready', sha256: sha256(bytes), encrypted: true });
    const content = await client.request('GET', `/files/${created.fileId}/content`, { headers: { range: 'bytes=1000-1999' } });
    expect(content.status).toBe(206);
    expect(Buffer.from(await content.arrayBuffer()).equals(bytes.subarray(1000, 2000))).toBe(true);
  });

  it('runs the sweep against the emulator without failing', () => {
    // npm start sweeps as soon as the functions are up; by now that sweep has long finished.
    expect(product.output()).not.toMatch(/sweep failed/);
    expect(product.output()).not.toMatch(/listMultipartUploads/);
  });
});
