import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Tools the tests need but Debian would otherwise have to provide (a browser, jq), made once
 * per version into ~/.cache/transcribo/<name>, beside the MinIO build.
 *
 * Each is made in a staging directory and renamed into place, so the cached path only ever
 * holds a complete tool: two test files (or two `npm test`s) that race both make it, the
 * first rename wins and the other copy is dropped. No lock, so nothing waits on a lock left
 * by a killed run; a killed run's staging directory is removed by the next one.
 */
export async function cachedTool(name: string, make: (staging: string) => Promise<void>): Promise<string> {
  const root = join(homedir(), '.cache', 'transcribo');
  const dir = join(root, name);
  if (existsSync(dir)) return dir;
  await mkdir(root, { recursive: true });
  await removeAbandonedStaging(root, name);
  const staging = join(root, `${name}.partial-${process.pid}-${Date.now()}`);
  await mkdir(staging);
  try {
    await make(staging);
    await rename(staging, dir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another process finished first: its copy is as good as ours.
    const code = (error as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(dir)) return dir;
    throw error;
  }
  return dir;
}

async function removeAbandonedStaging(root: string, name: string): Promise<void> {
  for (const entry of await readdir(root)) {
    const match = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.partial-(\\d+)-\\d+$`).exec(entry);
    if (match && !alive(Number(match[1]))) await rm(join(root, entry), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs a command to completion; rejects with its output's tail when it fails. */
export function runTool(command: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', (error) => reject(new Error(`${what}: could not run ${command}: ${error.message}`)));
    child.on('close', (code, signal) =>
      code === 0 ? resolve(output) : reject(new Error(`${what} failed (${code ?? signal}): ${command} ${args.join(' ')}\n${output.trimEnd().split('\n').slice(-30).join('\n')}`)),
    );
  });
}
