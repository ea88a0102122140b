import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, wav } from '../../support/audio-fixtures.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The README's library example (section "Library API (for backends)"), run as written: the block
 * is taken from the README, saved as a module in a directory holding a `call.wav`, and run by
 * Node in a process of its own against this file's MinIO buckets, configured as a backend would
 * be, from the STORAGE_* variables. Only the package name is pointed at this checkout: the
 * package's entry point (lib/index.ts) where there is one, else the module of the service. A
 * line appended after the block prints what it got, for the assertions below.
 */

const root = resolve(import.meta.dirname, '..', '..', '..');
const example = (() => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const match = /<!-- tested by test\/lib\/service\/library-example\.test\.ts -->\n```ts\n([\s\S]*?)```/.exec(readme);
  if (!match) throw new Error('README lost its library example block');
  return match[1]!;
})();
const entry = ['lib/index.ts', 'lib/service/storage-service.ts'].map((path) => join(root, path)).find((path) => existsSync(path))!;
const RESULT = 'EXAMPLE-RESULT ';

let env: MinioEnvironment;
let dir: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  dir = mkdtempSync(join(tmpdir(), 'transcribo-library-example-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await env.cleanup();
});

function run(module: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [module], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: dir, POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT', ...env.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((done) => child.on('exit', (code) => done({ code, stdout, stderr })));
}

describe("the README's library example", () => {
  it('stores with a caller id, metadata and encrypt, reads, exports, deletes, and opens the export afterwards', { timeout: 60_000 }, async () => {
    const imports = example.match(/from 'transcribo-storage';/g) ?? [];
    expect(imports, 'the example imports the package by its name').toHaveLength(1);
    const source = example.replace("from 'transcribo-storage';", `from '${pathToFileURL(entry).href}';`);
    writeFileSync(
      join(dir, 'example.mts'),
      `${source}\nconsole.log(${JSON.stringify(RESULT)} + JSON.stringify({ info, fileId, metadata, range, sealed, status, size, sha256, plaintextBytes, deleted }));\n`,
    );
    const bytes = wav(5 * 65_536 + 4321);
    writeFileSync(join(dir, 'call.wav'), bytes);

    const { code, stdout, stderr } = await run('example.mts');
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    const line = stdout.split('\n').find((l) => l.startsWith(RESULT));
    expect(line, stdout).toBeDefined();
    const result = JSON.parse(line!.slice(RESULT.length));
    const fileId: string = result.fileId;

    const metadata = { patient: 'p-1234', visit: '2024-05-02' };
    expect(result.info).toMatchObject({ fileId, status: 'ready', filename: 'call.wav', size: bytes.length, sha256: sha256(bytes), encrypted: true, metadata });
    expect(result.metadata).toEqual(metadata);
    expect(result.range).toEqual({ start: 0, end: 65_535, total: bytes.length });
    expect({ status: result.status, size: result.size, sha256: result.sha256, plaintextBytes: result.plaintextBytes }).toEqual({
      status: 'ready',
      size: bytes.length,
      sha256: sha256(bytes),
      plaintextBytes: bytes.length,
    });
    expect(readFileSync(join(dir, 'copy.wav')).equals(bytes)).toBe(true);
    expect(readFileSync(join(dir, 'first-64k.wav')).equals(bytes.subarray(0, 65_536))).toBe(true);

    // The export: sealed bytes (no plaintext in them) and a description without the data key.
    const exported = readFileSync(join(dir, 'call.sealed'));
    const sealed = JSON.parse(readFileSync(join(dir, 'call.sealed.json'), 'utf8'));
    expect(sealed).toEqual(result.sealed);
    expect(Object.keys(sealed).sort()).toEqual(['encrypted', 'fileId', 'frameSize', 'kekId', 'noncePrefix', 'sha256', 'size', 'storedSize', 'version', 'wrappedKey']);
    expect(sealed).toMatchObject({ encrypted: true, version: 1, kekId: 'k1', fileId, size: bytes.length, sha256: sha256(bytes), storedSize: exported.length });
    expect(exported.includes(bytes.subarray(2000, 2064))).toBe(false);

    // Deleted from storage (usage records aside, and the entry that keeps it restorable for the recovery window), and yet opened afterwards, byte for byte.
    expect((await env.keys(env.config.bucket)).filter((key) => key.includes(fileId) && !key.startsWith('usage/') && !key.startsWith('deleted/'))).toEqual([]);
    expect(readFileSync(join(dir, 'restored.wav')).equals(bytes)).toBe(true);

    // `deleted` is deleteFile's answer: whether it deleted anything.
    expect(result.deleted).toBe(true);
  });
});
