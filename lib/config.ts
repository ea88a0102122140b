import { z } from 'zod';
import { playbackLinkKey } from './auth/playback-link.ts';
import { parseKeyList, type KeyEncryptionKey } from './crypto/keyring.ts';

/**
 * All configuration comes from `STORAGE_*` environment variables, parsed once with zod.
 * A bad value stops start-up with a message naming the variable, never its value
 * (several of them are secrets).
 */

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], {
      error: 'must be true or false',
    })
    .optional()
    .transform((v) => (v === undefined ? fallback : ['true', '1', 'yes', 'on'].includes(v)));

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

// Bucket naming rules shared by S3 and MinIO, so a typo fails at start-up rather than at the first upload.
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name');

const MEBIBYTE = 1024 * 1024;
export const DEFAULT_BUCKETS = { files: 'transcribo-files', incoming: 'transcribo-incoming' } as const;

const fields = z.object({
  STORAGE_ENDPOINT: z.string().min(1).optional(),
  STORAGE_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  STORAGE_SECURE: bool(true),
  STORAGE_PUBLIC_ENDPOINT: z.url({ error: 'must be a URL such as http://localhost:9000' }).optional(),
  STORAGE_ACCESS_KEY: z.string().min(1).optional(),
  STORAGE_SECRET_KEY: z.string().min(1).optional(),
  STORAGE_REGION: z.string().min(1).default('us-east-1'),
  STORAGE_BUCKET: bucketName.default(DEFAULT_BUCKETS.files),
  STORAGE_INCOMING_BUCKET: bucketName.default(DEFAULT_BUCKETS.incoming),
  STORAGE_ENCRYPTION_ENABLED: bool(true),
  STORAGE_ENCRYPTION_KEYS: z.string().optional(),
  STORAGE_ENCRYPTION_ACTIVE_KEY_ID: z.string().optional(),
  // Two hours of 16 kHz mono WAV (an hour is about 115 MB): the guide's 100 MiB would refuse an ordinary one-hour recording.
  STORAGE_MAX_FILE_SIZE: positiveInt(256 * MEBIBYTE),
  STORAGE_ALLOWED_EXTENSIONS: z
    .string()
    .default('mp3,wav,m4a')
    .transform((s) =>
      s
        .split(',')
        .map((e) => e.trim().toLowerCase().replace(/^\./, ''))
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(['mp3', 'wav', 'm4a'], { error: 'supported extensions are mp3, wav, m4a' })).min(1)),
  STORAGE_UPLOAD_URL_TTL_SECONDS: z.coerce.number().int().min(60).max(7 * 24 * 3600).default(900),
  // How long a resumable (multipart) upload may take from its creation: a phone on a bad network needs hours, not minutes.
  STORAGE_MULTIPART_UPLOAD_TTL_SECONDS: z.coerce.number().int().min(60).max(7 * 24 * 3600).default(24 * 3600),
  STORAGE_MAX_RESPONSE_BYTES: positiveInt(4 * MEBIBYTE),
  // The longest a playback link lives (a client may ask for less): long enough to listen to an hour's recording.
  STORAGE_PLAYBACK_LINK_TTL_SECONDS: z.coerce.number().int().min(60).max(24 * 3600).default(3600),
  STORAGE_PROCESSING_MAX_ATTEMPTS: positiveInt(3),
  // A run renews its lease every third of this, so a slow 1 GB run keeps it; a killed run's file is free again this soon.
  STORAGE_PROCESSING_LEASE_SECONDS: z.coerce.number().int().min(3).max(600).default(30),
  // How often the sweep looks for work that no event brought (EventBridge rounds it up to whole minutes).
  STORAGE_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(24 * 3600).default(60),
  // How long after its upload link expired a file never uploaded is marked expired (a slow upload may still be landing).
  STORAGE_UPLOAD_GRACE_SECONDS: z.coerce.number().int().min(0).max(7 * 24 * 3600).default(3600),
  // Where dead letters go: an SQS queue when deployed; unset, objects under dead-letters/ in the final bucket.
  STORAGE_DEAD_LETTER_QUEUE_URL: z.url({ error: 'must be the URL of an SQS queue' }).optional(),
  STORAGE_AUTH_JWT_SECRET: z.string().min(32, 'must be at least 32 characters (HS256 key)'),
  // An identity provider's published keys (Cognito, Auth0, Supabase, Keycloak, Firebase): set, callers' tokens must be RS256/ES256 signed by one of them.
  STORAGE_AUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL of a JWKS document' }).optional(),
  STORAGE_AUTH_ISSUER: z.string().min(1).optional(),
  // Comma-separated: a token is accepted if its aud names one of them.
  STORAGE_AUTH_AUDIENCE: z.string().min(1).optional(),
  STORAGE_AUTH_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
  // A token valid longer than this (exp − iat) is refused, however well signed: a leaked one must not live for years.
  STORAGE_AUTH_MAX_TOKEN_LIFETIME_SECONDS: z.coerce.number().int().min(60).max(30 * 24 * 3600).default(24 * 3600),
  // PEM file of certificate authorities to trust for STORAGE_ENDPOINT, besides the system's (a private CA on MinIO).
  STORAGE_CA_FILE: z.string().min(1).optional(),
});

/** Every configuration variable the product reads. */
export const CONFIG_NAMES = Object.keys(fields.shape) as readonly string[];

/** Each variable's own schema (with its default), for tools that need one setting without a whole configuration. */
export const SETTINGS = fields.shape;

const schema = fields.superRefine((env, ctx) => {
  if ((env.STORAGE_ACCESS_KEY === undefined) !== (env.STORAGE_SECRET_KEY === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['STORAGE_SECRET_KEY'],
      message: 'STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY are set together or not at all',
    });
  }
  if (env.STORAGE_BUCKET === env.STORAGE_INCOMING_BUCKET) {
    ctx.addIssue({
      code: 'custom',
      path: ['STORAGE_INCOMING_BUCKET'],
      message: 'must differ from STORAGE_BUCKET: uploads land there before they are checked',
    });
  }
  if (env.STORAGE_ENCRYPTION_ENABLED && !env.STORAGE_ENCRYPTION_KEYS) {
    ctx.addIssue({
      code: 'custom',
      path: ['STORAGE_ENCRYPTION_KEYS'],
      message: 'is required while STORAGE_ENCRYPTION_ENABLED is true (format "kid:base64-32-bytes,...")',
    });
  }
});

export interface StorageConfig {
  /** Endpoint the functions use; undefined means AWS S3 in the configured region. */
  endpoint: string | undefined;
  /** Endpoint presigned URLs are signed for: the host the client reaches. */
  publicEndpoint: string | undefined;
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  region: string;
  bucket: string;
  incomingBucket: string;
  encryption: { enabled: true; keys: KeyEncryptionKey[]; activeKeyId: string } | { enabled: false };
  maxFileSize: number;
  allowedExtensions: readonly ('mp3' | 'wav' | 'm4a')[];
  uploadUrlTtlSeconds: number;
  multipartUploadTtlSeconds: number;
  maxResponseBytes: number;
  playbackLinks: { maxTtlSeconds: number; key: Uint8Array };
  processing: { maxAttempts: number; leaseSeconds: number };
  sweep: { intervalSeconds: number; uploadGraceSeconds: number };
  /** SQS queue of dead letters; undefined keeps them in the final bucket. */
  deadLetterQueueUrl: string | undefined;
  jwtSecret: Uint8Array;
  /** How callers' bearer tokens are verified: JWKS (RS256/ES256) when `jwksUrl` is set, else HS256 with `jwtSecret`. */
  auth: {
    jwksUrl: URL | undefined;
    issuer: string | undefined;
    audience: string[] | undefined;
    clockSkewSeconds: number;
    maxTokenLifetimeSeconds: number;
  };
  /** Extra CAs (PEM file path) trusted for the storage endpoint. */
  caFile: string | undefined;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function endpointUrl(host: string, port: number | undefined, secure: boolean): string {
  if (/^https?:\/\//.test(host)) {
    const url = new URL(host);
    if (port !== undefined) url.port = String(port);
    return url.origin;
  }
  return `${secure ? 'https' : 'http'}://${host}${port === undefined ? '' : `:${port}`}`;
}

export function parseConfig(source: NodeJS.ProcessEnv): StorageConfig {
  // An empty value means unset: deployment templates and .env files write `NAME=` for "not used".
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(present);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(environment)'}: ${issue.message}`);
    throw new ConfigError(`Invalid storage configuration:\n${lines.join('\n')}`);
  }
  const env = result.data;
  const endpoint =
    env.STORAGE_ENDPOINT === undefined
      ? undefined
      : endpointUrl(env.STORAGE_ENDPOINT, env.STORAGE_PORT, env.STORAGE_SECURE);

  let encryption: StorageConfig['encryption'] = { enabled: false };
  if (env.STORAGE_ENCRYPTION_ENABLED) {
    let keys: KeyEncryptionKey[];
    try {
      keys = parseKeyList(env.STORAGE_ENCRYPTION_KEYS ?? '');
    } catch (error) {
      throw new ConfigError(`Invalid storage configuration:\n  STORAGE_ENCRYPTION_KEYS: ${(error as Error).message}`);
    }
    const activeKeyId = env.STORAGE_ENCRYPTION_ACTIVE_KEY_ID ?? keys[keys.length - 1]?.id;
    if (!activeKeyId || !keys.some((k) => k.id === activeKeyId)) {
      throw new ConfigError(
        'Invalid storage configuration:\n  STORAGE_ENCRYPTION_ACTIVE_KEY_ID: names no key of STORAGE_ENCRYPTION_KEYS',
      );
    }
    encryption = { enabled: true, keys, activeKeyId };
  }

  const jwtSecret = new TextEncoder().encode(env.STORAGE_AUTH_JWT_SECRET);
  return {
    endpoint,
    publicEndpoint: env.STORAGE_PUBLIC_ENDPOINT ? new URL(env.STORAGE_PUBLIC_ENDPOINT).origin : endpoint,
    credentials:
      env.STORAGE_ACCESS_KEY && env.STORAGE_SECRET_KEY
        ? { accessKeyId: env.STORAGE_ACCESS_KEY, secretAccessKey: env.STORAGE_SECRET_KEY }
        : undefined,
    region: env.STORAGE_REGION,
    bucket: env.STORAGE_BUCKET,
    incomingBucket: env.STORAGE_INCOMING_BUCKET,
    encryption,
    maxFileSize: env.STORAGE_MAX_FILE_SIZE,
    allowedExtensions: env.STORAGE_ALLOWED_EXTENSIONS,
    uploadUrlTtlSeconds: env.STORAGE_UPLOAD_URL_TTL_SECONDS,
    multipartUploadTtlSeconds: env.STORAGE_MULTIPART_UPLOAD_TTL_SECONDS,
    maxResponseBytes: env.STORAGE_MAX_RESPONSE_BYTES,
    playbackLinks: { maxTtlSeconds: env.STORAGE_PLAYBACK_LINK_TTL_SECONDS, key: playbackLinkKey(jwtSecret) },
    processing: {
      maxAttempts: env.STORAGE_PROCESSING_MAX_ATTEMPTS,
      leaseSeconds: env.STORAGE_PROCESSING_LEASE_SECONDS,
    },
    sweep: { intervalSeconds: env.STORAGE_SWEEP_INTERVAL_SECONDS, uploadGraceSeconds: env.STORAGE_UPLOAD_GRACE_SECONDS },
    deadLetterQueueUrl: env.STORAGE_DEAD_LETTER_QUEUE_URL,
    jwtSecret,
    auth: {
      jwksUrl: env.STORAGE_AUTH_JWKS_URL === undefined ? undefined : new URL(env.STORAGE_AUTH_JWKS_URL),
      issuer: env.STORAGE_AUTH_ISSUER,
      audience: env.STORAGE_AUTH_AUDIENCE?.split(',').map((a) => a.trim()).filter(Boolean),
      clockSkewSeconds: env.STORAGE_AUTH_CLOCK_SKEW_SECONDS,
      maxTokenLifetimeSeconds: env.STORAGE_AUTH_MAX_TOKEN_LIFETIME_SECONDS,
    },
    caFile: env.STORAGE_CA_FILE,
  };
}

let cached: StorageConfig | undefined;

/** The process's configuration, parsed on first use. */
export function loadConfig(): StorageConfig {
  cached ??= parseConfig(process.env);
  return cached;
}
