import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parseConfig, type StorageConfig } from '../../lib/config.ts';
import { createStorageContext, type StorageContext } from '../../lib/storage/storage-context.ts';
import { StorageService } from '../../lib/service/storage-service.ts';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { WEBHOOK_TARGET_ID } from '../../scripts/local/webhook-target.ts';
import { getFreePort } from '../../scripts/shared/ports.ts';
import { startMinio, storageSettings, type MinioServer } from '../../scripts/minio/server.ts';
import { startProduct, type RunningProduct } from './running-product.ts';

/**
 * A MinIO and an `npm start` of a test's own, wired as the README's MinIO path wires them (the
 * webhook target TRANSCRIBO, with a queue dir and a token, posting to the start script's event
 * relay): for tests that kill, stop or load them, which the MinIO other test files share must
 * never feel.
 */
export interface IsolatedStack {
  minio: MinioServer;
  /** The product's configuration (STORAGE_*, TRANSCRIBO_EVENTS_*). */
  env: Record<string, string>;
  config: StorageConfig;
  ctx: StorageContext;
  service: StorageService;
  admin: S3Client;
  product: RunningProduct;
  /** Starts `npm start` again (after stop or kill), on the same event port. */
  restartProduct(): Promise<RunningProduct>;
  token(sub: string): Promise<string>;
  /** Everything left in the buckets, and multipart uploads still open. */
  leftovers(): Promise<{ incoming: string[]; files: string[]; multipart: string[] }>;
  close(): Promise<void>;
}

/**
 * `settings` override the product's configuration; `route` may put something between the
 * functions and MinIO (it returns settings too, such as another STORAGE_PORT). The stack's own
 * `ctx`, `service` and `admin` always reach MinIO directly, to check what is really stored.
 */
export async function startIsolatedStack(
  settings: Record<string, string> = {},
  route?: (minio: MinioServer) => Promise<Record<string, string>>,
): Promise<IsolatedStack> {
  const eventsPort = await getFreePort();
  const eventsToken = randomBytes(18).toString('base64url');
  const minio = await startMinio({
    webhooks: { [WEBHOOK_TARGET_ID]: { url: `http://127.0.0.1:${eventsPort}/minio-events`, token: eventsToken } },
  });
  const env: Record<string, string> = {
    ...storageSettings(minio),
    STORAGE_BUCKET: 'iso-files',
    STORAGE_INCOMING_BUCKET: 'iso-incoming',
    STORAGE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    STORAGE_AUTH_JWT_SECRET: randomBytes(32).toString('hex'),
    TRANSCRIBO_EVENTS_PORT: String(eventsPort),
    TRANSCRIBO_EVENTS_TOKEN: eventsToken,
    TRANSCRIBO_LOCAL_DIR: mkdtempSync(join(tmpdir(), 'transcribo-iso-')),
    ...settings,
  };
  const direct = { ...env };
  Object.assign(env, await route?.(minio));
  const config = parseConfig(direct);
  const ctx = createStorageContext(config);
  const admin = new S3Client({
    endpoint: minio.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  const list = async (Bucket: string) => {
    const keys: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await admin.send(new ListObjectsV2Command({ Bucket, ContinuationToken }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      ContinuationToken = page.NextContinuationToken;
    } while (ContinuationToken);
    return keys.sort();
  };
  const open = async (Bucket: string) =>
    ((await admin.send(new ListMultipartUploadsCommand({ Bucket }))).Uploads ?? []).map((u) => `${Bucket}/${u.Key}`);

  const stack: IsolatedStack = {
    minio,
    env,
    config,
    ctx,
    service: new StorageService(ctx),
    admin,
    product: await startProduct(env, 120_000),
    async restartProduct() {
      stack.product = await startProduct(env, 120_000);
      return stack.product;
    },
    token: (sub) => signBearerToken(config.jwtSecret!, sub, '1h'),
    leftovers: async () => ({
      incoming: await list(config.incomingBucket),
      files: await list(config.bucket),
      multipart: [...(await open(config.bucket)), ...(await open(config.incomingBucket))],
    }),
    async close() {
      await stack.product.stop().catch(() => undefined);
      await minio.stop();
    },
  };
  return stack;
}
