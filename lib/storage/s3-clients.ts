import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { getCACertificates } from 'node:tls';
import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, type StorageConfig } from '../config.ts';
import { measureStorageLatency } from '../observability/storage-latency.ts';

export interface S3Clients {
  /** For the functions' own calls, on the endpoint they reach. */
  internal: S3Client;
  /** Only for signing: its endpoint is the one the client reaches (in compose, localhost rather than minio). */
  presign: S3Client;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * What the https agent trusts when STORAGE_CA_FILE is set. Giving an agent `ca` replaces Node's
 * trust store rather than adding to it, so the store Node would have used is listed first:
 * `getCACertificates('default')` also holds NODE_EXTRA_CA_CERTS and, under --use-system-ca,
 * the OS store, which `rootCertificates` (the bundled Mozilla list alone) would drop.
 */
export function trustedCertificates(caFile: string): string[] {
  let text: string;
  try {
    text = readFileSync(caFile, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `Invalid storage configuration:\n  STORAGE_CA_FILE: cannot read ${caFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  // A file of garbage would otherwise surface only at the first request, as an untrusted certificate.
  const unreadable = blocks.findIndex((block) => {
    try {
      new X509Certificate(block);
      return false;
    } catch {
      return true;
    }
  });
  if (blocks.length === 0 || unreadable !== -1) {
    throw new ConfigError(
      `Invalid storage configuration:\n  STORAGE_CA_FILE: ${caFile} ${blocks.length === 0 ? 'holds no PEM certificate' : `has an unreadable certificate (number ${unreadable + 1})`}`,
    );
  }
  return [...getCACertificates('default'), ...blocks];
}

/**
 * The https agent for a private CA, with the SDK's own defaults otherwise (keep-alive, 50
 * sockets). An Agent rather than agent options: given options, the SDK sends each body of
 * 2 MiB or more (every part of a sealed recording) with `Expect: 100-continue` through a bare
 * agent of its own, made without them, so those requests would not trust the CA.
 */
function privateCaAgent(caFile: string): Agent {
  return new Agent({ keepAlive: true, maxSockets: 50, ca: trustedCertificates(caFile) });
}

function makeClient(config: StorageConfig, endpoint: string | undefined, httpsAgent: Agent | undefined): S3Client {
  return measureStorageLatency(new S3Client({
    region: config.region,
    ...(endpoint === undefined ? {} : { endpoint, forcePathStyle: true }),
    ...(config.credentials === undefined ? {} : { credentials: config.credentials }),
    // MinIO and other S3-compatible servers: without these, the SDK adds CRC32 checksums
    // that presigned URLs then carry for an empty body, and streams go out aws-chunked.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Fail fast on a dead endpoint instead of hanging the function until its timeout.
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 60_000, ...(httpsAgent && { httpsAgent }) },
    // With an agent of ours the SDK sends the body at once instead of awaiting 100 Continue,
    // so the header would buy nothing; it also keeps those requests off the path the SDK
    // isolates for a shared agent (aws-sdk-js-v3#6940).
    ...(httpsAgent && { expectContinueHeader: false }),
    maxAttempts: 3,
  }));
}

export function createS3Clients(config: StorageConfig): S3Clients {
  // Read once per context, so a cold start pays for it and every request reuses the agent.
  const httpsAgent = config.caFile === undefined ? undefined : privateCaAgent(config.caFile);
  const internal = makeClient(config, config.endpoint, httpsAgent);
  const presign = config.publicEndpoint === config.endpoint ? internal : makeClient(config, config.publicEndpoint, httpsAgent);
  return { internal, presign };
}
