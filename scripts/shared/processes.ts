import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { ExecaError, ExecaReturnValue } from 'execa';

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH, else in `elsewhere` (directories a fresh machine may lack on PATH). */
export function findOnPath(name: string, elsewhere: string[] = []): string | undefined {
  return [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...elsewhere].map((dir) => join(dir, name)).find(isExecutable);
}

/** Go's tarball installs into /usr/local/go/bin, which is often not on PATH yet. */
export const findGo = (): string | undefined => findOnPath('go', ['/usr/local/go/bin']);

/** Whether a process of this host still runs (EPERM: it does, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The last `lines` lines of a command's output, for an error message. */
export function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Why a command run with execa's `reject: false` never ran (not found, not executable), or
 * undefined when it ran, whatever its exit.
 */
export function notRun(result: ExecaReturnValue): string | undefined {
  return (result as Partial<ExecaError>).originalMessage;
}
