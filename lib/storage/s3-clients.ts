import { S3Client } from '@aws-sdk/client-s3';
import type { StorageConfig } from '../config.ts';

export interface S3Clients {
  /** For the functions' own calls, on the endpoint they reach. */
  internal: S3Client;
  /** Only for signing: its endpoint is the one the client reaches (in compose, localhost rather than minio). */
  presign: S3Client;
}

function makeClient(config: StorageConfig, endpoint: string | undefined): S3Client {
  return new S3Client({
    region: config.region,
    ...(endpoint === undefined ? {} : { endpoint, forcePathStyle: true }),
    ...(config.credentials === undefined ? {} : { credentials: config.credentials }),
    // MinIO and other S3-compatible servers: without these, the SDK adds CRC32 checksums
    // that presigned URLs then carry for an empty body, and streams go out aws-chunked.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Fail fast on a dead endpoint instead of hanging the function until its timeout.
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 60_000 },
    maxAttempts: 3,
  });
}

export function createS3Clients(config: StorageConfig): S3Clients {
  const internal = makeClient(config, config.endpoint);
  const presign = config.publicEndpoint === config.endpoint ? internal : makeClient(config, config.publicEndpoint);
  return { internal, presign };
}
