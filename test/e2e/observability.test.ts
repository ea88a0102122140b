import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { formatSoak, runSoak } from '../soak/soak-run.ts';
import { wav } from '../support/audio-fixtures.ts';
import { Client, sha256 } from '../support/client-journey.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';

/**
 * A whole local run watched from the outside: a short soak and a journey through every kind of
 * call (presigned and multipart uploads, reads, a playback link, a 401) through `npm start`, then
 * `npm run stats` on the metrics it kept, and every line it printed searched for what logs must
 * never hold.
 */
const root = resolve(import.meta.dirname, '..', '..');
const MARKER = `TRANSCRIBO-FILE-BYTES-${randomBytes(8).toString('hex')}`;

/** A WAV whose audio data carries the marker, so file bytes in a log would show. */
function markedWav(size: number): Buffer {
  const bytes = wav(size);
  for (let at = 1000; at + MARKER.length < size; at += 100_000) bytes.write(MARKER, at, 'ascii');
  return bytes;
}

let stack: IsolatedStack;
let output = '';
let stats = '';
const issued: string[] = [];
let soakSummary = '';

beforeAll(async () => {
  stack = await startIsolatedStack({
    STORAGE_MAX_FILE_SIZE: String(20 * 1024 * 1024),
    STORAGE_SWEEP_INTERVAL_SECONDS: '5',
    // The test runner turns metrics off for its own process; npm start's functions need them.
    POWERTOOLS_METRICS_DISABLED: 'false',
    // startProduct sets POWERTOOLS_LOG_LEVEL=WARN; Lambda's own log-level control outranks it, so the INFO lines are scanned too.
    AWS_LAMBDA_LOG_LEVEL: 'INFO',
  });
  try {
    const report = await runSoak({ uploads: 24, clients: 6, minBytes: 1000, maxBytes: 4_000_000, settleTimeoutMs: 120_000 }, stack);
    soakSummary = formatSoak(report);
    expect(report).toMatchObject({ ready: 24, lost: 0, corrupted: 0 });

    const token = await stack.token('observer');
    issued.push(token);
    const client = new Client(stack.product.api, token);

    // A presigned form upload, read back whole and by range.
    const small = markedWav(300_000);
    const { fileId } = await client.upload(small);
    expect((await client.settled(fileId, { timeoutMs: 60_000 })).status).toBe('ready');
    expect(await client.readBack(fileId, small.length, 100_000)).toBe(sha256(small));
    await client.json('GET', `/files/${fileId}/size`);

    // A playback link, followed with no header.
    const link = await client.json<{ url: string }>('POST', `/files/${fileId}/links`, {});
    issued.push(new URL(link.url).searchParams.get('token')!);
    const played = await fetch(link.url.replace(/^https?:\/\/[^/]+/, stack.product.api), { headers: { range: 'bytes=0-999' } });
    expect(played.status).toBe(206);
    await played.arrayBuffer();

    // A 401: a token signed with another secret.
    const forged = await signBearerToken(randomBytes(32).toString('hex'), 'mallory', '1h');
    issued.push(forged);
    const refused = await new Client(stack.product.api, forged).call('GET', `/files/${fileId}`);
    expect(refused.status).toBe(401);

    // A multipart upload: two parts of 5 MiB and 1 MiB.
    const big = markedWav(6 * 1024 * 1024);
    const created = await client.json<{ fileId: string }>('POST', '/files', {
      filename: 'long.wav',
      contentType: 'audio/wav',
      size: big.length,
      sha256: sha256(big),
      uploadMethod: 'MULTIPART',
      partSize: 5 * 1024 * 1024,
    });
    const parts = await client.json<{ parts: Array<{ partNumber: number; size: number; url: string }> }>('POST', `/files/${created.fileId}/parts`, { partNumbers: [1, 2] });
    let offset = 0;
    for (const part of parts.parts) {
      const sent = await fetch(part.url, { method: 'PUT', body: big.subarray(offset, offset + part.size) });
      expect(sent.status).toBe(200);
      offset += part.size;
    }
    await client.json('GET', `/files/${created.fileId}/parts`);
    await client.json('POST', `/files/${created.fileId}/complete`);
    expect((await client.settled(created.fileId, { timeoutMs: 60_000 })).status).toBe('ready');
    expect(await client.readBack(created.fileId, big.length)).toBe(sha256(big));

    // Let a sweep run after the uploads, for its gauges.
    await new Promise((r) => setTimeout(r, 6_000));
  } finally {
    // Stopped first: everything it printed, and every metric line flushed to the file.
    await stack.product.stop();
    output = stack.product.output();
    writeFileSync(join(stack.env.TRANSCRIBO_LOCAL_DIR!, 'npm-start.log'), output);
  }
  stats = execFileSync('npm', ['run', '--silent', 'stats'], {
    cwd: root,
    env: { ...process.env, TRANSCRIBO_LOCAL_DIR: stack.env.TRANSCRIBO_LOCAL_DIR },
    encoding: 'utf8',
  });
  process.stdout.write(`[observability] ${soakSummary.replaceAll('\n', '\n[observability] ')}\n`);
  process.stdout.write(`[observability] npm run stats:\n${stats}\n`);
}, 420_000);

afterAll(async () => {
  await stack?.close();
});

/** The rows of a table that `npm run stats` printed under `title`. */
function tableRows(title: string): string[][] {
  const lines = stats.split('\n');
  const start = lines.indexOf(title);
  if (start < 0) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(start + 3)) {
    if (!line.startsWith('  ') || /^ {2}(bytes stored|\()/.test(line)) break;
    rows.push(line.trim().split(/ {2,}/));
  }
  return rows;
}

describe('a local run, observed', () => {
  it('keeps the metrics out of the console and in .local/metrics.jsonl', () => {
    const file = join(stack.env.TRANSCRIBO_LOCAL_DIR!, 'metrics.jsonl');
    expect(existsSync(file)).toBe(true);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) expect(JSON.parse(line)._aws.CloudWatchMetrics).toBeInstanceOf(Array);
    expect(output).not.toContain('"CloudWatchMetrics"');
  });

  it('npm run stats names the operations the run used, with counts and a plausible p95', () => {
    const operations = new Map(tableRows('Operations').map((row) => [row[0]!, row]));
    // Whichever names the metrics carry (the contract's operation dimension, or the per-operation names before it), the operations are these.
    for (const name of ['createUpload', 'getFileInfo', 'getFile', 'processUpload']) {
      const row = operations.get(name);
      expect(row, `${name} in\n${stats}`).toBeDefined();
      expect(Number(row![1])).toBeGreaterThan(0);
      const p95 = Number(/^([\d.]+) ms$/.exec(row![5]!)?.[1]);
      expect(p95, `${name} p95`).toBeGreaterThan(0);
      expect(p95, `${name} p95`).toBeLessThan(30_000);
    }
    expect(Number(operations.get('createUpload')![1])).toBeGreaterThanOrEqual(26);
    expect(stats).toMatch(/^File sizes \((\d+) files/m);
    expect(Number(/^File sizes \((\d+) files/m.exec(stats)![1])).toBeGreaterThanOrEqual(26);
  });

  it('prints no secret, token, signature or file byte', () => {
    const encryptionKey = stack.env.STORAGE_ENCRYPTION_KEYS!.split(':')[1]!;
    const secrets: Record<string, string> = {
      'JWT secret': stack.env.STORAGE_AUTH_JWT_SECRET!,
      'encryption key': encryptionKey,
      'encryption key (hex)': Buffer.from(encryptionKey, 'base64').toString('hex'),
      'events token': stack.env.TRANSCRIBO_EVENTS_TOKEN!,
      'MinIO secret key': stack.minio.secretKey,
      'file bytes': MARKER,
    };
    const devSecrets = join(stack.env.TRANSCRIBO_LOCAL_DIR!, 'dev-secrets.json');
    if (existsSync(devSecrets)) {
      for (const [name, value] of Object.entries(JSON.parse(readFileSync(devSecrets, 'utf8')) as Record<string, string>)) secrets[`dev-secrets ${name}`] = value;
    }
    issued.forEach((token, i) => (secrets[`issued token ${i}`] = token));
    // The start banner hands out a dev-user token on purpose (its two lines); it must appear nowhere else.
    const banner = /^ {2}export TOKEN='([^']+)'.*\n|^Or in a browser: .*\n/gm;
    const bannerToken = /^ {2}export TOKEN='([^']+)'/m.exec(output)?.[1];
    expect(bannerToken).toBeDefined();
    secrets['banner token'] = bannerToken!;
    const logs = output.replace(banner, '');
    expect(logs.length).toBeGreaterThan(1000);
    for (const [name, value] of Object.entries(secrets)) expect(logs.includes(value), name).toBe(false);
    // Any JWT at all (the soak's own token included), and any signed URL's signature or credential.
    expect(logs).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
    expect(logs).not.toMatch(/X-Amz-Signature|Signature=|Credential=/);
  });

  it('gives every JSON line of a request its own request id, operation and file id', () => {
    const lines = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      })
      .filter((l): l is Record<string, unknown> => l !== undefined && 'level' in l);
    const ofRequests = lines.filter((l) => l.function_request_id !== undefined);
    expect(ofRequests.length).toBeGreaterThan(0);
    const operations = new Set<string>();
    for (const line of ofRequests) {
      expect(line.operation, JSON.stringify(line)).toEqual(expect.any(String));
      operations.add(line.operation as string);
      // Interleaved invocations share one process locally: each line carries its own function's context.
      expect(line.function_name, JSON.stringify(line)).toBe(`transcribo-storage-dev-${line.operation}`);
    }
    // processUpload and sweep log at INFO; the 401 is getFileInfo's.
    expect([...operations]).toEqual(expect.arrayContaining(['processUpload', 'sweep', 'getFileInfo']));
    // A line that names a file (fileIds are UUIDs: in its message, a key, a path) says which in `fileId`.
    const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
    for (const line of ofRequests) {
      const { fileId, function_request_id: _r, xray_trace_id: _x, ...rest } = line;
      if (uuid.test(JSON.stringify(rest))) expect(fileId, JSON.stringify(line)).toEqual(expect.any(String));
    }
    expect(ofRequests.filter((l) => l.operation === 'processUpload' && typeof l.fileId === 'string').length).toBeGreaterThanOrEqual(26);
    // The refused GET /files/{fileId} names its file too, though the refusal came before any file was looked at.
    const refused = ofRequests.find((l) => l.status === 401);
    expect(refused, 'the 401 line').toMatchObject({ operation: 'getFileInfo', fileId: expect.any(String), type: 'UnauthorizedError' });
  });
});
