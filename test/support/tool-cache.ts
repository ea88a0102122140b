import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { notRun, processAlive, tail } from '../../scripts/shared/processes.ts';

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
    if (match && !processAlive(Number(match[1]))) await rm(join(root, entry), { recursive: true, force: true });
  }
}

/** Runs a command to completion; rejects with its output's tail when it fails. */
export async function runTool(command: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<string> {
  const result = await execa(command, args, { env, extendEnv: false, stdin: 'ignore', all: true, reject: false, stripFinalNewline: false });
  const unrun = notRun(result);
  if (unrun !== undefined) throw new Error(`${what}: could not run ${command}: ${unrun}`);
  if (result.failed) throw new Error(`${what} failed (${result.exitCode ?? result.signal}): ${command} ${args.join(' ')}\n${tail(result.all ?? '')}`);
  return result.all ?? '';
}
