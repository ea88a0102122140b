// A real MinIO server for tests, the bench and `npm run minio`: the pinned build
// (./install.ts) on 127.0.0.1, with its data, event queue and log in a temp dir of its own.

import { randomBytes } from 'node:crypto';
import { closeSync, openSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ExecaChildProcess, type ExecaReturnValue } from 'execa';
import { getFreePort } from '../shared/ports.ts';
import { notRun, tail } from '../shared/processes.ts';
import { ensureMinioBinary } from './install.ts';

const HEALTH_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

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

/** Whether `key` has the form MINIO_KMS_SECRET_KEY takes: `<key-name>:<base64 of 32 bytes>`. */
export function isKmsKey(key: string): boolean {
  return /^[A-Za-z0-9_-]+:[A-Za-z0-9+/]{43}=$/.test(key);
}

/** MinIO is configured through its environment: root keys, KMS key, webhook targets. */
function serverEnvironment(opts: StartMinioOptions, credentials: { accessKey: string; secretKey: string }, kmsKey: string | undefined, queueDir: string): NodeJS.ProcessEnv {
  // Do not let a developer's own MINIO_* settings leak into the throwaway server.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MINIO_')) env[k] = v;
  Object.assign(env, {
    MINIO_ROOT_USER: credentials.accessKey,
    MINIO_ROOT_PASSWORD: credentials.secretKey,
    MINIO_BROWSER: 'off',
    MINIO_UPDATE: 'off',
  });
  if (kmsKey !== undefined) {
    if (!isKmsKey(kmsKey)) throw new Error('kmsKey must be <key-name>:<base64 of 32 bytes>');
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
  return env;
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
  const kmsKey = opts.kmsKey === false ? undefined : (opts.kmsKey ?? generateKmsKey());
  const env = serverEnvironment(opts, { accessKey, secretKey }, kmsKey, queueDir);

  const args = ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`];
  if (opts.certsDir !== undefined) args.push('--certs-dir', resolve(opts.certsDir));
  const endpoint = `${opts.certsDir === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const servedCert = opts.certsDir === undefined ? undefined : join(resolve(opts.certsDir), 'public.crt');
  let child: ExecaChildProcess | undefined;
  let stopping = false;

  // Never leave an orphaned server behind if the owner exits without calling stop(). SIGKILL, not
  // execa's cleanup (SIGTERM), as the data dir goes at once; and execa's cleanup would also take
  // over SIGINT from owners that wait for it to stop the server (npm run minio).
  const onProcessExit = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  };
  process.on('exit', onProcessExit);

  const halt = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM') => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    stopping = true;
    running.kill(signal, { forceKillAfterTimeout: STOP_GRACE_MS });
    await running;
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
    let spawned: ExecaChildProcess;
    try {
      spawned = execa(binary, args, { env, extendEnv: false, stdio: ['ignore', logFd, logFd], reject: false, cleanup: false });
    } finally {
      closeSync(logFd);
    }
    child = spawned;
    let ready = false;
    let ended: ExecaReturnValue | undefined;
    void spawned.then((result) => {
      ended = result;
      if (ready && !stopping) process.stderr.write(`[minio] MinIO on port ${port} exited unexpectedly (${result.exitCode ?? result.signal}); log: ${logFile}\n`);
    });
    const failure = async (why: string) => {
      const logTail = await readTail(logFile);
      await stop();
      return new Error(`${why}.\nCommand: ${binary} ${args.join(' ')}\n--- MinIO output ---\n${logTail}`);
    };
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    let probeError = '';
    for (;;) {
      if (ended) throw await failure(`MinIO failed to start (${notRun(ended) ?? `exit ${ended.exitCode ?? ended.signal}`})`);
      try {
        if ((await probe(`${endpoint}/minio/health/live`, servedCert)) === 200) break;
      } catch (err) {
        // Not listening yet; kept so a certificate the check cannot trust is named if it never passes.
        probeError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      if (Date.now() > deadline) {
        throw await failure(
          `MinIO did not answer 200 on ${endpoint}/minio/health/live within ${HEALTH_TIMEOUT_MS / 1000} s${probeError ? ` (last error: ${probeError})` : ''}`,
        );
      }
      await sleep(100);
    }
    ready = true;
  };

  await launch();
  return { endpoint, port, accessKey, secretKey, dataDir, queueDir, kmsKey, logFile, stop, halt, resume: launch };
}
