/**
 * Makes a MinIO (or S3) ready for the functions, idempotently, every start: both buckets,
 * CORS on the incoming bucket (browsers upload there and need ETag exposed), and the
 * object-created notification of `uploads/` to the webhook target MinIO was started with.
 */
import {
  CreateBucketCommand,
  PutBucketCorsCommand,
  PutBucketNotificationConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { WEBHOOK_ARN } from './webhook-target.ts';


export interface SetupReport {
  createdBuckets: string[];
  cors: 'configured' | 'server default';
  notifications: 'webhook' | 'missing';
  notificationProblem?: string;
}

export async function prepareStorage(s3: S3Client, buckets: { files: string; incoming: string }): Promise<SetupReport> {
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
    return { createdBuckets, cors, notifications: 'webhook' };
  } catch (error) {
    return {
      createdBuckets,
      cors,
      notifications: 'missing',
      notificationProblem: `${(error as Error).name}: ${(error as Error).message}`,
    };
  }
}
