import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { WEBHOOK_TARGET_ID } from '../../scripts/local/webhook-target.ts';
import { getFreePort } from '../../scripts/shared/ports.ts';
import { startMinio } from '../../scripts/minio/server.ts';
import { wav } from '../support/audio-fixtures.ts';
import { Client, sha256 } from '../support/client-journey.ts';
import { GUIDE_ENV } from '../support/guide-env.ts';
import { startProduct, type RunningProduct } from '../support/running-product.ts';

/**
 * The README's MinIO path as a new user takes it, with the storage guide's .env and nothing
 * else: `npm run minio` starts the pinned MinIO on the guide's localhost:9000 with the guide's
 * keys, wired to npm start's event relay; `npm start` proves at start that the events arrive;
 * an upload is processed from its event into the guide's bucket. Then `npm start` again with no
 * setting at all finds that MinIO through what `npm run minio` wrote. And a MinIO wired to the
 * wrong place is named, with the webhook settings it needs.
 */

const root = resolve(import.meta.dirname, '..', '..');
let localDir: string;
let minio: ChildProcess;
let eventsPort: string;
/** The environment of a shell with none of the MinIO `npm test` runs. */
const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(STORAGE_|TRANSCRIBO_|TEST_MINIO|AWS_)/.test(name)));
const blank = Object.fromEntries(Object.keys(process.env).filter((name) => /^(STORAGE_|TRANSCRIBO_|AWS_)/.test(name)).map((name) => [name, '']));

async function journey(product: RunningProduct, sub: string) {
  const secrets = JSON.parse(readFileSync(join(localDir, 'dev-secrets.json'), 'utf8'));
  const client = new Client(product.api, await signBearerToken(secrets.jwtSecret, sub, '5m'));
  const bytes = wav(500_000);
  const { fileId } = await client.upload(bytes);
  const info = await client.settled(fileId, { timeoutMs: 30_000 });
  expect(info.status).toBe('ready');
  expect(await client.readBack(fileId, bytes.length)).toBe(sha256(bytes));
  // From its event: the sweep, which would also find it, runs once an hour here. npm start prints
  // the outcome once the run returns, which can be after the file is ready and read back.
  await expect.poll(() => product.output(), { timeout: 15_000 }).toContain(`upload ${fileId}: ready`);
}

beforeAll(async () => {
  localDir = mkdtempSync(join(tmpdir(), 'transcribo-npm-run-minio-'));
  eventsPort = String(await getFreePort());
  const common = { TRANSCRIBO_LOCAL_DIR: localDir, TRANSCRIBO_EVENTS_PORT: eventsPort };
  minio = spawn(process.execPath, ['scripts/run-minio.ts'], { cwd: root, env: { ...clean, ...common, ...GUIDE_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  await new Promise<void>((ready, fail) => {
    minio.stdout!.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
      if (printed.includes('ready on')) ready();
    });
    minio.stderr!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    minio.on('exit', (code) => fail(new Error(`npm run minio exited (${code}): ${printed}`)));
  });
  expect(printed).toContain('ready on http://127.0.0.1:9000');
}, 180_000);
afterAll(async () => {
  if (minio && minio.exitCode === null) {
    const exited = new Promise((done) => minio.once('exit', done));
    minio.kill('SIGTERM');
    await exited;
  }
  rmSync(localDir, { recursive: true, force: true });
});

describe("npm run minio and npm start with the storage guide's .env", () => {
  it('process an upload from its MinIO event into the guide\'s bucket, the event path proven at start', async () => {
    const product = await startProduct({ ...blank, ...GUIDE_ENV, TRANSCRIBO_LOCAL_DIR: localDir, TRANSCRIBO_EVENTS_PORT: eventsPort, STORAGE_SWEEP_INTERVAL_SECONDS: '3600' });
    try {
      await expect.poll(() => product.output(), { timeout: 20_000 }).toMatch(/events: MinIO's webhook reaches http:\/\/127\.0\.0\.1:\d+\/minio-events/);
      await journey(product, 'guide-user');
      expect(product.output()).not.toMatch(/refused a webhook call/);
      // Its KMS key, kept next to its data, lets npm start make both buckets encrypt at rest.
      expect(readFileSync(join(localDir, 'minio', 'kms-key'), 'utf8')).toMatch(/^transcribo:[A-Za-z0-9+/]{43}=\n$/);
      expect(product.output()).toContain('encryption at rest on audio-files-incoming and audio-files: SSE-S3 by default');
      const s3 = new S3Client({ endpoint: 'http://localhost:9000', region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'minioadmin', secretAccessKey: 'minioadmin' } });
      for (const Bucket of ['audio-files', 'audio-files-incoming']) await s3.send(new HeadBucketCommand({ Bucket }));
    } finally {
      await product.stop();
    }
  }, 120_000);

  it('are found by a later npm start given no setting at all, through what npm run minio wrote', async () => {
    const written = readFileSync(join(localDir, 'minio.env'), 'utf8');
    expect(written).toContain('STORAGE_PORT=9000');
    expect(written).toContain('STORAGE_ACCESS_KEY=minioadmin');
    const product = await startProduct({ ...blank, TRANSCRIBO_LOCAL_DIR: localDir, TRANSCRIBO_EVENTS_PORT: eventsPort, STORAGE_SWEEP_INTERVAL_SECONDS: '3600' });
    try {
      expect(product.output()).toMatch(/using the MinIO settings npm run minio wrote to .*minio\.env/);
      await journey(product, 'no-edits-user');
    } finally {
      await product.stop();
    }
  }, 120_000);
});

describe('npm start with a MinIO whose events go elsewhere', () => {
  it('says so at start, with the exact webhook settings MinIO needs, and that it cannot encrypt at rest without KMS', async () => {
    const relayPort = await getFreePort();
    const elsewhere = await startMinio({ kmsKey: false, webhooks: { [WEBHOOK_TARGET_ID]: { url: `http://127.0.0.1:${await getFreePort()}/minio-events`, token: 'x' } } });
    const product = await startProduct({
      ...blank,
      STORAGE_ENDPOINT: '127.0.0.1',
      STORAGE_PORT: String(elsewhere.port),
      STORAGE_ACCESS_KEY: elsewhere.accessKey,
      STORAGE_SECRET_KEY: elsewhere.secretKey,
      TRANSCRIBO_LOCAL_DIR: localDir,
      TRANSCRIBO_EVENTS_PORT: String(relayPort),
    });
    try {
      await expect.poll(() => product.output(), { timeout: 30_000, interval: 500 }).toContain("MinIO's events do not reach npm start");
      expect(product.output()).toContain(`MINIO_NOTIFY_WEBHOOK_ENDPOINT_${WEBHOOK_TARGET_ID}=http://127.0.0.1:${relayPort}/minio-events`);
      expect(product.output()).toContain(`MINIO_NOTIFY_WEBHOOK_ENABLE_${WEBHOOK_TARGET_ID}=on`);
      // A user's MinIO without KMS still serves; npm start names what is missing, in one line.
      const refused = product.output().split('\n').filter((line) => line.includes('MinIO refused default encryption'));
      expect(refused).toHaveLength(1);
      expect(refused[0]).toContain('NotImplemented: Server side encryption specified but KMS is not configured');
      expect(refused[0]).toContain('MINIO_KMS_SECRET_KEY=<name>:<base64 of 32 bytes>');
    } finally {
      await product.stop();
      await elsewhere.stop();
    }
  }, 90_000);
});
