/**
 * The functions of serverless.yml, run by serverless-offline (osls) the way Lambda runs them,
 * kept running the way Lambda keeps them: if the process dies (a crash, an out-of-memory), a
 * new one is started, as Lambda starts a new execution environment. Callers see the gap as
 * `upstream()` being undefined (the gateway holds requests) or as `unavailable` invocations (the
 * event queue holds events).
 *
 * serverless-offline runs every handler in its own process (`useInProcess` in serverless.yml):
 * its default, a worker thread per concurrent request, grew to 62 MB a worker, without bound.
 * It still keeps one function instance per concurrent invocation, each holding on to its last
 * response (a few MB for content), until the instance has been idle `terminateIdleLambdaTime`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { InvokeResult } from './event-queue.ts';

export interface FunctionsRuntime {
  /** Where the HTTP functions listen, while they are up. */
  upstream(): { host: string; port: number } | undefined;
  /** Invokes a function by its name in serverless.yml and waits for its result. */
  invoke(name: string, payload: unknown): Promise<InvokeResult>;
  readonly restarts: number;
  stop(): Promise<void>;
}

const RESTART_LIMIT = 5;
const RESTART_WINDOW_MS = 60_000;

export function startFunctions(options: {
  root: string;
  stage: string;
  service: string;
  env: NodeJS.ProcessEnv;
  httpPort: number;
  lambdaPort: number;
  /** Echoes serverless-offline's own output. */
  output: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  log: (line: string) => void;
  onReady: (first: boolean) => void;
  /** Called when it keeps dying: RESTART_LIMIT times within a minute. */
  onGiveUp: (code: number) => void;
}): FunctionsRuntime {
  let child: ChildProcess | undefined;
  let up = false;
  let stopping = false;
  let restarts = 0;
  let everReady = false;
  const deaths: number[] = [];

  const launch = () => {
    up = false;
    const spawned = spawn(join(options.root, 'node_modules', '.bin', 'osls'), ['offline', 'start', '--stage', options.stage], {
      cwd: options.root,
      env: {
        // glibc raises its mmap threshold after the first multi-MB free, so response buffers then
        // come from the heap and RSS never comes back down; a fixed threshold returns them to the
        // OS (measured: idle RSS 850 MB after load without it, 245 MB with it).
        MALLOC_MMAP_THRESHOLD_: '131072',
        MALLOC_ARENA_MAX: '2',
        ...options.env,
        // The start script runs the sweep on its own interval.
        TRANSCRIBO_SCHEDULED_SWEEP: 'false',
        TRANSCRIBO_HTTP_HOST: '127.0.0.1',
        TRANSCRIBO_HTTP_PORT: String(options.httpPort),
        TRANSCRIBO_LAMBDA_PORT: String(options.lambdaPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = spawned;
    // serverless-offline writes its banner to either stream depending on the version: watch both.
    const watch = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      options.output(chunk, stream);
      if (!up && chunk.toString().includes('Server ready')) {
        up = true;
        options.onReady(!everReady);
        everReady = true;
      }
    };
    spawned.stdout?.on('data', watch('stdout'));
    spawned.stderr?.on('data', watch('stderr'));
    spawned.on('exit', (code, signal) => {
      up = false;
      if (stopping) return;
      const now = Date.now();
      deaths.push(now);
      while (deaths.length > 0 && now - deaths[0]! > RESTART_WINDOW_MS) deaths.shift();
      if (deaths.length >= RESTART_LIMIT) {
        options.log(`the functions died ${deaths.length} times within a minute (last: ${code ?? signal}); giving up`);
        options.onGiveUp(code ?? 1);
        return;
      }
      restarts++;
      options.log(`the functions stopped (${code ?? signal}); starting them again`);
      setTimeout(launch, 500);
    });
  };
  launch();

  return {
    upstream: () => (up ? { host: '127.0.0.1', port: options.httpPort } : undefined),
    get restarts() {
      return restarts;
    },
    async invoke(name, payload) {
      if (!up) return { ok: false, unavailable: true, message: 'the functions are not running' };
      const url = `http://127.0.0.1:${options.lambdaPort}/2015-03-31/functions/${options.service}-${options.stage}-${name}/invocations`;
      let response: Response;
      try {
        response = await fetch(url, { method: 'POST', body: JSON.stringify(payload) });
      } catch (error) {
        const code = (error as { cause?: { code?: string } }).cause?.code;
        // Refused: not running (yet). Anything else (a reset) cut a running invocation: a failure.
        return { ok: false, unavailable: code === 'ECONNREFUSED', message: `the function was cut off (${code ?? 'error'})` };
      }
      const text = await response.text().catch(() => '');
      if (!response.ok || response.headers.has('x-amz-function-error')) {
        const detail = (() => {
          try {
            const parsed = JSON.parse(text) as { errorType?: string; errorMessage?: string };
            return `${parsed.errorType ?? 'Error'}: ${parsed.errorMessage ?? ''}`.slice(0, 200);
          } catch {
            return `HTTP ${response.status}`;
          }
        })();
        return { ok: false, unavailable: false, message: detail };
      }
      try {
        return { ok: true, payload: JSON.parse(text || 'null') };
      } catch {
        return { ok: true, payload: undefined };
      }
    },
    async stop() {
      stopping = true;
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      const killer = setTimeout(() => running.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}
