/**
 * `npm run build`: the npm package a backend installs (README, Library API). lib/index.ts and
 * what it imports, compiled to JavaScript with declarations in dist/ (tsconfig.build.json), from
 * an empty dist/ so that no file of an older build is shipped.
 *
 * npm runs it as the `prepare` script: before `npm pack` and `npm publish`, when a backend installs
 * this repository from git, and after every `npm install` / `npm ci` here. So it only emits
 * (`--noCheck`, about a third faster): checking the types is `npm run typecheck`'s job, which CI
 * runs, and test/package/ checks the emitted declarations from a consumer's side.
 *
 * Extra arguments go to tsc; `--outDir <dir>` builds elsewhere (and empties that directory instead).
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const outDirFlag = args.indexOf('--outDir');
const outDir = outDirFlag === -1 ? resolve(root, 'dist') : resolve(args[outDirFlag + 1] ?? 'dist');
rmSync(outDir, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = spawnSync(process.execPath, [tsc, '-p', resolve(root, 'tsconfig.build.json'), '--noCheck', ...args], { stdio: 'inherit' });
process.exit(run.status ?? 1);
