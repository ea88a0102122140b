import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { getFreePort } from '../../scripts/shared/ports.ts';

/**
 * `npm start` as a child process, the way a developer runs it, for tests over HTTP. It is
 * started with `process.execPath` (the Node 24 that runs the tests) and stopped with SIGTERM.
 */

export interface RunningProduct {
  api: string;
  /** Where its functions take invocations (npm run redrive talks to it). */
  lambdaPort: number;
  pid: number;
  output: () => string;
  stop(): Promise<void>;
  /** SIGKILL to the whole process group: the functions die mid-run, as a crashed host's would. */
  kill(): Promise<void>;
}

const root = resolve(import.meta.dirname, '..', '..');

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resident memory of a process and all its descendants, in MB (Linux /proc). */
export function processTreeRssMb(pid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  let kb = 0;
  const visit = (p: number) => {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      return;
    }
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return kb / 1024;
}

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

  const signalGroup = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    // The whole group: serverless-offline goes too.
    process.kill(-child.pid!, signal);
    const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
    // Children of the group may outlive the leader by a moment; wait until none is left.
    for (let i = 0; i < 100 && groupAlive(child.pid!); i++) await new Promise((r) => setTimeout(r, 50));
  };
  return {
    api: `http://127.0.0.1:${httpPort}`,
    lambdaPort,
    pid: child.pid!,
    output: () => output,
    stop: () => signalGroup('SIGTERM'),
    kill: () => signalGroup('SIGKILL'),
  };
}
