import { z } from 'zod';
import { playbackLinkKey } from './auth/playback-link.ts';
import { KMS_KEK_ID, parseKeyList, type KeyEncryptionKey } from './crypto/keyring.ts';

/**
 * Every setting of the product is declared here once: its name, schema, default, what it is
 * for, and how a deployment gets it. The rest is derived from this table:
 *
 * - `.env.example` and the README's configuration table are written from it
 *   (`npm run config:docs`; a test fails when they are stale);
 * - `serverless.yml`, `docker-compose.yml` and `npm start` pass each name through without
 *   restating a default (an empty value means unset; tests check every name and every default);
 * - `npm run package` resolves the values the template itself needs (bucket names, region, alarm
 *   thresholds: every `resolved` setting, `resolvedSettings`).
 *
 * A bad value stops start-up with a message naming the variable, never its value (several are
 * secrets). Secrets may also be named by a Parameter Store parameter (`…_PARAMETER`), which the
 * functions that need them read at run time (lib/secret-parameters.ts).
 */

/**
 * How a deployed function gets a setting:
 * - `env`: the value in the shell that runs `npm run package` (unset: the default below);
 * - `resolved`: like `env`, but resolved at packaging because the template needs it itself;
 * - `secret`: from Parameter Store, through the `…_PARAMETER` setting the template sets;
 * - `template`: set by the template from its own resources;
 * - `local`: not deployed (the functions use S3 in their region with their IAM role).
 */
export type Deployed = 'env' | 'resolved' | 'secret' | 'template' | 'local';

export interface SettingInfo {
  doc: string;
  deployed: Deployed;
  /** The default as a person reads it, where the schema's own cannot say it. */
  defaultDoc?: string;
}

const info = new Map<z.ZodType, SettingInfo>();
function setting<T extends z.ZodType>(schema: T, about: SettingInfo): T {
  info.set(schema, about);
  return schema;
}

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], {
      error: 'must be true or false',
    })
    .optional()
    .transform((v) => (v === undefined ? fallback : ['true', '1', 'yes', 'on'].includes(v)));

const optionalBool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], { error: 'must be true or false' })
  .optional()
  .transform((v) => (v === undefined ? undefined : ['true', '1', 'yes', 'on'].includes(v)));

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const seconds = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);
const percent = (fallback: number) => z.coerce.number().gt(0).max(100).default(fallback);
/** A per-owner limit: a whole number, 0 (the default) for none. */
const quota = (unit: string) => z.coerce.number().int(`must be a whole number of ${unit}, 0 for no limit`).min(0, `must be a whole number of ${unit}, 0 for no limit`).default(0);

// Bucket naming rules shared by S3 and MinIO, so a typo fails at start-up rather than at the first upload.
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name');
const parameterName = z
  .string()
  .regex(/^\/?[A-Za-z0-9_.\-/]{1,1011}$/, 'must be a Parameter Store name such as /transcribo-storage/prod/jwt-secret');

const MEBIBYTE = 1024 * 1024;
const TEBIBYTE = 1024 * 1024 * MEBIBYTE;
const DAY = 24 * 3600;
export const DEFAULT_BUCKET = 'transcribo-files';
/** The incoming bucket is named after the final one unless set: one unique name is all a deployment has to choose. */
export const incomingBucketFor = (bucket: string) => `${bucket}-incoming`;

const fields = z.object({
  STORAGE_ENDPOINT: setting(z.string().min(1).optional(), {
    doc: 'host, `host:port` or URL the functions reach S3/MinIO at',
    deployed: 'local',
    defaultDoc: 'unset = AWS S3',
  }),
  STORAGE_PORT: setting(z.coerce.number().int().min(1).max(65535).optional(), {
    doc: "the endpoint's port",
    deployed: 'local',
    defaultDoc: "the endpoint's, else the scheme's",
  }),
  STORAGE_SECURE: setting(optionalBool, {
    doc: 'https (`true`) or http to the endpoint',
    deployed: 'local',
    defaultDoc: '`true`; `false` for a loopback endpoint (localhost, 127.0.0.1, ::1)',
  }),
  STORAGE_PUBLIC_ENDPOINT: setting(z.url({ error: 'must be a URL such as http://localhost:9000' }).optional(), {
    doc: 'URL clients (browsers, phones) reach the storage server at; presigned URLs are signed for it',
    deployed: 'local',
    defaultDoc: 'the endpoint',
  }),
  STORAGE_ACCESS_KEY: setting(z.string().min(1).optional(), {
    doc: 'static credentials for the endpoint, set together with `STORAGE_SECRET_KEY`',
    deployed: 'local',
    defaultDoc: 'unset = IAM role',
  }),
  STORAGE_SECRET_KEY: setting(z.string().min(1).optional(), {
    doc: 'the secret of `STORAGE_ACCESS_KEY`',
    deployed: 'local',
    defaultDoc: 'unset = IAM role',
  }),
  STORAGE_CA_FILE: setting(z.string().min(1).optional(), {
    doc: 'PEM file of certificate authorities trusted for the endpoint besides the system ones (a MinIO with a private CA)',
    deployed: 'local',
    defaultDoc: 'system CAs only',
  }),
  STORAGE_REGION: setting(z.string().min(1).default('us-east-1'), { doc: 'region (deployed: the stack\'s)', deployed: 'resolved' }),
  STORAGE_BUCKET: setting(bucketName.default(DEFAULT_BUCKET), {
    doc: 'final bucket: encrypted recordings and manifests',
    deployed: 'resolved',
  }),
  STORAGE_INCOMING_BUCKET: setting(bucketName.optional(), {
    doc: 'where presigned uploads land before they are checked; must differ from `STORAGE_BUCKET`',
    deployed: 'resolved',
    defaultDoc: '`STORAGE_BUCKET` + `-incoming`',
  }),
  STORAGE_ENCRYPTION_ENABLED: setting(bool(true), {
    doc: 'encrypt at rest, recordings and manifests (files stored in the clear are read again after turning it on once `npm run rotate-keys` has sealed their manifests)',
    deployed: 'env',
  }),
  STORAGE_ENCRYPTION_KEYS: setting(z.string().min(1).optional(), {
    doc: 'key-encryption keys, `id:base64(32 bytes),…` (`openssl rand -base64 32`); the active one wraps new files, the others still unwrap older ones',
    deployed: 'secret',
    defaultDoc: 'required if enabled (`npm start` generates local ones)',
  }),
  STORAGE_ENCRYPTION_KEYS_PARAMETER: setting(parameterName.optional(), {
    doc: 'Parameter Store name (SecureString) holding `STORAGE_ENCRYPTION_KEYS`, read at run time when the variable is unset',
    deployed: 'template',
    defaultDoc: 'deployed: `/transcribo-storage/<stage>/encryption-keys`',
  }),
  STORAGE_ENCRYPTION_ACTIVE_KEY_ID: setting(z.string().min(1).optional(), {
    doc: 'the key that wraps new files',
    deployed: 'env',
    defaultDoc: 'the last key',
  }),
  STORAGE_ENCRYPTION_KMS_KEY_ID: setting(
    z
      .string()
      .regex(/^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)\/[A-Za-z0-9/_-]+|alias\/[A-Za-z0-9/_-]+|[0-9a-f-]{36})$/, 'must be a KMS key id, key ARN, alias name or alias ARN')
      .optional(),
    {
      doc: 'an AWS KMS key that wraps new data keys instead of the static keys (`GenerateDataKey`/`Decrypt`, key id `kms`); static keys, if given, still open what they wrapped until `npm run rotate-keys` re-wraps it',
      deployed: 'resolved',
      defaultDoc: 'none: the static keys',
    },
  ),
  // Two hours of 16 kHz mono WAV (an hour is about 115 MB): the guide's 100 MiB would refuse an ordinary one-hour recording.
  STORAGE_MAX_FILE_SIZE: setting(positiveInt(256 * MEBIBYTE), {
    doc: 'largest upload, in bytes (256 MiB: two hours of 16 kHz mono WAV)',
    deployed: 'env',
  }),
  STORAGE_ALLOWED_EXTENSIONS: setting(
    z
      .string()
      .default('mp3,wav,m4a')
      .transform((s) =>
        s
          .split(',')
          .map((e) => e.trim().toLowerCase().replace(/^\./, ''))
          .filter(Boolean),
      )
      .pipe(z.array(z.enum(['mp3', 'wav', 'm4a'], { error: 'supported extensions are mp3, wav, m4a' })).min(1)),
    { doc: 'accepted extensions, a subset of these three (`.mp3,.wav,.m4a` is read the same)', deployed: 'env' },
  ),
  // Per-owner limits (lib/storage/owner-quotas.ts), checked when an upload is created and again when it is committed.
  STORAGE_QUOTA_BYTES_PER_OWNER: setting(quota('bytes'), {
    doc: 'plaintext bytes one owner may keep, uploads under way included (`0`: no limit); past it `POST /files` answers 409 `StorageQuotaError` and a commit ends the file `rejected`',
    deployed: 'env',
  }),
  STORAGE_QUOTA_FILES_PER_OWNER: setting(quota('recordings'), {
    doc: 'recordings one owner may keep, uploads under way included (`0`: no limit); past it `POST /files` answers 409 `StorageQuotaError` and a commit ends the file `rejected`',
    deployed: 'env',
  }),
  STORAGE_UPLOAD_URL_TTL_SECONDS: setting(seconds(60, 7 * DAY, 900), {
    doc: 'lifetime of a presigned upload, and of each signed part URL (60 s – 7 days)',
    deployed: 'env',
  }),
  // How long a resumable (multipart) upload may take from its creation: a phone on a bad network needs hours, not minutes.
  STORAGE_MULTIPART_UPLOAD_TTL_SECONDS: setting(seconds(60, 7 * DAY, DAY), {
    doc: 'how long a resumable upload may take in all (60 s – 7 days)',
    deployed: 'env',
  }),
  STORAGE_PUBLIC_API_URL: setting(z.url({ protocol: /^https?$/, error: 'must be the http(s) URL clients call the API at' }).optional(), {
    doc: 'the URL clients call the API at, custom domain and base path included; playback links are built on it',
    deployed: 'env',
    defaultDoc: 'the scheme and Host of the request',
  }),
  STORAGE_MAX_RESPONSE_BYTES: setting(positiveInt(4 * MEBIBYTE), {
    doc: 'largest body `GET …/content` returns at once, and the most a range is served (Lambda caps responses at 6 MB)',
    deployed: 'env',
  }),
  // The longest a playback link lives (a client may ask for less): long enough to listen to an hour's recording.
  STORAGE_PLAYBACK_LINK_TTL_SECONDS: setting(seconds(60, DAY, 3600), {
    doc: 'longest life of a playback link (60 s – 1 day); a client may ask for less',
    deployed: 'env',
  }),
  STORAGE_PROCESSING_MAX_ATTEMPTS: setting(positiveInt(3), {
    doc: 'processing attempts before a file ends `failed` (its upload is kept, a dead letter filed)',
    deployed: 'env',
  }),
  // A run renews its lease every third of this, so a slow 1 GB run keeps it; a killed run's file is free again this soon.
  STORAGE_PROCESSING_LEASE_SECONDS: setting(seconds(3, 600, 30), {
    doc: "a processing run's lease (3–600 s), renewed every third of it; a killed run's file is taken over once it runs out",
    deployed: 'env',
  }),
  // How often the sweep looks for work that no event brought (EventBridge rounds it up to whole minutes).
  STORAGE_SWEEP_INTERVAL_SECONDS: setting(seconds(1, DAY, 60), {
    doc: 'how often the sweep runs (deployed: rounded up to whole minutes)',
    deployed: 'env',
  }),
  // How long after its upload link expired a file never uploaded is marked expired (a slow upload may still be landing).
  STORAGE_UPLOAD_GRACE_SECONDS: setting(seconds(0, 7 * DAY, 3600), {
    doc: 'how long after its upload link expired a file never uploaded is marked `expired`',
    deployed: 'env',
  }),
  // Deleted recordings stay restorable this long (lib/storage/recovery.ts); S3 lifecycles count in whole days.
  STORAGE_RECOVERY_WINDOW_DAYS: setting(z.coerce.number().int('must be a whole number of days, 0 for none').min(0, 'must be a whole number of days, 0 for none').max(365, 'must be at most 365 days').default(7), {
    doc: 'days a deleted recording can be restored (the final bucket is versioned; older versions expire after it); `0`: deletes are final and the bucket is not versioned',
    deployed: 'resolved',
  }),
  STORAGE_DEAD_LETTER_QUEUE_URL: setting(z.url({ error: 'must be the URL of an SQS queue' }).optional(), {
    doc: 'SQS queue of dead letters',
    deployed: 'template',
    defaultDoc: 'unset = `dead-letters/` in `STORAGE_BUCKET`; deployed: the stack\'s queue',
  }),
  STORAGE_AUTH_JWT_SECRET: setting(z.string().min(32, 'must be at least 32 characters (HS256 key)').optional(), {
    doc: "signs playback links, and verifies callers' HS256 tokens when no JWKS is set (development); ≥ 32 characters",
    deployed: 'secret',
    defaultDoc: 'required (`npm start` generates a local one)',
  }),
  STORAGE_AUTH_JWT_SECRET_PARAMETER: setting(parameterName.optional(), {
    doc: 'Parameter Store name (SecureString) holding `STORAGE_AUTH_JWT_SECRET`, read at run time when the variable is unset',
    deployed: 'template',
    defaultDoc: 'deployed: `/transcribo-storage/<stage>/jwt-secret`',
  }),
  // An identity provider's published keys (Cognito, Auth0, Supabase, Keycloak, Firebase): set, callers' tokens must be RS256/ES256 signed by one of them.
  STORAGE_AUTH_JWKS_URL: setting(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL of a JWKS document' }).optional(), {
    doc: "JWKS URL of the identity provider that signs callers' tokens (RS256/ES256); set, HS256 caller tokens are refused",
    deployed: 'env',
    defaultDoc: 'unset = HS256 with `STORAGE_AUTH_JWT_SECRET`',
  }),
  STORAGE_AUTH_ISSUER: setting(z.string().min(1).optional(), {
    doc: "the `iss` callers' tokens must carry",
    deployed: 'env',
    defaultDoc: 'not checked',
  }),
  STORAGE_AUTH_AUDIENCE: setting(z.string().min(1).optional(), {
    doc: "the `aud` callers' tokens must carry (comma-separated: any one of them)",
    deployed: 'env',
    defaultDoc: 'not checked',
  }),
  STORAGE_AUTH_CLOCK_SKEW_SECONDS: setting(seconds(0, 300, 30), {
    doc: "tolerance for clocks that disagree on a token's `exp`, `nbf` and `iat`",
    deployed: 'env',
  }),
  // A token valid longer than this (exp − iat) is refused, however well signed: a leaked one must not live for years.
  STORAGE_AUTH_MAX_TOKEN_LIFETIME_SECONDS: setting(seconds(60, 30 * DAY, DAY), {
    doc: 'longest lifetime (`exp` − `iat`) a caller token may have',
    deployed: 'env',
  }),
  // Alarms of the deployed stack (serverless.yml): only the template reads them, each alarm's threshold.
  STORAGE_ALARM_ERROR_RATE_PERCENT: setting(percent(5), {
    doc: "deployed alarm: more than this percentage of all calls ended in an error, three 5-minute periods running (0–100): clients are being failed; the dashboard's errors by type say why",
    deployed: 'resolved',
  }),
  STORAGE_ALARM_CAPACITY_BYTES: setting(positiveInt(TEBIBYTE), {
    doc: "plaintext bytes of recordings the deployment is planned and budgeted for, the capacity alarm's 100 % (1 TiB); nothing refuses uploads past it, S3 has no limit",
    deployed: 'resolved',
  }),
  STORAGE_ALARM_CAPACITY_PERCENT: setting(percent(80), {
    doc: 'deployed alarm: the recordings stored, as the sweep counts them, exceed this percentage of `STORAGE_ALARM_CAPACITY_BYTES` (0–100): nothing fails yet, plan capacity or retention',
    deployed: 'resolved',
  }),
  STORAGE_ALARM_READ_LATENCY_MS: setting(z.coerce.number().int().min(1).max(29_000).default(1000), {
    doc: 'deployed alarm: the 95th percentile of `GET …/content` (getFile) is slower than this many milliseconds, three 5-minute periods running (1–29000): players stall',
    deployed: 'resolved',
  }),
  STORAGE_ALARM_PROCESSING_LATENCY_SECONDS: setting(seconds(1, 900, 120), {
    doc: 'deployed alarm: the 95th percentile of processing an upload (processUpload: checks, hashing, encryption) is slower than this many seconds, three 5-minute periods running (1–900): recordings reach `ready` late',
    deployed: 'resolved',
  }),
  // Packaged into the template, so a deploy keeps it (osls passes no CloudFormation parameter values).
  STORAGE_ALARM_EMAIL: setting(z.email({ error: 'must be an e-mail address' }).optional(), {
    doc: 'deployed alarm: an e-mail address the alarm topic notifies (it must confirm the subscription from the mail SNS sends)',
    deployed: 'resolved',
    defaultDoc: 'none (subscribe to the `AlarmTopicArn` output yourself)',
  }),
  STORAGE_ALARM_WAITING_UPLOAD_SECONDS: setting(seconds(60, 7 * DAY, 900), {
    doc: 'deployed alarm: an upload has waited longer than this many seconds to be processed, as the sweep finds it (60 s – 7 days): neither its event nor the sweep got it done, and its client sees `processing`',
    deployed: 'resolved',
  }),
});

/** Every configuration variable the product reads. */
export type ConfigName = keyof typeof fields.shape;
const NAMES = Object.keys(fields.shape) as readonly ConfigName[];
export const CONFIG_NAMES: readonly string[] = NAMES;

/** Each variable's own schema (with its default), for tools that need one setting without a whole configuration. */
export const SETTINGS = fields.shape;

export interface SettingDoc extends SettingInfo {
  name: ConfigName;
  /** The default as written in an environment (`undefined`: none the schema can state). */
  defaultValue: string | undefined;
}

/** What each setting is, its default and how it is deployed: the one table documentation and deployment files are checked against. */
export function settingDocs(): SettingDoc[] {
  return NAMES.map((name) => {
    const schema = SETTINGS[name];
    const about = info.get(schema)!;
    const parsed = schema.safeParse(undefined);
    const value = parsed.success ? (parsed.data as unknown) : undefined;
    const defaultValue = value === undefined ? undefined : Array.isArray(value) ? value.join(',') : String(value);
    return { name, ...about, defaultValue };
  });
}

/** The settings a deployment receives as themselves (not as secrets or the template's own values). */
export function namesDeployedAs(...kinds: Deployed[]): ConfigName[] {
  return settingDocs()
    .filter((s) => kinds.includes(s.deployed))
    .map((s) => s.name);
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/i;

const schema = fields.superRefine((env, ctx) => {
  if ((env.STORAGE_ACCESS_KEY === undefined) !== (env.STORAGE_SECRET_KEY === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['STORAGE_SECRET_KEY'],
      message: 'STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY are set together or not at all',
    });
  }
  const incoming = env.STORAGE_INCOMING_BUCKET ?? incomingBucketFor(env.STORAGE_BUCKET);
  if (env.STORAGE_BUCKET === incoming) {
    ctx.addIssue({
      code: 'custom',
      path: ['STORAGE_INCOMING_BUCKET'],
      message: 'must differ from STORAGE_BUCKET: uploads land there before they are checked',
    });
  } else if (!bucketName.safeParse(incoming).success) {
    ctx.addIssue({
      code: 'custom',
      path: ['STORAGE_INCOMING_BUCKET'],
      message: `must be set: "${incoming}" (STORAGE_BUCKET + "-incoming") is not a valid bucket name`,
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
  /**
   * Keys are empty while they wait in Parameter Store: only the functions that seal or open
   * recordings fetch them (lib/secret-parameters.ts), and the keyring refuses to work without them.
   */
  encryption: { enabled: true; keys: KeyEncryptionKey[]; activeKeyId: string; kmsKeyId: string | undefined } | { enabled: false };
  maxFileSize: number;
  /** Per-owner limits (lib/storage/owner-quotas.ts); undefined: none. */
  quotas: { bytesPerOwner: number | undefined; filesPerOwner: number | undefined };
  allowedExtensions: readonly ('mp3' | 'wav' | 'm4a')[];
  uploadUrlTtlSeconds: number;
  multipartUploadTtlSeconds: number;
  maxResponseBytes: number;
  /** Where clients call the API (no trailing slash); undefined: the origin each request came to. */
  publicApiUrl: string | undefined;
  /** `key` is undefined while the secret it derives from waits in Parameter Store. */
  playbackLinks: { maxTtlSeconds: number; key: Uint8Array | undefined };
  processing: { maxAttempts: number; leaseSeconds: number };
  sweep: { intervalSeconds: number; uploadGraceSeconds: number };
  /** Days a deleted recording stays restorable; 0: deletes are final (lib/storage/recovery.ts). */
  recoveryWindowDays: number;
  /** SQS queue of dead letters; undefined keeps them in the final bucket. */
  deadLetterQueueUrl: string | undefined;
  /** Undefined while it waits in Parameter Store (only the HTTP functions fetch it). */
  jwtSecret: Uint8Array | undefined;
  /** Where secrets not given as variables are read from at run time. */
  secretParameters: { jwtSecret: string | undefined; encryptionKeys: string | undefined };
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

/** `host`, `host:port` or a URL, with STORAGE_PORT winning over a port written in it. */
function endpointUrl(endpoint: string, port: number | undefined, secure: boolean | undefined): string {
  const written = /^https?:\/\//.test(endpoint) ? new URL(endpoint) : new URL(`http://${endpoint}`);
  const scheme = /^https?:\/\//.test(endpoint)
    ? written.protocol
    : secure === false || (secure === undefined && LOOPBACK.test(written.hostname))
      ? 'http:'
      : 'https:';
  const url = new URL(`${scheme}//${written.host}`);
  if (port !== undefined) url.port = String(port);
  return url.origin;
}

/** The variables a configuration was read from, with empty values dropped: templates and .env files write `NAME=` for "not used". */
function present(source: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(source).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
}

/** Every setting, checked, with its default (the incoming bucket's derived from the final one's). */
function parseSettings(source: NodeJS.ProcessEnv) {
  const result = schema.safeParse(present(source));
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(environment)'}: ${issue.message}`);
    throw new ConfigError(`Invalid storage configuration:\n${lines.join('\n')}`);
  }
  return { ...result.data, STORAGE_INCOMING_BUCKET: result.data.STORAGE_INCOMING_BUCKET ?? incomingBucketFor(result.data.STORAGE_BUCKET) };
}

/**
 * The settings the template needs itself (`resolved`), each as an environment writes it, with
 * its default when unset: what `npm run package` gives serverless.yml, which restates none.
 */
export function resolvedSettings(source: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, unknown> = parseSettings(source);
  return Object.fromEntries(
    namesDeployedAs('resolved').map((name) => {
      const value = env[name];
      return [name, value === undefined ? '' : Array.isArray(value) ? value.join(',') : String(value)];
    }),
  );
}

export function parseConfig(source: NodeJS.ProcessEnv): StorageConfig {
  const env = parseSettings(source);
  let endpoint: string | undefined;
  try {
    endpoint = env.STORAGE_ENDPOINT === undefined ? undefined : endpointUrl(env.STORAGE_ENDPOINT, env.STORAGE_PORT, env.STORAGE_SECURE);
  } catch {
    throw new ConfigError('Invalid storage configuration:\n  STORAGE_ENDPOINT: must be a host, host:port or URL');
  }

  let encryption: StorageConfig['encryption'] = { enabled: false };
  if (env.STORAGE_ENCRYPTION_ENABLED) {
    let keys: KeyEncryptionKey[] = [];
    if (env.STORAGE_ENCRYPTION_KEYS !== undefined) {
      try {
        keys = parseKeyList(env.STORAGE_ENCRYPTION_KEYS);
      } catch (error) {
        throw new ConfigError(`Invalid storage configuration:\n  STORAGE_ENCRYPTION_KEYS: ${(error as Error).message}`);
      }
    }
    const kmsKeyId = env.STORAGE_ENCRYPTION_KMS_KEY_ID;
    // With a KMS key, it wraps every new key; the static keys are only there to open older ones.
    const activeKeyId = kmsKeyId !== undefined ? KMS_KEK_ID : (env.STORAGE_ENCRYPTION_ACTIVE_KEY_ID ?? keys[keys.length - 1]?.id ?? '');
    if (kmsKeyId !== undefined && keys.some((k) => k.id === KMS_KEK_ID)) {
      throw new ConfigError(`Invalid storage configuration:\n  STORAGE_ENCRYPTION_KEYS: the key id "${KMS_KEK_ID}" is kept for STORAGE_ENCRYPTION_KMS_KEY_ID`);
    }
    if (kmsKeyId === undefined && keys.length > 0 && !keys.some((k) => k.id === activeKeyId)) {
      throw new ConfigError(
        'Invalid storage configuration:\n  STORAGE_ENCRYPTION_ACTIVE_KEY_ID: names no key of STORAGE_ENCRYPTION_KEYS',
      );
    }
    encryption = { enabled: true, keys, activeKeyId, kmsKeyId };
  }

  const jwtSecret = env.STORAGE_AUTH_JWT_SECRET === undefined ? undefined : new TextEncoder().encode(env.STORAGE_AUTH_JWT_SECRET);
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
    quotas: {
      bytesPerOwner: env.STORAGE_QUOTA_BYTES_PER_OWNER || undefined,
      filesPerOwner: env.STORAGE_QUOTA_FILES_PER_OWNER || undefined,
    },
    allowedExtensions: env.STORAGE_ALLOWED_EXTENSIONS,
    uploadUrlTtlSeconds: env.STORAGE_UPLOAD_URL_TTL_SECONDS,
    multipartUploadTtlSeconds: env.STORAGE_MULTIPART_UPLOAD_TTL_SECONDS,
    maxResponseBytes: env.STORAGE_MAX_RESPONSE_BYTES,
    publicApiUrl: env.STORAGE_PUBLIC_API_URL?.replace(/\/+$/, ''),
    playbackLinks: {
      maxTtlSeconds: env.STORAGE_PLAYBACK_LINK_TTL_SECONDS,
      key: jwtSecret === undefined ? undefined : playbackLinkKey(jwtSecret),
    },
    processing: {
      maxAttempts: env.STORAGE_PROCESSING_MAX_ATTEMPTS,
      leaseSeconds: env.STORAGE_PROCESSING_LEASE_SECONDS,
    },
    sweep: { intervalSeconds: env.STORAGE_SWEEP_INTERVAL_SECONDS, uploadGraceSeconds: env.STORAGE_UPLOAD_GRACE_SECONDS },
    recoveryWindowDays: env.STORAGE_RECOVERY_WINDOW_DAYS,
    deadLetterQueueUrl: env.STORAGE_DEAD_LETTER_QUEUE_URL,
    jwtSecret,
    secretParameters: { jwtSecret: env.STORAGE_AUTH_JWT_SECRET_PARAMETER, encryptionKeys: env.STORAGE_ENCRYPTION_KEYS_PARAMETER },
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

/** The secrets a piece of the product cannot work without. */
export type SecretNeed = 'jwtSecret' | 'encryptionKeys';

/** Names what is missing, as a configuration error: a function whose secret is neither set nor named by a parameter. */
export function requireSecrets(config: StorageConfig, needs: readonly SecretNeed[]): void {
  const missing: string[] = [];
  if (needs.includes('jwtSecret') && config.jwtSecret === undefined) {
    missing.push('  STORAGE_AUTH_JWT_SECRET: is required (or STORAGE_AUTH_JWT_SECRET_PARAMETER, a Parameter Store name to read it from)');
  }
  if (needs.includes('encryptionKeys') && config.encryption.enabled && config.encryption.keys.length === 0 && config.encryption.kmsKeyId === undefined) {
    missing.push(
      '  STORAGE_ENCRYPTION_KEYS: is required while STORAGE_ENCRYPTION_ENABLED is true (format "kid:base64-32-bytes,...", or STORAGE_ENCRYPTION_KEYS_PARAMETER)',
    );
  }
  if (missing.length > 0) throw new ConfigError(`Invalid storage configuration:\n${missing.join('\n')}`);
}

let overlay: Record<string, string> = {};
let cached: StorageConfig | undefined;

/** The process's configuration, parsed on first use (and again once a secret read at run time changes). */
export function loadConfig(): StorageConfig {
  cached ??= parseConfig({ ...process.env, ...overlay });
  return cached;
}

/** Sets secret values read at run time (never into process.env, where a crash dump or child process would find them). */
export function provideSecrets(values: Record<string, string>): void {
  if (Object.entries(values).every(([name, value]) => overlay[name] === value)) return;
  overlay = { ...overlay, ...values };
  cached = undefined;
}
