/**
 * `npm start`: the whole product on this machine, behaving like the deployed one.
 *
 * - Storage: the MinIO (or S3) that STORAGE_ENDPOINT names, or, with nothing configured, an
 *   embedded S3 emulator (s3rver) with its data in .local/s3rver.
 * - Functions: serverless-offline serves every HTTP function of serverless.yml.
 * - Events: uploads reach process-upload as real object-created events: MinIO's webhook
 *   target (id TRANSCRIBO, with a queue_dir) posts to the event relay, or the emulator emits
 *   them in-process; the relay invokes the function through serverless-offline. No polling.
 *
 * Configuration is the product's own (STORAGE_*, see .env.example), read from the
 * environment and from .env if present. Where no secrets are configured, local ones are
 * generated once into .local/dev-secrets.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, DEFAULT_BUCKETS, parseConfig } from '../lib/config.ts';
import { createS3Clients } from '../lib/storage/s3-clients.ts';
import { loadOrCreateDevSecrets } from './local/dev-secrets.ts';
import { signBearerToken } from './local/dev-token.ts';
import { startEmbeddedS3, type EmbeddedS3 } from './local/embedded-s3.ts';
import { createEventRelay, functionInvokeUrl, type EventRelay } from './local/event-relay.ts';
import { prepareStorage } from './local/storage-setup.ts';
import { WEBHOOK_TARGET_ID } from './local/webhook-target.ts';

const root = resolve(import.meta.dirname, '..');
const log = (line: string) => process.stdout.write(`[transcribo] ${line}\n`);

if (existsSync(join(root, '.env'))) process.loadEnvFile(join(root, '.env'));
const env = process.env;
const httpHost = env.TRANSCRIBO_HTTP_HOST ?? '127.0.0.1';
const httpPort = Number(env.TRANSCRIBO_HTTP_PORT ?? 3000);
const lambdaPort = Number(env.TRANSCRIBO_LAMBDA_PORT ?? 3002);
const eventsHost = env.TRANSCRIBO_EVENTS_HOST ?? '127.0.0.1';
const eventsPort = Number(env.TRANSCRIBO_EVENTS_PORT ?? 3003);
const stage = 'dev';
// Local state (emulator data, generated secrets); tests point it at a temporary directory.
const localDir = resolve(root, env.TRANSCRIBO_LOCAL_DIR ?? '.local');
// EMF metric lines only matter in CloudWatch; locally they drown the logs.
env.POWERTOOLS_METRICS_DISABLED ??= 'true';

let embedded: EmbeddedS3 | undefined;
let relay: EventRelay | undefined;
let offline: ChildProcess | undefined;
/** serverless-offline is serving: events can be delivered. */
let ready = false;

async function shutdown(code: number): Promise<never> {
  offline?.kill('SIGTERM');
  await relay?.stop().catch(() => undefined);
  await embedded?.stop().catch(() => undefined);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));

if (!env.STORAGE_AUTH_JWT_SECRET || (!env.STORAGE_ENCRYPTION_KEYS && env.STORAGE_ENCRYPTION_ENABLED !== 'false')) {
  const secrets = await loadOrCreateDevSecrets(join(localDir, 'dev-secrets.json'));
  env.STORAGE_AUTH_JWT_SECRET ||= secrets.jwtSecret;
  env.STORAGE_ENCRYPTION_KEYS ||= secrets.encryptionKeys;
  log(`using local development secrets from ${join(localDir, 'dev-secrets.json')}`);
}

let queued: unknown[] = [];
const mode = env.STORAGE_ENDPOINT ? 'minio' : 'embedded';
if (mode === 'embedded') {
  const files = env.STORAGE_BUCKET || DEFAULT_BUCKETS.files;
  const incoming = env.STORAGE_INCOMING_BUCKET || DEFAULT_BUCKETS.incoming;
  embedded = await startEmbeddedS3({
    port: Number(env.TRANSCRIBO_EMBEDDED_S3_PORT ?? 4569),
    directory: join(localDir, 's3rver'),
    buckets: [files, incoming],
    // Held until the functions are up: the emulator has no queue of its own to retry from.
    onObjectCreated: (event) => {
      if (ready) relay!.deliver(event).catch((error: unknown) => log(`event not processed: ${(error as Error).message}`));
      else queued.push(event);
    },
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

let config;
try {
  config = parseConfig(env);
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    await shutdown(2);
  }
  throw error;
}

// serverless.yml falls back to CloudFormation parameters for these; offline must get real values.
env.STORAGE_ENCRYPTION_KEYS ??= '';
env.STORAGE_ENCRYPTION_ACTIVE_KEY_ID = config.encryption.enabled ? config.encryption.activeKeyId : '';

if (mode === 'minio') {
  const report = await prepareStorage(createS3Clients(config).internal, { files: config.bucket, incoming: config.incomingBucket });
  if (report.createdBuckets.length > 0) log(`created buckets ${report.createdBuckets.join(', ')}`);
  log(`CORS on ${config.incomingBucket}: ${report.cors}`);
  if (report.notifications === 'missing') {
    log(
      `MinIO has no webhook target "${WEBHOOK_TARGET_ID}", so uploads will not be processed (${report.notificationProblem}).\n` +
        `  Start MinIO with MINIO_NOTIFY_WEBHOOK_ENABLE_${WEBHOOK_TARGET_ID}=on, ` +
        `MINIO_NOTIFY_WEBHOOK_ENDPOINT_${WEBHOOK_TARGET_ID}=http://<this host>:${eventsPort}/minio-events and ` +
        `MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${WEBHOOK_TARGET_ID}=<dir> (docker-compose.yml does).`,
    );
  }
}

const functionName = `transcribo-storage-${stage}-processUpload`;
relay = await createEventRelay({
  invokeUrl: functionInvokeUrl(lambdaPort, functionName),
  ...(mode === 'minio' && { listen: { host: eventsHost, port: eventsPort, authToken: env.TRANSCRIBO_EVENTS_TOKEN } }),
  log,
});

offline = spawn(join(root, 'node_modules', '.bin', 'osls'), ['offline', 'start', '--stage', stage], {
  cwd: root,
  env: { ...env, TRANSCRIBO_HTTP_HOST: httpHost, TRANSCRIBO_HTTP_PORT: String(httpPort), TRANSCRIBO_LAMBDA_PORT: String(lambdaPort) },
  stdio: ['ignore', 'pipe', 'pipe'],
});
offline.on('exit', (code) => {
  log(`serverless-offline exited (${code ?? 'signal'})`);
  void shutdown(code ?? 1);
});
// serverless-offline writes its banner to either stream depending on the version: watch both.
const watch = (out: NodeJS.WriteStream) => (chunk: Buffer) => {
  out.write(chunk);
  if (!ready && chunk.toString().includes('Server ready')) {
    ready = true;
    void announce();
  }
};
offline.stdout?.on('data', watch(process.stdout));
offline.stderr?.on('data', watch(process.stderr));

async function announce(): Promise<void> {
  for (const event of queued) await relay!.deliver(event).catch((error: unknown) => log(`event not processed: ${(error as Error).message}`));
  queued = [];
  const token = await signBearerToken(config!.jwtSecret, 'dev-user');
  const api = `http://${httpHost}:${httpPort}`;
  const storage =
    mode === 'embedded'
      ? `embedded S3 emulator (s3rver) on ${config!.endpoint}, data in ${join(localDir, 's3rver')} — enforces no signatures, POST policies or sizes`
      : `${config!.endpoint} (presigned URLs signed for ${config!.publicEndpoint}), events via webhook on http://${eventsHost}:${eventsPort}/minio-events`;
  process.stdout.write(
    [
      '',
      `Transcribo storage is ready.`,
      `  API      ${api}  (POST /files, GET /files/{id}, /files/{id}/size, /files/{id}/content, DELETE /files/{id})`,
      `  storage  ${storage}`,
      `  buckets  ${config!.incomingBucket} (uploads) → ${config!.bucket} (encrypted files)`,
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
