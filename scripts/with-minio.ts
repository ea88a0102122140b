// Run a command against a throwaway real MinIO server:
//
//   node scripts/with-minio.ts vitest run
//
// Starts MinIO (building it first if needed) with one webhook notification target `TEST`
// pointing at http://127.0.0.1:<TEST_MINIO_WEBHOOK_PORT>/minio-events, runs the command with
// the STORAGE_* settings for that server, stops MinIO and exits with the command's exit code.
// If STORAGE_ENDPOINT is already set, no MinIO is started: the command runs against it as is.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { WEBHOOK_TARGET_ID } from './local/webhook-target.ts';
import { getFreePort, startMinio, storageSettings, type MinioServer } from './minio.ts';

const WEBHOOK_ID = 'TEST';
const FORCE_KILL_MS = 10_000;

async function isExecutable(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** node_modules/.bin of the cwd and of this repo first, then PATH. */
function searchPath(): string[] {
  const bins = [resolve('node_modules', '.bin'), resolve(import.meta.dirname, '..', 'node_modules', '.bin')];
  const rest = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  return [...new Set([...bins, ...rest])];
}

async function resolveCommand(cmd: string, dirs: string[]): Promise<string> {
  if (cmd.includes('/')) return cmd;
  for (const dir of dirs) {
    const candidate = join(dir, cmd);
    if (await isExecutable(candidate)) return candidate;
  }
  throw new Error(`command not found: ${cmd} (looked in node_modules/.bin and PATH)`);
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? osConstants.signals[signal] : undefined;
  return 128 + (n ?? 1);
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    process.stderr.write('usage: node scripts/with-minio.ts <command> [args...]\n');
    return 2;
  }
  const [cmd, ...args] = argv as [string, ...string[]];
  const dirs = searchPath();
  const file = await resolveCommand(cmd, dirs);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: dirs.join(delimiter) };

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

  let child: ChildProcess;
  try {
    child = spawn(file, args, { env, stdio: 'inherit', shell: false });
  } catch (err) {
    await minio?.stop();
    throw err;
  }

  // Ctrl-C reaches the whole process group anyway; a SIGTERM aimed at us alone is passed on.
  let forceTimer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (forceTimer) {
      child.kill('SIGKILL');
      return;
    }
    child.kill(signal);
    forceTimer = setTimeout(() => child.kill('SIGKILL'), FORCE_KILL_MS);
    forceTimer.unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const code = await new Promise<number>((resolvePromise) => {
    child.on('error', (err) => {
      process.stderr.write(`[with-minio] could not run ${file}: ${err.message}\n`);
      resolvePromise(127);
    });
    child.on('exit', (c, s) => resolvePromise(exitCodeOf(c, s)));
  });
  if (forceTimer) clearTimeout(forceTimer);
  await minio?.stop();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[with-minio] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
