/**
 * `npm run minio`: the pinned MinIO, wired for `npm start` with nothing to copy by hand.
 *
 * - It listens on 127.0.0.1 at STORAGE_PORT (9000 unless the environment or .env says
 *   otherwise), with the root keys of STORAGE_ACCESS_KEY / STORAGE_SECRET_KEY, or keys
 *   generated once and kept in .local/minio.env.
 * - Its data stays in .local/minio/ between runs (Ctrl-C stops it; the recordings remain).
 * - Its webhook target TRANSCRIBO posts object-created events to npm start's relay on
 *   TRANSCRIBO_EVENTS_PORT, with the token both read from .local/dev-secrets.json (or
 *   TRANSCRIBO_EVENTS_TOKEN), and queues them on disk while npm start is down.
 * - It runs with a KMS key generated once into .local/minio/kms-key, so the buckets encrypt at
 *   rest (npm start sets their default encryption).
 * - It writes how to reach it to .local/minio.env, which npm start reads after the environment
 *   and .env. Deleting that file sends npm start back to the embedded emulator.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { randomBytes } from 'node:crypto';
import { parseConfig, SETTINGS } from '../lib/config.ts';
import { loadOrCreateDevSecrets, localDirectory } from './local/dev-secrets.ts';
import { loadDotEnv, minioEnvFile } from './local/dot-env.ts';
import { failOnConfigError } from './local/startup-failure.ts';
import { WEBHOOK_TARGET_ID } from './local/webhook-target.ts';
import { MINIO_VERSION } from './minio/install.ts';
import { generateKmsKey, isKmsKey, startMinio } from './minio/server.ts';
import { assertPortsFree } from './shared/ports.ts';

const DEFAULT_PORT = 9000;
const fail = (line: string): never => {
  process.stderr.write(`[minio] ${line}\n`);
  process.exit(1);
};

loadDotEnv();
const env = process.env;
const config = failOnConfigError(() => parseConfig(env));
// STORAGE_PORT, else the port of a local STORAGE_ENDPOINT, else 9000.
let port = SETTINGS.STORAGE_PORT.parse(env.STORAGE_PORT || undefined) ?? DEFAULT_PORT;
if (config.endpoint !== undefined) {
  const url = new URL(config.endpoint);
  if (!/^(localhost|127(\.\d+){3}|\[::1\])$/.test(url.hostname)) {
    fail(`STORAGE_ENDPOINT names ${url.hostname}, not this machine: npm run minio runs MinIO here (unset STORAGE_ENDPOINT or make it localhost).`);
  }
  if (url.protocol === 'https:') fail('STORAGE_SECURE is true: the MinIO npm run minio starts speaks http (set STORAGE_SECURE=false).');
  port = Number(url.port || port);
}

const file = minioEnvFile();
const previous = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
// The data directory remembers its root keys: a later run must start with the same ones.
const credentials = config.credentials
  ? { accessKey: config.credentials.accessKeyId, secretKey: config.credentials.secretAccessKey }
  : {
      accessKey: previous.STORAGE_ACCESS_KEY ?? `transcribo-${randomBytes(4).toString('hex')}`,
      secretKey: previous.STORAGE_SECRET_KEY ?? randomBytes(24).toString('base64url'),
    };

await assertPortsFree([{ host: '127.0.0.1', port }]).catch(() =>
  fail(`Port ${port} is already in use (STORAGE_PORT): is a MinIO already running there? Set STORAGE_PORT to another port.`),
);

const eventsPort = Number(env.TRANSCRIBO_EVENTS_PORT ?? 3003);
const relay = `http://127.0.0.1:${eventsPort}/minio-events`;
const token = env.TRANSCRIBO_EVENTS_TOKEN || (await loadOrCreateDevSecrets()).eventsToken;
const home = join(localDirectory(), 'minio');
// Next to the data, not in minio.env: deleting that file (back to the emulator) must not lose
// the key that the objects in .local/minio/data are encrypted under.
const kmsKeyFile = join(home, 'kms-key');
let kmsKey = existsSync(kmsKeyFile) ? readFileSync(kmsKeyFile, 'utf8').trim() : '';
if (!kmsKey) {
  kmsKey = generateKmsKey();
  await mkdir(home, { recursive: true });
  await writeFile(kmsKeyFile, `${kmsKey}\n`, { mode: 0o600 });
} else if (!isKmsKey(kmsKey)) {
  fail(`${kmsKeyFile} does not hold <key-name>:<base64 of 32 bytes>: restore it (the objects in ${join(home, 'data')} are encrypted under it).`);
}
const started = Date.now();
let server: Awaited<ReturnType<typeof startMinio>>;
try {
  server = await startMinio({
    port,
    credentials,
    dataDir: join(home, 'data'),
    queueDir: join(home, 'events'),
    kmsKey,
    webhooks: { [WEBHOOK_TARGET_ID]: { url: relay, token } },
  });
} catch (error) {
  fail(`MinIO did not start: ${(error as Error).message.split('\n')[0]}`);
}

const settings = {
  STORAGE_ENDPOINT: '127.0.0.1',
  STORAGE_PORT: String(port),
  STORAGE_SECURE: 'false',
  STORAGE_ACCESS_KEY: credentials.accessKey,
  STORAGE_SECRET_KEY: credentials.secretKey,
};
await mkdir(localDirectory(), { recursive: true });
await writeFile(
  file,
  [
    '# Written by npm run minio: how npm start reaches the MinIO it runs. The environment and .env win over it;',
    '# delete this file to send npm start back to the embedded emulator.',
    ...Object.entries(settings).map(([name, value]) => `${name}=${value}`),
    '',
  ].join('\n'),
  { mode: 0o600 },
);
process.stdout.write(
  [
    `MinIO ${MINIO_VERSION} ready on http://127.0.0.1:${port} in ${Date.now() - started} ms; Ctrl-C stops it (its data stays in ${join(home, 'data')}).`,
    `  npm start finds it through ${file}; its events go to ${relay} (npm start's TRANSCRIBO_EVENTS_PORT).`,
    `  Keys: STORAGE_ACCESS_KEY=${credentials.accessKey} (the secret is in that file).`,
    '',
  ].join('\n'),
);
await new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});
await server!.stop();
