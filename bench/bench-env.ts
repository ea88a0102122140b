import { randomBytes } from 'node:crypto';

/**
 * The bench's environment: buckets and keys of its own on the MinIO that `npm run bench` starts.
 * It is written into `process.env` as well as handed to the measured jobs, because the bench also
 * invokes the functions' handlers in its own process, and they (and the library's logger and
 * metrics, built at import time) read their configuration there. Import this module first.
 */
const tag = randomBytes(3).toString('hex');

export const env: NodeJS.ProcessEnv = {
  ...process.env,
  STORAGE_BUCKET: `bench-${tag}-files`,
  STORAGE_INCOMING_BUCKET: `bench-${tag}-incoming`,
  STORAGE_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
  STORAGE_AUTH_JWT_SECRET: randomBytes(32).toString('hex'),
  STORAGE_MAX_FILE_SIZE: String(2 ** 40),
  // The shortest lease: every run spans several, so the bench also proves a long run keeps its file.
  STORAGE_PROCESSING_LEASE_SECONDS: '3',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
  POWERTOOLS_METRICS_DISABLED: 'true',
};
if (!env.STORAGE_ENDPOINT) throw new Error('run through `npm run bench`, which starts MinIO');
Object.assign(process.env, env);
