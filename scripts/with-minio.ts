// Run a command against a throwaway real MinIO server:
//
//   node scripts/with-minio.ts vitest run
//
// Starts MinIO (building it first if needed) with one webhook notification target `TEST`
// pointing at http://127.0.0.1:<TEST_MINIO_WEBHOOK_PORT>/minio-events, runs the command with
// the STORAGE_* settings for that server, stops MinIO and exits with the command's exit code.
// If STORAGE_ENDPOINT is already set, no MinIO is started: the command runs against it as is.

import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { WEBHOOK_TARGET_ID } from './local/webhook-target.ts';
import { startMinio, storageSettings, type MinioServer } from './minio/server.ts';
import { getFreePort } from './shared/ports.ts';
import { notRun } from './shared/processes.ts';

const WEBHOOK_ID = 'TEST';
const FORCE_KILL_MS = 10_000;

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    process.stderr.write('usage: node scripts/with-minio.ts <command> [args...]\n');
    return 2;
  }
  const [cmd, ...args] = argv as [string, ...string[]];
  const env: NodeJS.ProcessEnv = {};

  let minio: MinioServer | undefined;
  if (process.env.STORAGE_ENDPOINT) {
    process.stderr.write(`[with-minio] STORAGE_ENDPOINT=${process.env.STORAGE_ENDPOINT} is set: not starting MinIO\n`);
  } else {
    const webhookPort = await getFreePort();
    // The product's own target, as `npm start` expects it: the end-to-end tests run it on this port.
    const eventsPort = await getFreePort();
    const eventsToken = randomBytes(24).toString('base64url');
    const t0 = Date.now();
    minio = await startMinio({
      webhooks: {
        [WEBHOOK_ID]: `http://127.0.0.1:${webhookPort}/minio-events`,
        [WEBHOOK_TARGET_ID]: { url: `http://127.0.0.1:${eventsPort}/minio-events`, token: eventsToken },
      },
    });
    process.stderr.write(`[with-minio] MinIO ready on ${minio.endpoint} in ${Date.now() - t0} ms (log ${minio.logFile})\n`);
    Object.assign(env, {
      ...storageSettings(minio),
      TEST_MINIO_WEBHOOK_PORT: String(webhookPort),
      TEST_MINIO_WEBHOOK_ARN: `arn:minio:sqs::${WEBHOOK_ID}:webhook`,
      TRANSCRIBO_EVENTS_PORT: String(eventsPort),
      TRANSCRIBO_EVENTS_TOKEN: eventsToken,
      TEST_MINIO_DATA_DIR: minio.dataDir,
    });
  }

  // node_modules/.bin (of the cwd and its parents, and of this repository) before PATH, as npm runs scripts.
  const child = execa(cmd, args, { env, stdio: 'inherit', preferLocal: true, localDir: resolve(import.meta.dirname, '..'), reject: false });

  // Ctrl-C reaches the whole process group anyway; a SIGTERM aimed at us alone is passed on.
  let forceTimer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (forceTimer) {
      child.kill('SIGKILL');
      return;
    }
    child.kill(signal, { forceKillAfterTimeout: false });
    forceTimer = setTimeout(() => child.kill('SIGKILL'), FORCE_KILL_MS);
    forceTimer.unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const result = await child;
  const unrun = notRun(result);
  if (unrun !== undefined) process.stderr.write(`[with-minio] could not run ${cmd}: ${unrun}\n`);
  if (forceTimer) clearTimeout(forceTimer);
  await minio?.stop();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (result.signal) return 128 + (osConstants.signals[result.signal as NodeJS.Signals] ?? 1);
  return result.exitCode ?? 127;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[with-minio] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
