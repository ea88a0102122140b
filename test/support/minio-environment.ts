import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { parseConfig, type StorageConfig } from '../../lib/config.ts';
import { createStorageContext, type StorageContext } from '../../lib/storage/storage-context.ts';
import { StorageService } from '../../lib/service/storage-service.ts';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { setDefaultEncryption, setRecoveryWindow } from '../../scripts/local/storage-setup.ts';

/**
 * Integration tests run against the real MinIO that `npm test` starts (scripts/with-minio.ts).
 * Each test file gets buckets of its own, so files can run in parallel without seeing each
 * other's objects. Without a MinIO the tests fail: they never fall back to an emulator.
 */

export interface MinioEnvironment {
  env: Record<string, string>;
  config: StorageConfig;
  ctx: StorageContext;
  service: StorageService;
  admin: S3Client;
  /** A signed bearer token for `sub`. */
  token(sub: string, options?: { expiresIn?: string; secret?: Uint8Array }): Promise<string>;
  /** Keys currently in a bucket. */
  keys(bucket: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

export function minioConnection(): { endpoint: string; accessKey: string; secretKey: string; port: string } {
  const { STORAGE_ENDPOINT, STORAGE_PORT, STORAGE_ACCESS_KEY, STORAGE_SECRET_KEY } = process.env;
  if (!STORAGE_ENDPOINT || !STORAGE_PORT || !STORAGE_ACCESS_KEY || !STORAGE_SECRET_KEY) {
    throw new Error(
      'Integration tests need a real MinIO: run them with `npm test`, which starts one, or set STORAGE_ENDPOINT, STORAGE_PORT, STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY.',
    );
  }
  return { endpoint: STORAGE_ENDPOINT, port: STORAGE_PORT, accessKey: STORAGE_ACCESS_KEY, secretKey: STORAGE_SECRET_KEY };
}

export function adminClient(): S3Client {
  const m = minioConnection();
  return new S3Client({
    endpoint: `http://${m.endpoint}:${m.port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function newKek(): string {
  return randomBytes(32).toString('base64');
}

/**
 * Creates fresh buckets, writes the configuration into `process.env` (the functions read it
 * there, once per test file) and returns the handles a test needs.
 */
export async function prepareMinioEnvironment(overrides: Record<string, string> = {}): Promise<MinioEnvironment> {
  const m = minioConnection();
  const tag = randomBytes(4).toString('hex');
  const env: Record<string, string> = {
    STORAGE_ENDPOINT: m.endpoint,
    STORAGE_PORT: m.port,
    STORAGE_SECURE: 'false',
    STORAGE_ACCESS_KEY: m.accessKey,
    STORAGE_SECRET_KEY: m.secretKey,
    STORAGE_REGION: 'us-east-1',
    STORAGE_BUCKET: `t-${tag}-files`,
    STORAGE_INCOMING_BUCKET: `t-${tag}-incoming`,
    STORAGE_ENCRYPTION_ENABLED: 'true',
    STORAGE_ENCRYPTION_KEYS: `k1:${newKek()}`,
    STORAGE_AUTH_JWT_SECRET: randomBytes(32).toString('hex'),
    ...overrides,
  };
  Object.assign(process.env, env);
  const config = parseConfig(env);
  const ctx = createStorageContext(config);
  const admin = adminClient();
  for (const bucket of [config.bucket, config.incomingBucket]) {
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    // As npm start configures them. The harness's MinIO has a KMS key; a STORAGE_ENDPOINT of the
    // developer's own may not (NotImplemented), and the tests hold without it.
    await setDefaultEncryption(admin, bucket).catch((error: Error) => {
      if (error.name !== 'NotImplemented') throw error;
    });
  }
  // Versioned with its recovery window, as npm start and the template make it.
  await setRecoveryWindow(admin, config.bucket, config.recoveryWindowDays);
  const secret = config.jwtSecret!;

  const keys = async (bucket: string) => {
    const out = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
    return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
  };

  return {
    env,
    config,
    ctx,
    service: new StorageService(ctx),
    admin,
    keys,
    token: (sub, options = {}) => signBearerToken(options.secret ?? secret, sub, options.expiresIn ?? '10m'),
    cleanup: async () => {
      for (const bucket of [config.bucket, config.incomingBucket]) {
        // Every version and delete marker, so that the bucket can go.
        const listed = await admin.send(new ListObjectVersionsCommand({ Bucket: bucket })).catch(() => undefined);
        const present = [...(listed?.Versions ?? []), ...(listed?.DeleteMarkers ?? [])].map(({ Key, VersionId }) => ({ Key, VersionId }));
        if (present.length > 0) await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: present } }));
        await admin.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
      }
    },
  };
}
