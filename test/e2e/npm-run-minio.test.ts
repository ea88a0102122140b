import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { getFreePort } from '../../scripts/minio.ts';
import { wav } from '../support/audio-fixtures.ts';
import { Client, sha256 } from '../support/client-journey.ts';
import { startProduct, type RunningProduct } from '../support/running-product.ts';

/**
 * The README's MinIO path with nothing chosen by hand: `npm run minio` prints its settings,
 * `npm start` runs with them, and neither is given an events token. Both take the one generated
 * into the local directory, so MinIO's webhook is let in, and an upload is processed from its
 * event (the sweep, which would also find it, runs once an hour here).
 */

const root = resolve(import.meta.dirname, '..', '..');
let localDir: string;
let minio: ChildProcess;
let product: RunningProduct;
const settings: Record<string, string> = {};

beforeAll(async () => {
  localDir = mkdtempSync(join(tmpdir(), 'transcribo-npm-run-minio-'));
  const eventsPort = String(await getFreePort());
  // Only what `npm run minio` itself prints reaches npm start: nothing of the MinIO npm test runs.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(STORAGE_|TRANSCRIBO_|TEST_MINIO)/.test(name)));
  const common = { TRANSCRIBO_LOCAL_DIR: localDir, TRANSCRIBO_EVENTS_PORT: eventsPort };
  minio = spawn(process.execPath, ['scripts/minio.ts', 'start'], { cwd: root, env: { ...clean, ...common }, stdio: ['ignore', 'pipe', 'inherit'] });
  let printed = '';
  await new Promise<void>((ready, fail) => {
    minio.stdout!.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
      if (printed.includes('STORAGE_REGION=')) ready();
    });
    minio.on('exit', (code) => fail(new Error(`npm run minio exited (${code}): ${printed}`)));
  });
  for (const line of printed.split('\n')) {
    const match = /^(STORAGE_[A-Z_]+)=(.*)$/.exec(line);
    if (match) settings[match[1]!] = match[2]!;
  }
  product = await startProduct({
    ...Object.fromEntries(Object.keys(process.env).filter((name) => /^(STORAGE_|TRANSCRIBO_)/.test(name)).map((name) => [name, ''])),
    ...common,
    ...settings,
    STORAGE_SWEEP_INTERVAL_SECONDS: '3600',
  });
}, 180_000);
afterAll(async () => {
  await product?.stop();
  if (minio && minio.exitCode === null) {
    const exited = new Promise((done) => minio.once('exit', done));
    minio.kill('SIGTERM');
    await exited;
  }
  rmSync(localDir, { recursive: true, force: true });
});

describe('npm run minio and npm start, no token given', () => {
  it('share the generated events token: an upload is processed from its MinIO event', async () => {
    const secrets = JSON.parse(readFileSync(join(localDir, 'dev-secrets.json'), 'utf8'));
    expect(secrets.eventsToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(settings.STORAGE_PORT).toMatch(/^\d+$/);
    const client = new Client(product.api, await signBearerToken(secrets.jwtSecret, 'minio-user', '5m'));
    const bytes = wav(500_000);
    const { fileId } = await client.upload(bytes);
    const info = await client.settled(fileId, { timeoutMs: 30_000 });
    expect(info.status).toBe('ready');
    expect(await client.readBack(fileId, bytes.length)).toBe(sha256(bytes));
    expect(product.output()).toContain(`upload ${fileId}: ready`);
    expect(product.output()).not.toMatch(/refused a webhook call/);
  });
});
