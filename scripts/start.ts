/**
 * `npm start`: the whole product on this machine, behaving like the deployed one.
 *
 * - Storage: the MinIO (or S3) that STORAGE_ENDPOINT names, or, with nothing configured, an
 *   embedded S3 emulator (s3rver) with its data in .local/s3rver.
 * - Functions: serverless-offline runs every function of serverless.yml, in one process that is
 *   started again if it dies (local/functions-runtime.ts), behind a gateway that renders any
 *   failure of the functions as the catalogue's error (local/http-gateway.ts).
 * - Events: uploads reach process-upload as real object-created events: MinIO's webhook target
 *   (id TRANSCRIBO, with a queue_dir) posts to the event relay (local/event-relay.ts), or the
 *   emulator emits them in-process; either way they go through a local stand-in for Lambda's
 *   asynchronous invocation, with its retries and dead letters (local/event-queue.ts).
 * - Sweep: the sweep function runs every STORAGE_SWEEP_INTERVAL_SECONDS, as EventBridge runs it
 *   when deployed, and finds what no event brought.
 *
 * Configuration is the product's own (STORAGE_*, see .env.example), read from the environment
 * and from .env if present. Where no secrets are configured, local ones are generated once into
 * .local/dev-secrets.json; so is the token MinIO's webhook must present.
 */
import { join, resolve } from 'node:path';
import { ConfigError, DEFAULT_BUCKETS, parseConfig, type StorageConfig } from '../lib/config.ts';
import { deadLetterStore, letterForEvent } from '../lib/processing/dead-letters.ts';
import { createS3Clients } from '../lib/storage/s3-clients.ts';
import { devSecretsFile, loadOrCreateDevSecrets, localDirectory } from './local/dev-secrets.ts';
import { loadDotEnv } from './local/dot-env.ts';
import { signBearerToken } from './local/dev-token.ts';
import { startEmbeddedS3, type EmbeddedS3 } from './local/embedded-s3.ts';
import { createEventQueue, type EventQueue } from './local/event-queue.ts';
import { createEventRelay, type EventRelay } from './local/event-relay.ts';
import { startFunctions, type FunctionsRuntime } from './local/functions-runtime.ts';
import { createHttpGateway, type HttpGateway } from './local/http-gateway.ts';
import { prepareStorage } from './local/storage-setup.ts';
import { WEBHOOK_TARGET_ID } from './local/webhook-target.ts';
import { getFreePort } from './minio.ts';

const root = resolve(import.meta.dirname, '..');
const log = (line: string) => process.stdout.write(`[transcribo] ${line}\n`);

loadDotEnv();
const env = process.env;
const httpHost = env.TRANSCRIBO_HTTP_HOST ?? '127.0.0.1';
const httpPort = Number(env.TRANSCRIBO_HTTP_PORT ?? 3000);
const lambdaPort = Number(env.TRANSCRIBO_LAMBDA_PORT ?? 3002);
const eventsHost = env.TRANSCRIBO_EVENTS_HOST ?? '127.0.0.1';
const eventsPort = Number(env.TRANSCRIBO_EVENTS_PORT ?? 3003);
const stage = 'dev';
const service = 'transcribo-storage';
const localDir = localDirectory();
// EMF metric lines only matter in CloudWatch; locally they drown the logs.
env.POWERTOOLS_METRICS_DISABLED ??= 'true';
/** Lambda retries a failed asynchronous invocation after about 1 and 2 minutes; locally sooner. */
const RETRY_DELAYS_MS = [5_000, 20_000];

let embedded: EmbeddedS3 | undefined;
let relay: EventRelay | undefined;
let gateway: HttpGateway | undefined;
let functions: FunctionsRuntime | undefined;
let queue: EventQueue | undefined;
let sweepTimer: NodeJS.Timeout | undefined;

async function shutdown(code: number): Promise<never> {
  clearInterval(sweepTimer);
  queue?.stop();
  await Promise.all([functions?.stop(), relay?.stop(), gateway?.stop()].map((p) => p?.catch(() => undefined)));
  await embedded?.stop().catch(() => undefined);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));

if (!env.STORAGE_AUTH_JWT_SECRET || (!env.STORAGE_ENCRYPTION_KEYS && env.STORAGE_ENCRYPTION_ENABLED !== 'false')) {
  const secrets = await loadOrCreateDevSecrets();
  env.STORAGE_AUTH_JWT_SECRET ||= secrets.jwtSecret;
  env.STORAGE_ENCRYPTION_KEYS ||= secrets.encryptionKeys;
  log(`using local development secrets from ${devSecretsFile()}`);
}
const eventsToken = env.TRANSCRIBO_EVENTS_TOKEN || (await loadOrCreateDevSecrets()).eventsToken;

// Until the queue exists (it needs the configuration), emulator events wait here.
const early: unknown[] = [];
const mode = env.STORAGE_ENDPOINT ? 'minio' : 'embedded';
if (mode === 'embedded') {
  const files = env.STORAGE_BUCKET || DEFAULT_BUCKETS.files;
  const incoming = env.STORAGE_INCOMING_BUCKET || DEFAULT_BUCKETS.incoming;
  embedded = await startEmbeddedS3({
    port: Number(env.TRANSCRIBO_EMBEDDED_S3_PORT ?? 4569),
    directory: join(localDir, 's3rver'),
    buckets: [files, incoming],
    incomingBucket: incoming,
    onObjectCreated: (event) => (queue ? queue.accept(event) : early.push(event)),
  });
  Object.assign(env, {
    STORAGE_ENDPOINT: embedded.endpoint,
    STORAGE_PORT: String(embedded.port),
    STORAGE_SECURE: 'false',
    STORAGE_ACCESS_KEY: embedded.accessKey,
    STORAGE_SECRET_KEY: embedded.secretKey,
    STORAGE_BUCKET: files,
    STORAGE_INCOMING_BUCKET: incoming,
  });
}

let config: StorageConfig;
try {
  config = parseConfig(env);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    await shutdown(2);
  }
  throw error;
}

// serverless.yml falls back to CloudFormation resources and parameters for these, and to
// stage-suffixed bucket names: offline, the functions must get the values this process uses.
env.STORAGE_ENCRYPTION_KEYS ??= '';
env.STORAGE_ENCRYPTION_ACTIVE_KEY_ID = config.encryption.enabled ? config.encryption.activeKeyId : '';
env.STORAGE_DEAD_LETTER_QUEUE_URL ??= '';
env.STORAGE_BUCKET = config.bucket;
env.STORAGE_INCOMING_BUCKET = config.incomingBucket;

const s3 = createS3Clients(config).internal;
if (mode === 'minio') {
  const report = await prepareStorage(s3, { files: config.bucket, incoming: config.incomingBucket });
  if (report.createdBuckets.length > 0) log(`created buckets ${report.createdBuckets.join(', ')}`);
  log(`CORS on ${config.incomingBucket}: ${report.cors}`);
  if (report.notifications === 'missing') {
    log(
      `MinIO has no webhook target "${WEBHOOK_TARGET_ID}", so uploads wait for the sweep (${report.notificationProblem}).\n` +
        `  Start MinIO with MINIO_NOTIFY_WEBHOOK_ENABLE_${WEBHOOK_TARGET_ID}=on, ` +
        `MINIO_NOTIFY_WEBHOOK_ENDPOINT_${WEBHOOK_TARGET_ID}=http://<this host>:${eventsPort}/minio-events, ` +
        `MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${WEBHOOK_TARGET_ID}=<dir> and ` +
        `MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${WEBHOOK_TARGET_ID}=<the eventsToken of ${devSecretsFile()}> (npm run minio and docker-compose.yml do).`,
    );
  }
}

const deadLetters = deadLetterStore(config, s3);
queue = createEventQueue({
  invoke: (event) => functions!.invoke('processUpload', event),
  concurrency: 2,
  retryDelaysMs: RETRY_DELAYS_MS,
  onResult: (_event, payload) => {
    for (const result of (payload as { results?: Array<{ outcome: string; fileId?: string; reason?: string }> } | null)?.results ?? []) {
      log(`upload ${result.fileId ?? '(not an upload)'}: ${result.outcome}${result.reason ? ` (${result.reason})` : ''}`);
    }
  },
  deadLetter: (event, error, attempts) => deadLetters.put(letterForEvent(event, 'RetriesExhausted', error, attempts)),
  log,
});
for (const event of early.splice(0)) queue.accept(event);

if (mode === 'minio') {
  relay = await createEventRelay({ listen: { host: eventsHost, port: eventsPort }, token: eventsToken, accept: (e) => queue!.accept(e), log });
}

let sweeping = false;
async function runSweep(): Promise<void> {
  if (sweeping || functions?.upstream() === undefined) return;
  sweeping = true;
  try {
    const result = await functions.invoke('sweep', {});
    if (!result.ok) {
      log(`sweep failed (${result.message})`);
      return;
    }
    const report = result.payload as { processed: Array<{ outcome: string; fileId?: string }>; expired: number; multipartAborted: number; lettersFiled: number; errors: number };
    const done = report.processed.map((o) => `${o.fileId}: ${o.outcome}`);
    if (done.length + report.expired + report.multipartAborted + report.lettersFiled + report.errors > 0) {
      log(`sweep: ${[...done, `${report.expired} expired`, `${report.multipartAborted} multipart aborted`, `${report.lettersFiled} dead letters`, `${report.errors} errors`].join(', ')}`);
    }
  } finally {
    sweeping = false;
  }
}

const offlineHttpPort = await getFreePort();
functions = startFunctions({
  root,
  stage,
  service,
  env: { ...env, TRANSCRIBO_EVENTS_TOKEN: '' },
  httpPort: offlineHttpPort,
  lambdaPort,
  output: (chunk, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
  log,
  onReady: (first) => {
    void runSweep();
    if (first) void announce();
  },
  onGiveUp: (code) => void shutdown(code),
});
gateway = await createHttpGateway({
  listen: { host: httpHost, port: httpPort },
  upstream: () => functions!.upstream(),
  // Just above the functions' 29 s timeout, which middy answers itself 3 s before.
  timeoutMs: 32_000,
  waitForFunctionsMs: 30_000,
  log,
});
sweepTimer = setInterval(() => void runSweep(), config.sweep.intervalSeconds * 1000);

async function announce(): Promise<void> {
  const token = await signBearerToken(config.jwtSecret, 'dev-user');
  const api = `http://${httpHost}:${httpPort}`;
  const storage =
    mode === 'embedded'
      ? `embedded S3 emulator (s3rver) on ${config.endpoint}, data in ${join(localDir, 's3rver')} — enforces no signatures, POST policies or sizes`
      : `${config.endpoint} (presigned URLs signed for ${config.publicEndpoint}), events via webhook on http://${eventsHost}:${eventsPort}/minio-events`;
  process.stdout.write(
    [
      '',
      `Transcribo storage is ready.`,
      `  API      ${api}  (POST /files, GET /files/{id}, /files/{id}/size, /files/{id}/content, DELETE /files/{id})`,
      `  storage  ${storage}`,
      `  buckets  ${config.incomingBucket} (uploads) → ${config.bucket} (encrypted files)`,
      `  sweep    every ${config.sweep.intervalSeconds} s; dead letters in ${config.deadLetterQueueUrl ?? `${config.bucket}/dead-letters/`} (npm run redrive)`,
      '',
      'Try it (a token for sub "dev-user", valid 12 h), from another terminal:',
      `  export TOKEN=${token}`,
      `  npm run try -- path/to/recording.wav          # create, upload to the bucket, wait, read back`,
      `  curl -s ${api}/files/<fileId> -H "Authorization: Bearer $TOKEN"`,
      `  open examples/browser-upload.html?api=${encodeURIComponent(api)}&token=$TOKEN   # the same from a browser`,
      '',
    ].join('\n'),
  );
}
