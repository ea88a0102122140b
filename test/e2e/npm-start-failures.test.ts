import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort } from '../../scripts/shared/ports.ts';
import { startMinio } from '../../scripts/minio/server.ts';
import { createCertificateAuthority, createServerCertificate } from '../support/private-ca.ts';
import { minioConnection } from '../support/minio-environment.ts';

/**
 * What a person sees when `npm start` cannot start: one line on stderr that names the cause and
 * the variable to change, and no stack, whatever went wrong.
 */

const root = resolve(import.meta.dirname, '..', '..');
let localDir: string;
const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(STORAGE_|TRANSCRIBO_|AWS_)/.test(name)));

function start(env: Record<string, string>, script = 'scripts/start.ts'): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [script], {
      cwd: root,
      env: { ...clean, TRANSCRIBO_LOCAL_DIR: localDir, TRANSCRIBO_HTTP_PORT: '0', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stderr });
    });
  });
}

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

let busy: Server;
let busyPort: number;
beforeAll(async () => {
  localDir = mkdtempSync(join(tmpdir(), 'transcribo-start-failures-'));
  busy = createServer();
  busyPort = await getFreePort();
  await new Promise<void>((r) => busy.listen(busyPort, '127.0.0.1', r));
});
afterAll(async () => {
  await new Promise((r) => busy.close(r));
  rmSync(localDir, { recursive: true, force: true });
});

describe('npm start that cannot start', () => {
  it('names a bad value and its variable, exit 2', async () => {
    const { code, stderr } = await start({ STORAGE_ENDPOINT: '127.0.0.1', STORAGE_PORT: 'ninety' });
    expect(code).toBe(2);
    expect(oneLine(stderr)).toMatch(/Invalid configuration: STORAGE_PORT: /);
  });

  it('names a storage server that is not there', async () => {
    const port = await getFreePort();
    const { code, stderr } = await start({ STORAGE_ENDPOINT: '127.0.0.1', STORAGE_PORT: String(port), STORAGE_ACCESS_KEY: 'a', STORAGE_SECRET_KEY: 'b' });
    expect(code).toBe(1);
    expect(oneLine(stderr)).toContain(`Cannot reach the storage server at http://127.0.0.1:${port}: connection refused (STORAGE_ENDPOINT, STORAGE_PORT)`);
  });

  it('names the keys a storage server refuses', async () => {
    const m = minioConnection();
    const { code, stderr } = await start({ STORAGE_ENDPOINT: m.endpoint, STORAGE_PORT: m.port, STORAGE_ACCESS_KEY: m.accessKey, STORAGE_SECRET_KEY: 'not-the-secret' });
    expect(code).toBe(1);
    expect(oneLine(stderr)).toContain('refused the credentials (STORAGE_ACCESS_KEY, STORAGE_SECRET_KEY)');
  });

  it('names the keys that are missing', async () => {
    const m = minioConnection();
    const { code, stderr } = await start({ STORAGE_ENDPOINT: m.endpoint, STORAGE_PORT: m.port, AWS_EC2_METADATA_DISABLED: 'true' });
    expect(code).toBe(1);
    expect(oneLine(stderr)).toContain('set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY');
  });

  it('names a TLS certificate it cannot trust, and the variable that trusts its CA', async () => {
    const [ca, other] = await Promise.all([createCertificateAuthority(), createCertificateAuthority('Other CA')]);
    const certs = await createServerCertificate(ca);
    const tls = await startMinio({ certsDir: certs.dir });
    try {
      const settings = { STORAGE_ENDPOINT: '127.0.0.1', STORAGE_PORT: String(tls.port), STORAGE_SECURE: 'true', STORAGE_ACCESS_KEY: tls.accessKey, STORAGE_SECRET_KEY: tls.secretKey };
      const { code, stderr } = await start({ ...settings, STORAGE_CA_FILE: other.file });
      expect(code).toBe(1);
      expect(oneLine(stderr)).toMatch(/Cannot trust the TLS certificate of the storage server at https:\/\/127\.0\.0\.1:\d+ \(STORAGE_CA_FILE/);
      const plain = await start({ ...minioSettings(), STORAGE_SECURE: 'true' });
      expect(oneLine(plain.stderr)).toMatch(/does not speak TLS: set STORAGE_SECURE=false/);
    } finally {
      await tls.stop();
      for (const dir of [ca.dir, other.dir, certs.dir]) rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(['TRANSCRIBO_EVENTS_PORT', 'TRANSCRIBO_LAMBDA_PORT', 'TRANSCRIBO_HTTP_PORT'])('names a port already in use and its variable: %s', async (variable) => {
    const { code, stderr } = await start({ ...minioSettings(), [variable]: String(busyPort) });
    expect(code).toBe(1);
    expect(oneLine(stderr)).toContain(`Port ${busyPort} is already in use (${variable})`);
  });
});

describe('npm run minio that cannot start', () => {
  it('names the port it was told to use (STORAGE_PORT) when it is taken', async () => {
    const { code, stderr } = await start({ STORAGE_PORT: String(busyPort) }, 'scripts/run-minio.ts');
    expect(code).toBe(1);
    expect(oneLine(stderr)).toContain(`Port ${busyPort} is already in use (STORAGE_PORT)`);
  });
});

function minioSettings(): Record<string, string> {
  const m = minioConnection();
  return { STORAGE_ENDPOINT: m.endpoint, STORAGE_PORT: m.port, STORAGE_ACCESS_KEY: m.accessKey, STORAGE_SECRET_KEY: m.secretKey, STORAGE_BUCKET: 'failures-files' };
}
