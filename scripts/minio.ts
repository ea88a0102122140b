// A real MinIO server for tests, the bench and local runs.
//
// MinIO's community edition is distributed as source only, so the binary is built once with
// `go install github.com/minio/minio@<MINIO_VERSION>` into a per-version cache directory and
// reused afterwards. Nothing here falls back to an emulator: if MinIO cannot be built or
// started, the caller gets an error saying exactly why.
//
// CLI: `node scripts/minio.ts install` builds it (if needed) and prints the binary's path.
// `npm run minio` (scripts/run-minio.ts) runs one for `npm start`.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, closeSync, openSync, rmSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { homedir, hostname, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Pinned pseudo-version of github.com/minio/minio. */
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';
export const MINIO_MODULE = 'github.com/minio/minio';

const HEALTH_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const LOCK_WAIT_MS = 30 * 60_000;

export interface WebhookTarget {
  url: string;
  /** Sent as `Authorization: Bearer <token>` with every event. */
  token?: string;
}

export interface StartMinioOptions {
  /** S3 API port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** A data directory of the caller's, kept by stop() (npm run minio); absent, a temp one that stop() removes. */
  dataDir?: string;
  /** Root credentials; random when absent. */
  credentials?: { accessKey: string; secretKey: string };
  /** Webhook notification targets: target id (e.g. `TEST`) → endpoint. ARN: `arn:minio:sqs::<id>:webhook`. */
  webhooks?: Record<string, string | WebhookTarget>;
  /** Where MinIO queues undelivered events; defaults to a sibling of the data dir. */
  queueDir?: string;
  /**
   * Serve TLS: MinIO's `--certs-dir`, holding `public.crt` (the server's certificate, chain
   * after it if any) and `private.key` (PEM). The endpoint becomes https.
   */
  certsDir?: string;
  /**
   * MinIO's static KMS key, `<key-name>:<base64 of 32 bytes>` (MINIO_KMS_SECRET_KEY), so that
   * SSE-S3 and bucket default encryption work: without one MinIO refuses both (NotImplemented)
   * and keeps objects in the clear on disk. Absent, one is generated for this server; `false`
   * runs it without KMS, as a user's own MinIO may be. Objects encrypted under a key are
   * unreadable without it: a caller keeping `dataDir` across runs must pass the same key.
   */
  kmsKey?: string | false;
}

export interface MinioServer {
  /** `http://127.0.0.1:<port>`, or https with `certsDir` */
  endpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  dataDir: string;
  /** MinIO's combined stdout/stderr. Removed by stop(). */
  logFile: string;
  /** Where undelivered webhook events wait. */
  queueDir: string;
  /** The KMS key it runs with (kept by resume()), or undefined without KMS. */
  kmsKey: string | undefined;
  /** SIGTERM, SIGKILL after 5 s, then removes the temp dir (data, queue, log). Idempotent. */
  stop(): Promise<void>;
  /** Kills the server (SIGKILL, as a crash) or stops it (SIGTERM), keeping its data and queue. */
  halt(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts it again on the same port, credentials, data and queue. */
  resume(): Promise<void>;
}

/** The product's STORAGE_* settings for reaching a server started here. */
export function storageSettings(server: MinioServer): Record<string, string> {
  return {
    STORAGE_ENDPOINT: '127.0.0.1',
    STORAGE_PORT: String(server.port),
    STORAGE_SECURE: 'false',
    STORAGE_ACCESS_KEY: server.accessKey,
    STORAGE_SECRET_KEY: server.secretKey,
    STORAGE_REGION: 'us-east-1',
  };
}

/** A fresh MINIO_KMS_SECRET_KEY value: MinIO's single static key, named `name`. */
export function generateKmsKey(name = 'transcribo'): string {
  return `${name}:${randomBytes(32).toString('base64')}`;
}

/** Directory that `go install` uses as GOBIN for the pinned version. */
export function minioCacheDir(): string {
  return join(homedir(), '.cache', 'transcribo', `minio-${MINIO_VERSION}`);
}

/** Where the cached binary lives (whether or not it exists yet). */
export function minioBinaryPath(): string {
  return join(minioCacheDir(), 'minio');
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const s = await stat(path);
    if (!s.isFile()) return false;
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findGo(): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, 'go');
    if (await isExecutable(candidate)) return candidate;
  }
  // Go's tarball installs here; fresh machines often do not have it on PATH yet.
  if (await isExecutable('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  return undefined;
}

function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take an exclusive lock (a directory created atomically). Waits while another live process
 * holds it; a lock left by a dead process on this host is removed.
 */
async function acquireLock(lockDir: string, isDone: () => Promise<boolean>): Promise<(() => Promise<void>) | undefined> {
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
    if (await isDone()) return undefined;
    const owner = await readFile(join(lockDir, 'owner'), 'utf8').catch(() => '');
    const [pidText, host] = owner.trim().split(' ');
    const pid = Number(pidText);
    if (owner && host === hostname() && Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) {
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

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; error?: Error }> {
  return new Promise((resolvePromise) => {
    let output = '';
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > 1_000_000) output = output.slice(-500_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (error) => resolvePromise({ code: null, signal: null, output, error }));
    child.on('close', (code, signal) => resolvePromise({ code, signal, output }));
  });
}

/**
 * Path of a MinIO binary: `$MINIO_BINARY` if set, else the cached build of MINIO_VERSION,
 * building it with `go install` first if needed (minutes the first time).
 */
export async function ensureMinioBinary(): Promise<string> {
  const override = process.env.MINIO_BINARY;
  if (override) {
    const path = resolve(override);
    if (!(await isExecutable(path))) throw new Error(`MINIO_BINARY=${override} is not an executable file`);
    return path;
  }

  const cacheDir = minioCacheDir();
  const binary = minioBinaryPath();
  if (await isExecutable(binary)) return binary;

  await mkdir(join(cacheDir, '..'), { recursive: true });
  const release = await acquireLock(`${cacheDir}.lock`, () => isExecutable(binary));
  if (!release) return binary; // another process built it while we waited
  try {
    if (await isExecutable(binary)) return binary;

    const pkg = `${MINIO_MODULE}@${MINIO_VERSION}`;
    // Build into a staging GOBIN and rename into place, so the cached path only ever holds a
    // complete binary, even if this process is killed mid-build.
    const staging = `${cacheDir}.staging-${process.pid}`;
    const command = `GOBIN=${cacheDir} go install ${pkg}`;
    const go = await findGo();
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
    const result = await run(go, ['install', pkg], { ...process.env, GOBIN: staging });
    const logPath = `${cacheDir}.install.log`;
    await writeFile(logPath, result.output).catch(() => {});
    const built = join(staging, 'minio');
    if (result.error || result.code !== 0 || !(await isExecutable(built))) {
      await rm(staging, { recursive: true, force: true });
      const why = result.error
        ? `could not run ${go}: ${result.error.message}`
        : result.code !== 0
          ? `exit ${result.code ?? result.signal}`
          : 'it exited 0 but produced no binary';
      throw new Error(
        `Building MinIO failed (${why}).\nCommand: ${command}\n(go: ${go}; full log: ${logPath})\n--- stderr tail ---\n${tail(result.output)}`,
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

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function getFreePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolvePromise(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

async function readTail(path: string, lines = 40): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text ? tail(text, lines) : '(no output)';
}

/**
 * Status of GET `url`. Over https it trusts exactly the certificate in `certFile` (a leaf is
 * accepted as its own anchor), so the check needs no CA and never trusts another server.
 */
async function probe(url: string, certFile: string | undefined): Promise<number> {
  if (certFile === undefined) {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status;
  }
  const ca = await readFile(certFile, 'utf8');
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(url, { ca, allowPartialTrustChain: true, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolvePromise(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolvePromise(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolvePromise(true);
    };
    child.once('exit', onExit);
  });
}

/**
 * Start a single-drive MinIO on 127.0.0.1 with a fresh temp data dir and random root
 * credentials. Resolves once `GET /minio/health/live` answers 200.
 */
export async function startMinio(opts: StartMinioOptions = {}): Promise<MinioServer> {
  const binary = await ensureMinioBinary();
  const port = opts.port ?? (await getFreePort());
  let consolePort = await getFreePort();
  while (consolePort === port) consolePort = await getFreePort();

  const root = await mkdtemp(join(tmpdir(), 'transcribo-minio-'));
  const dataDir = opts.dataDir ?? join(root, 'data');
  const queueDir = opts.queueDir ?? join(root, 'queue');
  const logFile = join(root, 'minio.log');
  await mkdir(dataDir, { recursive: true });
  await mkdir(queueDir, { recursive: true });

  const accessKey = opts.credentials?.accessKey ?? `tr${randomBytes(9).toString('hex')}`;
  const secretKey = opts.credentials?.secretKey ?? randomBytes(24).toString('hex');

  // Do not let a developer's own MINIO_* settings leak into the throwaway server.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MINIO_')) env[k] = v;
  Object.assign(env, {
    MINIO_ROOT_USER: accessKey,
    MINIO_ROOT_PASSWORD: secretKey,
    MINIO_BROWSER: 'off',
    MINIO_UPDATE: 'off',
  });
  const kmsKey = opts.kmsKey === false ? undefined : (opts.kmsKey ?? generateKmsKey());
  if (kmsKey !== undefined) {
    if (!/^[A-Za-z0-9_-]+:[A-Za-z0-9+/]{43}=$/.test(kmsKey)) throw new Error('kmsKey must be <key-name>:<base64 of 32 bytes>');
    env.MINIO_KMS_SECRET_KEY = kmsKey;
  }
  for (const [id, target] of Object.entries(opts.webhooks ?? {})) {
    if (!/^[A-Za-z0-9]+$/.test(id)) throw new Error(`webhook target id must be alphanumeric, got ${JSON.stringify(id)}`);
    const { url, token } = typeof target === 'string' ? { url: target, token: undefined } : target;
    env[`MINIO_NOTIFY_WEBHOOK_ENABLE_${id}`] = 'on';
    env[`MINIO_NOTIFY_WEBHOOK_ENDPOINT_${id}`] = url;
    env[`MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${id}`] = queueDir;
    if (token) env[`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${id}`] = token;
  }

  const args = ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`];
  if (opts.certsDir !== undefined) args.push('--certs-dir', resolve(opts.certsDir));
  const endpoint = `${opts.certsDir === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const servedCert = opts.certsDir === undefined ? undefined : join(resolve(opts.certsDir), 'public.crt');
  let child: ChildProcess | undefined;
  let stopping = false;

  // Never leave an orphaned server behind if the owner exits without calling stop().
  const onProcessExit = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  };
  process.on('exit', onProcessExit);

  const halt = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM') => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    stopping = true;
    running.kill(signal);
    if (!(await waitForExit(running, STOP_GRACE_MS))) {
      running.kill('SIGKILL');
      await waitForExit(running, STOP_GRACE_MS);
    }
  };

  let stopPromise: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopPromise ??= (async () => {
      await halt();
      process.off('exit', onProcessExit);
      await rm(root, { recursive: true, force: true });
    })();
    return stopPromise;
  };

  const launch = async (): Promise<void> => {
    stopping = false;
    const logFd = openSync(logFile, 'a');
    let spawned: ChildProcess;
    try {
      spawned = spawn(binary, args, { env, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    child = spawned;
    let ready = false;
    let spawnError: Error | undefined;
    spawned.on('error', (err) => {
      spawnError = err;
    });
    spawned.on('exit', (code, signal) => {
      if (ready && !stopping) process.stderr.write(`[minio] MinIO on port ${port} exited unexpectedly (${code ?? signal}); log: ${logFile}\n`);
    });
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    let probeError = '';
    for (;;) {
      if (spawnError || spawned.exitCode !== null || spawned.signalCode !== null) {
        const logTail = await readTail(logFile);
        await stop();
        throw new Error(
          `MinIO failed to start (${spawnError ? spawnError.message : `exit ${spawned.exitCode ?? spawned.signalCode}`}).\n` +
            `Command: ${binary} ${args.join(' ')}\n--- MinIO output ---\n${logTail}`,
        );
      }
      try {
        if ((await probe(`${endpoint}/minio/health/live`, servedCert)) === 200) break;
      } catch (err) {
        // Not listening yet; kept so a certificate the check cannot trust is named if it never passes.
        probeError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      if (Date.now() > deadline) {
        const logTail = await readTail(logFile);
        await stop();
        throw new Error(
          `MinIO did not answer 200 on ${endpoint}/minio/health/live within ${HEALTH_TIMEOUT_MS / 1000} s` +
            `${probeError ? ` (last error: ${probeError})` : ''}.\n` +
            `Command: ${binary} ${args.join(' ')}\n--- MinIO output ---\n${logTail}`,
        );
      }
      await sleep(100);
    }
    ready = true;
  };

  await launch();
  return { endpoint, port, accessKey, secretKey, dataDir, queueDir, kmsKey, logFile, stop, halt, resume: launch };
}

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  if (cmd === 'install') {
    process.stdout.write(`${await ensureMinioBinary()}\n`);
    return 0;
  }
  process.stderr.write('usage: node scripts/minio.ts install\n');
  return 2;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
