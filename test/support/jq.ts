import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { findGo, findOnPath } from '../../scripts/shared/processes.ts';
import { cachedTool, runTool } from './tool-cache.ts';

/**
 * A `jq` for the README's curl recipe, which calls it as `jq`.
 *
 * The system's jq when there is one (what a reader of the README has); otherwise gojq, a
 * jq-compatible Go implementation, built once from the Go module proxy with the Go that MinIO
 * already needs, so `npm test` needs no jq from Debian. `TRANSCRIBO_JQ=gojq` takes gojq even
 * where jq is installed (to prove that path on a machine that has both).
 */
export const GOJQ_MODULE = 'github.com/itchyny/gojq/cmd/gojq';
/** v0.12.20 needs a go-yaml pseudo-version the module proxy answers 403 for. */
export const GOJQ_VERSION = 'v0.12.19';

export interface Jq {
  source: 'system' | 'gojq';
  /** The `jq` that runs. */
  path: string;
  /** Put first on PATH so that `jq` is this one; undefined when it is already on PATH. */
  binDir?: string;
}

export async function ensureJq(): Promise<Jq> {
  const wanted = process.env.TRANSCRIBO_JQ ?? '';
  if (!['', 'gojq', 'system'].includes(wanted)) throw new Error(`TRANSCRIBO_JQ=${wanted}: expected "gojq" or "system"`);
  if (wanted !== 'gojq') {
    const system = findOnPath('jq');
    if (system) return { source: 'system', path: system };
    if (wanted === 'system') throw new Error('TRANSCRIBO_JQ=system, but there is no jq on PATH');
  }
  const dir = await cachedTool(`gojq-${GOJQ_VERSION}`, async (staging) => {
    const go = findGo();
    const command = `go install ${GOJQ_MODULE}@${GOJQ_VERSION}`;
    if (!go) throw new Error(`No jq on PATH, and no Go to build gojq with (\`${command}\`): install jq or Go`);
    const started = performance.now();
    await runTool(go, ['install', `${GOJQ_MODULE}@${GOJQ_VERSION}`], { ...process.env, GOBIN: staging }, `building gojq (${command})`);
    // A relative link, so the directory stays valid when renamed into place.
    symlinkSync('gojq', join(staging, 'jq'));
    execFileSync(join(staging, 'jq'), ['-n', '1'], { stdio: 'pipe' });
    process.stderr.write(`[jq] built gojq ${GOJQ_VERSION} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  });
  return { source: 'gojq', path: join(dir, 'jq'), binDir: dir };
}

/** Where `curl` is; the recipe cannot run without it, and it is not built here. */
export function requireCurl(): string {
  const curl = findOnPath('curl');
  if (!curl) throw new Error('curl is not on PATH: the README recipe runs curl as written (on Debian: apt-get install curl)');
  return curl;
}

export function findCurl(): string | undefined {
  return findOnPath('curl');
}
