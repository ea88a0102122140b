/**
 * Makes a MinIO (or S3) ready for the functions, idempotently, every start: both buckets,
 * default encryption (SSE-S3) on both, the final bucket versioned with its recovery window
 * (lib/storage/recovery.ts), CORS on the incoming bucket (browsers upload there and need ETag
 * exposed), and the object-created notification of `uploads/` to the webhook target MinIO was
 * started with.
 */
import {
  CreateBucketCommand,
  PutBucketCorsCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketNotificationConfigurationCommand,
  PutBucketVersioningCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { WEBHOOK_ARN } from './webhook-target.ts';


export interface SetupReport {
  createdBuckets: string[];
  cors: 'configured' | 'server default';
  /** `SSE-S3`: both buckets encrypt at rest by default; `refused`: the server would not (no KMS). */
  encryption: 'SSE-S3' | 'refused';
  encryptionProblem?: string;
  /** `versioned`: deleted recordings restorable for the window; `off`: a window of 0; `refused`: the server cannot version (deletes are final). */
  recovery: 'versioned' | 'off' | 'refused';
  recoveryProblem?: string;
  notifications: 'webhook' | 'missing';
  notificationProblem?: string;
}

/**
 * Default encryption SSE-S3 on `bucket`. Uploads arrive in the clear from presigned POST/PUT
 * forms that name no encryption, and sit there until processing seals them; this is what keeps
 * them off the disk as plaintext meanwhile (and on MinIO, its trash of deleted objects too).
 * The final bucket's objects are already sealed by the functions, but its manifests (names,
 * owners) are not. MinIO needs a KMS key (MINIO_KMS_SECRET_KEY) for it, else NotImplemented.
 */
export async function setDefaultEncryption(s3: S3Client, Bucket: string): Promise<void> {
  await s3.send(
    new PutBucketEncryptionCommand({
      Bucket,
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    }),
  );
}

/**
 * The recovery window on the final bucket: versioning on, and noncurrent versions (deleted
 * recordings, older manifests) expire `days` after they stopped being current; delete markers
 * left with no version under them are removed. A window of 0 suspends versioning (deletes are
 * final) and keeps a one-day rule, so that a bucket versioned before drains what it kept.
 * Versioning is not left on without its rule: if the rule is refused, it is suspended again.
 */
export async function setRecoveryWindow(s3: S3Client, Bucket: string, days: number): Promise<void> {
  const lifecycle = () =>
    s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket,
        LifecycleConfiguration: {
          Rules: [
            {
              ID: 'recovery-window',
              Status: 'Enabled',
              Filter: { Prefix: '' },
              NoncurrentVersionExpiration: { NoncurrentDays: Math.max(days, 1) },
              Expiration: { ExpiredObjectDeleteMarker: true },
            },
          ],
        },
      }),
    );
  const versioning = (Status: 'Enabled' | 'Suspended') => s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status } }));
  if (days === 0) {
    // Best effort: a server that cannot version has nothing to suspend or drain.
    await versioning('Suspended').catch(() => undefined);
    await lifecycle().catch(() => undefined);
    return;
  }
  await versioning('Enabled');
  try {
    await lifecycle();
  } catch (error) {
    await versioning('Suspended').catch(() => undefined);
    throw error;
  }
}

export async function prepareStorage(s3: S3Client, buckets: { files: string; incoming: string }, recoveryWindowDays: number): Promise<SetupReport> {
  const createdBuckets: string[] = [];
  for (const Bucket of [buckets.files, buckets.incoming]) {
    try {
      await s3.send(new CreateBucketCommand({ Bucket }));
      createdBuckets.push(Bucket);
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw error;
    }
  }

  let encryption: SetupReport['encryption'] = 'SSE-S3';
  let encryptionProblem: string | undefined;
  try {
    for (const Bucket of [buckets.incoming, buckets.files]) await setDefaultEncryption(s3, Bucket);
  } catch (error) {
    // A user's own MinIO may run without KMS: the product still works, with uploads in the clear at rest.
    encryption = 'refused';
    encryptionProblem = `${(error as Error).name}: ${(error as Error).message}`;
  }

  let recovery: SetupReport['recovery'] = recoveryWindowDays > 0 ? 'versioned' : 'off';
  let recoveryProblem: string | undefined;
  try {
    await setRecoveryWindow(s3, buckets.files, recoveryWindowDays);
  } catch (error) {
    // A server that cannot version (or keep its rule): there a delete is final, and npm start tells the functions so.
    recovery = 'refused';
    recoveryProblem = `${(error as Error).name}: ${(error as Error).message}`;
  }

  let cors: SetupReport['cors'] = 'configured';
  try {
    await s3.send(
      new PutBucketCorsCommand({
        Bucket: buckets.incoming,
        CORSConfiguration: {
          CORSRules: [
            {
              AllowedOrigins: ['*'],
              AllowedMethods: ['POST', 'PUT', 'GET', 'DELETE'],
              AllowedHeaders: ['*'],
              ExposeHeaders: ['ETag'],
              MaxAgeSeconds: 3000,
            },
          ],
        },
      }),
    );
  } catch (error) {
    // MinIO answers NotImplemented: its server-wide CORS (MINIO_API_CORS_ALLOW_ORIGIN, default *) applies.
    if ((error as { name?: string }).name !== 'NotImplemented') throw error;
    cors = 'server default';
  }

  try {
    await s3.send(
      new PutBucketNotificationConfigurationCommand({
        Bucket: buckets.incoming,
        NotificationConfiguration: {
          QueueConfigurations: [
            {
              Id: 'transcribo-uploads',
              QueueArn: WEBHOOK_ARN,
              Events: ['s3:ObjectCreated:*'],
              Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } },
            },
          ],
        },
      }),
    );
    return { createdBuckets, encryption, encryptionProblem, recovery, recoveryProblem, cors, notifications: 'webhook' };
  } catch (error) {
    return {
      createdBuckets,
      encryption,
      encryptionProblem,
      recovery,
      recoveryProblem,
      cors,
      notifications: 'missing',
      notificationProblem: `${(error as Error).name}: ${(error as Error).message}`,
    };
  }
}
