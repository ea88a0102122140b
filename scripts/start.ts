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
 * Configuration is the product's own (STORAGE_*, see .env.example), read from the environment,
 * from .env if present, and from the settings `npm run minio` left in .local/minio.env. Where no
 * secrets are configured, local ones are generated once into .local/dev-secrets.json; so is the
 * token MinIO's webhook must present. With a MinIO, a probe upload proves at start that its
 * events reach the relay, or says exactly how MinIO must be started. Whatever stops the start is
 * said in one line that names the variable to change (local/startup-failure.ts).
 */
import { join, resolve } from 'node:path';
import { ConfigError, parseConfig, requireSecrets, resolvedSettings, type StorageConfig } from '../lib/config.ts';
import { deadLetterStore, letterForEvent } from '../lib/processing/dead-letters.ts';
import { createS3Clients } from '../lib/storage/s3-clients.ts';
import { devSecretsFile, loadOrCreateDevSecrets, localDirectory } from './local/dev-secrets.ts';
import { loadLocalEnv, minioEnvFile } from './local/dot-env.ts';
import { startEmbeddedS3, type EmbeddedS3 } from './local/embedded-s3.ts';
import { createEventProbe, type EventProbe } from './local/event-probe.ts';
import { createEventQueue, type EventQueue } from './local/event-queue.ts';
import { createEventRelay, type EventRelay } from './local/event-relay.ts';
import { startFunctions, type FunctionsRuntime } from './local/functions-runtime.ts';
import { createHttpGateway, type HttpGateway } from './local/http-gateway.ts';
import { createMetricsSink } from './local/metrics-sink.ts';
import { readyBanner } from './local/ready-banner.ts';
import { prepareStorage } from './local/storage-setup.ts';
import { startupFailureLine } from './local/startup-failure.ts';
import { WEBHOOK_TARGET_ID } from './local/webhook-target.ts';
import { assertPortsFree, getFreePort } from './shared/ports.ts';

const root = resolve(import.meta.dirname, '..');
const log = (line: string) => process.stdout.write(`[transcribo] ${line}\n`);

const fromMinio = loadLocalEnv();
const env = process.env;
const httpHost = env.TRANSCRIBO_HTTP_HOST ?? '127.0.0.1';
const httpPort = Number(env.TRANSCRIBO_HTTP_PORT ?? 3000);
const lambdaPort = Number(env.TRANSCRIBO_LAMBDA_PORT ?? 3002);
const eventsHost = env.TRANSCRIBO_EVENTS_HOST ?? '127.0.0.1';
const eventsPort = Number(env.TRANSCRIBO_EVENTS_PORT ?? 3003);
const stage = 'dev';
const service = 'transcribo-storage';
const localDir = localDirectory();
// Metrics stay on: their EMF lines go to this file rather than the console (local/metrics-sink.ts), for `npm run stats`.
const metricsFile = join(localDir, 'metrics.jsonl');
const metricsSink = createMetricsSink({
  file: metricsFile,
  forward: (text, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(text),
});
/** Lambda retries a failed asynchronous invocation after about 1 and 2 minutes; locally sooner. */
const RETRY_DELAYS_MS = [5_000, 20_000];
const PORT_VARIABLES: Record<number, string> = {
  [httpPort]: 'TRANSCRIBO_HTTP_PORT',
  [lambdaPort]: 'TRANSCRIBO_LAMBDA_PORT',
  [eventsPort]: 'TRANSCRIBO_EVENTS_PORT',
  [Number(env.TRANSCRIBO_EMBEDDED_S3_PORT ?? 4569)]: 'TRANSCRIBO_EMBEDDED_S3_PORT',
};

let embedded: EmbeddedS3 | undefined;
let relay: EventRelay | undefined;
let gateway: HttpGateway | undefined;
let functions: FunctionsRuntime | undefined;
let queue: EventQueue | undefined;
let sweepTimer: NodeJS.Timeout | undefined;
let config: StorageConfig | undefined;
const mode = env.STORAGE_ENDPOINT ? 'minio' : 'embedded';
let probe: EventProbe | undefined;

async function shutdown(code: number): Promise<never> {
  clearInterval(sweepTimer);
  queue?.stop();
  // A probe left behind would sit in the incoming bucket as an upload of no file.
  await Promise.race([probe?.remove().catch(() => undefined), new Promise((r) => setTimeout(r, 2_000).unref())]);
  await Promise.all([functions?.stop(), relay?.stop(), gateway?.stop()].map((p) => p?.catch(() => undefined)));
  await embedded?.stop().catch(() => undefined);
  metricsSink.flush();
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));

async function main(): Promise<void> {
  // EADDRINUSE (and the port) before anything starts: serverless-offline would only print a stack and die over and over.
  await assertPortsFree([
    { host: httpHost, port: httpPort },
    { host: httpHost, port: lambdaPort },
    ...(mode === 'minio' ? [{ host: eventsHost, port: eventsPort }] : [{ host: '127.0.0.1', port: Number(env.TRANSCRIBO_EMBEDDED_S3_PORT ?? 4569) }]),
  ]);
  if (!env.STORAGE_AUTH_JWT_SECRET || (!env.STORAGE_ENCRYPTION_KEYS && env.STORAGE_ENCRYPTION_ENABLED !== 'false')) {
    const secrets = await loadOrCreateDevSecrets();
    env.STORAGE_AUTH_JWT_SECRET ||= secrets.jwtSecret;
    env.STORAGE_ENCRYPTION_KEYS ||= secrets.encryptionKeys;
    log(`using local development secrets from ${devSecretsFile()}`);
  }
  const eventsToken = env.TRANSCRIBO_EVENTS_TOKEN || (await loadOrCreateDevSecrets()).eventsToken;
  if (fromMinio.length > 0) log(`using the MinIO settings npm run minio wrote to ${minioEnvFile()} (${fromMinio.join(', ')})`);

  // Until the queue exists (it needs the configuration), emulator events wait here.
  const early: unknown[] = [];
  if (mode === 'embedded') {
    const { bucket: files, incomingBucket: incoming } = parseConfig(env);
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
      // The emulator keeps no versions: a delete is final there.
      STORAGE_RECOVERY_WINDOW_DAYS: '0',
    });
  }

  config = parseConfig(env);
  requireSecrets(config, ['jwtSecret', 'encryptionKeys']);

  // serverless.yml takes these from the template's own resources and parameters when deployed,
  // and the resolved ones from this process: offline, the functions get the values it uses.
  Object.assign(env, {
    // Every setting the template itself reads (alarm thresholds among them), as npm run package resolves them.
    ...resolvedSettings(env),
    STORAGE_REGION: config.region,
    STORAGE_BUCKET: config.bucket,
    STORAGE_INCOMING_BUCKET: config.incomingBucket,
    STORAGE_DEAD_LETTER_QUEUE_URL: env.STORAGE_DEAD_LETTER_QUEUE_URL ?? '',
    STORAGE_AUTH_JWT_SECRET_PARAMETER: '',
    STORAGE_ENCRYPTION_KEYS_PARAMETER: '',
  });

  const s3 = createS3Clients(config).internal;
  const { bucket, incomingBucket } = config;
  let notifications = 'missing';
  if (mode === 'minio') {
    const report = await prepareStorage(s3, { files: bucket, incoming: incomingBucket }, config.recoveryWindowDays);
    if (report.createdBuckets.length > 0) log(`created buckets ${report.createdBuckets.join(', ')}`);
    log(
      report.encryption === 'SSE-S3'
        ? `encryption at rest on ${incomingBucket} and ${bucket}: SSE-S3 by default`
        : `encryption at rest: MinIO refused default encryption (${report.encryptionProblem}), so uploads sit in the clear on its disk until processed; start MinIO with MINIO_KMS_SECRET_KEY=<name>:<base64 of 32 bytes> (npm run minio and docker-compose.yml do).`,
    );
    if (report.recovery === 'refused') {
      // The functions must not promise restores the bucket cannot keep.
      env.STORAGE_RECOVERY_WINDOW_DAYS = '0';
      log(`recovery window: the server cannot version ${bucket} (${report.recoveryProblem}), so deletes are final`);
    } else if (report.recovery === 'versioned') {
      log(`recovery window on ${bucket}: versioned, deleted recordings restorable for ${config.recoveryWindowDays} days`);
    }
    log(`CORS on ${incomingBucket}: ${report.cors}`);
    notifications = report.notifications;
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
  const sweepSeconds = config.sweep.intervalSeconds;
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
    const eventProbe = createEventProbe({
      s3,
      incomingBucket,
      relay: { host: eventsHost, port: eventsPort },
      sweepSeconds,
      tokenHint: env.TRANSCRIBO_EVENTS_TOKEN ? '$TRANSCRIBO_EVENTS_TOKEN' : `<eventsToken of ${devSecretsFile()}>`,
      log,
    });
    probe = eventProbe;
    relay = await createEventRelay({
      listen: { host: eventsHost, port: eventsPort },
      token: eventsToken,
      accept: (event) => {
        if (!eventProbe.claims(event)) queue!.accept(event);
      },
      log,
    });
    if (notifications === 'webhook') void eventProbe.prove();
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
    output: (chunk, stream) => metricsSink.write(chunk, stream),
    log,
    onReady: (first) => {
      void runSweep();
      if (first) {
        void readyBanner(config!, { root, httpHost, httpPort, eventsHost, eventsPort, embeddedDir: mode === 'embedded' ? join(localDir, 's3rver') : undefined, metricsFile }).then((text) =>
          process.stdout.write(text),
        );
      }
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
  sweepTimer = setInterval(() => void runSweep(), sweepSeconds * 1000);
}

main().catch(async (error: unknown) => {
  process.stderr.write(`[transcribo] ${startupFailureLine(error, { endpoint: config?.endpoint, ports: PORT_VARIABLES })}\n`);
  await shutdown(error instanceof ConfigError ? 2 : 1);
});
