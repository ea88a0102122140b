import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../support/audio-fixtures.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * The library as a backend gets it (README, Library API): `npm pack` of this repository, as npm
 * runs it (the `prepare` script builds dist/), installed with `npm install <tarball>` into a
 * scratch project of its own, the way a published name would be; then a TypeScript consumer that
 * imports 'transcribo-storage' is type-checked against the shipped declarations (nodenext, strict,
 * the declarations checked too), and run under Node against the MinIO `npm test` provides:
 * storeFile, getFile, deleteFile, with the bytes read back identical. Nothing is written into the
 * repository: the package is packed from a copy of what its build needs, in a temporary directory.
 */

const root = resolve(import.meta.dirname, '..', '..');
const repoPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** The parent's environment without what `npm test` and the harness add: npm's own settings, the storage and AWS settings. */
const shell = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|STORAGE_|TRANSCRIBO_|TEST_MINIO|AWS_|POWERTOOLS_)/i.test(name)));

interface Run {
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(command: string, args: string[], options: { cwd: string; env?: Record<string, string | undefined> }): Promise<Run> {
  const started = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? shell, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code === 0) done({ stdout, stderr, seconds });
      else fail(new Error(`${command} ${args.join(' ')} exited ${code} in ${options.cwd}\n${stdout}\n${stderr}`));
    });
  });
}

/** What a backend writes: the README's calls, typed by the package's declarations. */
const CONSUMER = `import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  storageService,
  StorageError,
  StorageFileNotFoundError,
  type FileContent,
  type FileInfo,
  type StoreFileInput,
} from 'transcribo-storage';
// @ts-expect-error the exports map publishes the entry point only
import type { StorageConfig } from 'transcribo-storage/dist/config.js';

const owner = 'backend-user';
const bytes = await readFile(process.argv[2]!);
const input: StoreFileInput = { filename: 'call.wav', contentType: 'audio/wav', size: bytes.length };

const storage = storageService();
const info: FileInfo = await storage.storeFile(owner, bytes, input);
const whole: FileContent = await storage.getFile(owner, info.fileId);
const chunks: Buffer[] = [];
for await (const chunk of whole.stream) chunks.push(chunk as Buffer);
const readBack = Buffer.concat(chunks);
const header = await storage.getFile(owner, info.fileId, { range: { start: 0, end: 43 } });
const headerChunks: Buffer[] = [];
for await (const chunk of header.stream) headerChunks.push(chunk as Buffer);
const deleted: boolean = await storage.deleteFile(owner, info.fileId);
const restored: FileInfo = await storage.restoreFile(owner, info.fileId);
const purged: boolean = await storage.deleteFile(owner, info.fileId, { purge: true });

let afterDelete = 'still there';
try {
  await storage.getFileInfo(owner, info.fileId);
} catch (error) {
  if (error instanceof StorageFileNotFoundError && error instanceof StorageError) afterDelete = error.name;
}
let deepImport = 'allowed';
try {
  // @ts-expect-error the exports map publishes the entry point only
  await import('transcribo-storage/dist/service/storage-service.js');
} catch (error) {
  deepImport = (error as { code?: string }).code ?? String(error);
}

/** Never called: it only has to fail to type-check, which it cannot if the exports were \`any\`. */
export function untyped(config: StorageConfig) {
  // @ts-expect-error storeFile takes the content and its description
  return [storage.storeFile(owner), config];
}

console.log('RESULT ' + JSON.stringify({
  info,
  sha256: createHash('sha256').update(readBack).digest('hex'),
  identical: readBack.equals(bytes),
  header: { range: header.range, same: Buffer.concat(headerChunks).equals(bytes.subarray(0, 44)) },
  afterDelete,
  deleted,
  restored: restored.status,
  purged,
  deepImport,
}));
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'es2024',
    lib: ['es2024'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    types: ['node'],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
  },
  files: ['consumer.ts'],
};

let work: string;
let tarball: string;
let packed: { filename: string; size: number; files: { path: string }[] };
let scratch: string;
const figures: Record<string, string> = {};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'transcribo-package-'));
  // What the build needs, copied: `npm pack` here runs the prepare script as npm runs it, and its
  // dist/ lands in the copy, not in the repository.
  const source = join(work, 'source');
  for (const path of ['package.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'lib', 'scripts']) {
    cpSync(join(root, path), join(source, path), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
  const pack = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: source });
  [packed] = JSON.parse(pack.stdout);
  tarball = join(work, packed.filename);
  figures.pack = `built and packed in ${pack.seconds.toFixed(1)} s (${(packed.size / 1024).toFixed(0)} kB, ${packed.files.length} files)`;

  scratch = join(work, 'backend');
  cpSync(join(root, 'test', 'fixtures', 'audio', 'mono-16k.wav'), join(scratch, 'call.wav'));
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'backend', private: true, type: 'module' }, null, 2));
  // The tarball and its dependencies, and the Node types any TypeScript backend has; from npm's
  // cache where it holds them.
  const install = await run(
    'npm',
    ['install', tarball, `@types/node@${repoPackage.devDependencies['@types/node']}`, '--prefer-offline', '--no-audit', '--no-fund'],
    { cwd: scratch },
  );
  figures.install = `installed in ${install.seconds.toFixed(1)} s`;
  writeFileSync(join(scratch, 'consumer.ts'), CONSUMER);
  writeFileSync(join(scratch, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG, null, 2));
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  if (Object.keys(figures).length > 0) process.stdout.write(`package: ${Object.values(figures).join(', ')}\n`);
});

describe('transcribo-storage as an npm package', { timeout: 90_000 }, () => {
  it('ships the compiled library with its declarations, and none of the sources, tests or scripts', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/service/storage-service.js']));
    expect(paths.filter((p) => !p.startsWith('dist/') && p !== 'package.json' && p !== 'README.md')).toEqual([]);
    expect(paths.filter((p) => !/\.(js|d\.ts)$/.test(p) && p.startsWith('dist/'))).toEqual([]);
    const installed = JSON.parse(readFileSync(join(scratch, 'node_modules', 'transcribo-storage', 'package.json'), 'utf8'));
    expect(installed.exports).toEqual({ '.': { types: './dist/index.d.ts', default: './dist/index.js' } });
  });

  it('type-checks a consumer importing it by name; a deep import is an error (exports map)', async () => {
    // The consumer's @ts-expect-error lines are errors that must happen (else TS2578 fails the
    // check): a deep import into dist/, and a wrong call, which an untyped (any) export would allow.
    // A failure throws with tsc's output.
    const check = await run(process.execPath, [tsc, '-p', join(scratch, 'tsconfig.json')], { cwd: scratch });
    figures.typecheck = `type-checked in ${check.seconds.toFixed(1)} s`;
  });

  describe('against MinIO', () => {
    let env: MinioEnvironment;
    beforeAll(async () => {
      env = await prepareMinioEnvironment();
    });
    afterAll(async () => {
      await env?.cleanup();
    });

    it('stores, reads back identical bytes and deletes, configured by STORAGE_* alone', async () => {
      const consumer = await run(process.execPath, ['consumer.ts', 'call.wav'], { cwd: scratch, env: { ...shell, ...env.env } });
      figures.run = `ran in ${consumer.seconds.toFixed(1)} s`;
      const line = consumer.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      expect(line, consumer.stdout + consumer.stderr).toBeDefined();
      const result = JSON.parse(line!.slice('RESULT '.length));
      const original = fixture('mono-16k.wav');
      expect(result.info).toMatchObject({ status: 'ready', filename: 'call.wav', size: original.length, encrypted: true, audio: { codec: 'PCM', sampleRate: 16000, channels: 1 } });
      expect(result.info.sha256).toBe(createHash('sha256').update(original).digest('hex'));
      expect(result.sha256).toBe(result.info.sha256);
      expect(result.identical).toBe(true);
      expect(result.header).toEqual({ range: { start: 0, end: 43, total: original.length }, same: true });
      expect(result.afterDelete).toBe('StorageFileNotFoundError');
      expect(result).toMatchObject({ deleted: true, restored: 'ready', purged: true });
      expect(result.deepImport).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
      // It worked on the buckets it was given (the usage ledger's records of the file are there),
      // and deleting left no recording, manifest or marker.
      const left = await env.keys(env.config.bucket);
      expect(left.some((key) => key.includes(result.info.fileId))).toBe(true);
      expect(left.filter((key) => /^(files|manifests|pending)\//.test(key))).toEqual([]);
      expect(await env.keys(env.config.incomingBucket)).toEqual([]);
    });
  });
});
