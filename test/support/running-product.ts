import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { getFreePort } from '../../scripts/minio.ts';

/**
 * `npm start` as a child process, the way a developer runs it, for tests over HTTP. It is
 * started with `process.execPath` (the Node 24 that runs the tests) and stopped with SIGTERM.
 */

export interface RunningProduct {
  api: string;
  output: () => string;
  stop(): Promise<void>;
}

const root = resolve(import.meta.dirname, '..', '..');

export async function startProduct(env: Record<string, string>, timeoutMs = 90_000): Promise<RunningProduct> {
  const httpPort = await getFreePort();
  const lambdaPort = await getFreePort();
  const child: ChildProcess = spawn(process.execPath, ['scripts/start.ts'], {
    cwd: root,
    env: {
      ...process.env,
      ...env,
      TRANSCRIBO_HTTP_PORT: String(httpPort),
      TRANSCRIBO_LAMBDA_PORT: String(lambdaPort),
      POWERTOOLS_LOG_LEVEL: 'WARN',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`npm start was not ready within ${timeoutMs} ms:\n${output.slice(-3000)}`)), timeoutMs);
    const check = () => {
      if (output.includes('Transcribo storage is ready')) {
        clearTimeout(timer);
        ready();
      }
    };
    child.stdout?.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`npm start exited (${code}) before it was ready:\n${output.slice(-3000)}`));
    });
  });

  return {
    api: `http://127.0.0.1:${httpPort}`,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((done) => child.once('exit', done));
      // The whole group: serverless-offline and its workers go too.
      process.kill(-child.pid!, 'SIGTERM');
      const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}
