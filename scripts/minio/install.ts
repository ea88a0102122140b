// MinIO's community edition is distributed as source only, so the binary is built once with
// `go install github.com/minio/minio@<MINIO_VERSION>` into a per-version cache directory and
// reused afterwards. Nothing falls back to an emulator: if MinIO cannot be built, the caller
// gets an error saying exactly why.
//
// CLI (CI builds it before the tests, so that no test worker waits minutes for it):
// `node scripts/minio/install.ts` builds it if needed and prints the binary's path.

import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findGo, isExecutable, notRun, processAlive, tail } from '../shared/processes.ts';

/** Pinned pseudo-version of github.com/minio/minio. */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';
const MINIO_MODULE = 'github.com/minio/minio';

const LOCK_WAIT_MS = 30 * 60_000;

/**
 * Take an exclusive lock (a directory created atomically), so that test workers starting
 * together build MinIO once. Waits while another live process holds it; a lock left by a dead
 * process on this host is removed.
 */
async function acquireLock(lockDir: string, isDone: () => boolean): Promise<(() => Promise<void>) | undefined> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let announced = false;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'owner'), `${process.pid} ${hostname()}\n`);
      return () => rm(lockDir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // Someone else holds the lock: maybe they already finished.
    if (isDone()) return undefined;
    const owner = await readFile(join(lockDir, 'owner'), 'utf8').catch(() => '');
    const [pidText, host] = owner.trim().split(' ');
    const pid = Number(pidText);
    if (owner && host === hostname() && Number.isInteger(pid) && pid > 0 && !processAlive(pid)) {
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!owner) {
      // Owner file not written yet, or the owner died between mkdir and write: give it time.
      const s = await stat(lockDir).catch(() => undefined);
      if (s && Date.now() - s.mtimeMs > 60_000) await rm(lockDir, { recursive: true, force: true });
    }
    if (!announced) {
      process.stderr.write(`[minio] waiting for another process building MinIO (lock ${lockDir})\n`);
      announced = true;
    }
    if (Date.now() > deadline) throw new Error(`Timed out after ${LOCK_WAIT_MS / 60_000} min waiting for the MinIO build lock ${lockDir}`);
    await sleep(1000);
  }
}

/**
 * Path of a MinIO binary: `$MINIO_BINARY` if set, else the cached build of MINIO_VERSION,
 * building it with `go install` first if needed (minutes the first time).
 */
export async function ensureMinioBinary(): Promise<string> {
  const override = process.env.MINIO_BINARY;
  if (override) {
    const path = resolve(override);
    if (!isExecutable(path)) throw new Error(`MINIO_BINARY=${override} is not an executable file`);
    return path;
  }

  const cacheDir = join(homedir(), '.cache', 'transcribo', `minio-${MINIO_VERSION}`);
  const binary = join(cacheDir, 'minio');
  if (isExecutable(binary)) return binary;

  await mkdir(join(cacheDir, '..'), { recursive: true });
  const release = await acquireLock(`${cacheDir}.lock`, () => isExecutable(binary));
  if (!release) return binary; // another process built it while we waited
  try {
    if (isExecutable(binary)) return binary;

    const pkg = `${MINIO_MODULE}@${MINIO_VERSION}`;
    // Build into a staging GOBIN and rename into place, so the cached path only ever holds a
    // complete binary, even if this process is killed mid-build.
    const staging = `${cacheDir}.staging-${process.pid}`;
    const command = `GOBIN=${cacheDir} go install ${pkg}`;
    const go = findGo();
    if (!go) {
      throw new Error(
        `Cannot build MinIO: \`go\` is not on PATH (nor at /usr/local/go/bin/go). ` +
          `Install Go >= 1.24 and run: ${command}  (or set MINIO_BINARY to an existing minio binary)`,
      );
    }
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    const started = Date.now();
    process.stderr.write(`[minio] building MinIO ${MINIO_VERSION} with \`${command}\` (first run only, takes several minutes)\n`);
    const result = await execa(go, ['install', pkg], { env: { GOBIN: staging }, stdin: 'ignore', all: true, reject: false });
    const logPath = `${cacheDir}.install.log`;
    await writeFile(logPath, result.all ?? '').catch(() => {});
    const built = join(staging, 'minio');
    if (result.failed || !isExecutable(built)) {
      await rm(staging, { recursive: true, force: true });
      const unrun = notRun(result);
      const why =
        unrun !== undefined
          ? `could not run ${go}: ${unrun}`
          : result.failed
            ? `exit ${result.exitCode ?? result.signal}`
            : 'it exited 0 but produced no binary';
      throw new Error(
        `Building MinIO failed (${why}).\nCommand: ${command}\n(go: ${go}; full log: ${logPath})\n--- stderr tail ---\n${tail(result.all ?? '')}`,
      );
    }
    await mkdir(cacheDir, { recursive: true });
    await rename(built, binary);
    await rm(staging, { recursive: true, force: true });
    process.stderr.write(`[minio] built ${binary} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    return binary;
  } finally {
    await release();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureMinioBinary().then(
    (binary) => process.stdout.write(`${binary}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
