import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config.ts';
import { StorageConnectionError } from '../../lib/errors/catalogue.ts';
import { createStorageContext } from '../../lib/storage/storage-context.ts';
import { incomingKey } from '../../lib/storage/object-layout.ts';
import { toStorageError } from '../../lib/storage/backend-errors.ts';
import { signBearerToken } from '../../scripts/local/dev-token.ts';
import { startMinio, type MinioServer } from '../../scripts/minio/server.ts';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { invoke, type Reply } from '../support/handlers.ts';
import { apiEvent, lambdaContext, s3Event } from '../support/lambda-events.ts';
import { minioConnection } from '../support/minio-environment.ts';
import { createCertificateAuthority, createServerCertificate, type CertificateAuthority } from '../support/private-ca.ts';

/**
 * STORAGE_SECURE=true against a MinIO serving a certificate of a private CA made here, trusted
 * through STORAGE_CA_FILE: every leg of a file's life (presign, the client's upload, processing,
 * ranged reads) goes over https. Trusting the wrong CA, or only the system's, answers the
 * catalogue's 503 saying TLS, and so does https against a plain-http server.
 */

const MiB = 1024 * 1024;
const OWNER = 'tls-user';
let ca: CertificateAuthority;
let unrelated: CertificateAuthority;
let certsDir: string;
let minio: MinioServer;
let plain: { endpoint: string; port: string };
let settings: Record<string, string>;
let token: string;
const originalEnv = { ...process.env };
const scratch: string[] = [];

beforeAll(async () => {
  // Read before any product below rewrites STORAGE_* in process.env.
  plain = minioConnection();
  [ca, unrelated] = await Promise.all([createCertificateAuthority(), createCertificateAuthority('Unrelated CA')]);
  certsDir = (await createServerCertificate(ca)).dir;
  scratch.push(ca.dir, unrelated.dir, certsDir);
  minio = await startMinio({ certsDir });
  expect(minio.endpoint).toBe(`https://127.0.0.1:${minio.port}`);
  const jwtSecret = randomBytes(32).toString('hex');
  settings = {
    STORAGE_ENDPOINT: '127.0.0.1',
    STORAGE_PORT: String(minio.port),
    STORAGE_SECURE: 'true',
    STORAGE_CA_FILE: ca.file,
    STORAGE_ACCESS_KEY: minio.accessKey,
    STORAGE_SECRET_KEY: minio.secretKey,
    STORAGE_REGION: 'us-east-1',
    STORAGE_BUCKET: 'tls-files',
    STORAGE_INCOMING_BUCKET: 'tls-incoming',
    STORAGE_ENCRYPTION_ENABLED: 'true',
    STORAGE_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    STORAGE_AUTH_JWT_SECRET: jwtSecret,
    STORAGE_MAX_FILE_SIZE: String(64 * MiB),
    STORAGE_MAX_RESPONSE_BYTES: String(4 * MiB),
  };
  token = await signBearerToken(jwtSecret, OWNER, '1h');
  // An administrator's client trusts only the private CA, as curl --cacert does.
  const admin = new S3Client({
    endpoint: minio.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
    requestHandler: { httpsAgent: { ca: ca.pem } },
  });
  for (const Bucket of [settings.STORAGE_BUCKET, settings.STORAGE_INCOMING_BUCKET]) await admin.send(new CreateBucketCommand({ Bucket }));
  admin.destroy();
}, 60_000);

afterAll(async () => {
  for (const name of Object.keys(process.env)) if (!(name in originalEnv)) delete process.env[name];
  Object.assign(process.env, originalEnv);
  await minio?.stop();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

interface Product {
  create(body: Record<string, unknown>): Promise<Reply>;
  call(handler: 'presignParts' | 'completeUpload', fileId: string, body?: unknown): Promise<Reply>;
  process(fileId: string): Promise<{ results: Array<{ outcome: string }> }>;
  read(fileId: string, range: string): Promise<Reply>;
}

/**
 * The functions as a Lambda with this environment would run them. Configuration and clients
 * are cached per module instance, so each product gets fresh modules; its environment stays in
 * process.env until the next product is made (tests here run one at a time).
 */
async function productWith(overrides: Record<string, string | undefined>): Promise<Product> {
  for (const name of Object.keys(process.env)) if (name.startsWith('STORAGE_')) delete process.env[name];
  for (const [name, value] of Object.entries({ ...settings, ...overrides })) if (value !== undefined) process.env[name] = value;
  vi.resetModules();
  const [createUpload, presignParts, completeUpload, processUpload, getContent] = await Promise.all([
    import('../../functions/create-upload.ts'),
    import('../../functions/presign-parts.ts'),
    import('../../functions/complete-upload.ts'),
    import('../../functions/process-upload.ts'),
    import('../../functions/get-file.ts'),
  ]);
  const handlers = { presignParts: presignParts.handler, completeUpload: completeUpload.handler };
  const incoming = process.env.STORAGE_INCOMING_BUCKET!;
  return {
    create: (body) => invoke(createUpload.handler, apiEvent({ method: 'POST', path: '/files', token, body: JSON.stringify(body) })),
    call: (name, fileId, body) =>
      invoke(
        handlers[name],
        apiEvent({ method: 'POST', path: `/files/${fileId}/${name === 'presignParts' ? 'parts' : 'complete'}`, fileId, token, ...(body !== undefined && { body: JSON.stringify(body) }) }),
      ),
    process: (fileId) =>
      (processUpload.handler as (e: unknown, c: unknown) => Promise<{ results: Array<{ outcome: string }> }>)(
        s3Event(incoming, incomingKey(fileId), { flavour: 'minio' }),
        lambdaContext(),
      ),
    read: (fileId, range) => invoke(getContent.handler, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token, headers: { range } })),
  };
}

/** A client's https request that trusts `trust` only (a phone app shipping the CA, or curl --cacert). */
function clientRequest(url: string, init: { method: string; headers?: Record<string, string>; body: Uint8Array }, trust: string): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(url, { method: init.method, headers: { ...init.headers, 'content-length': String(init.body.length) }, ca: trust, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Sends a presigned POST form the way a browser would build it; Request does the multipart encoding. */
async function postForm(upload: { url: string; fields: Record<string, string> }, bytes: Buffer, trust: string) {
  const form = new FormData();
  for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
  form.append('file', new Blob([bytes]), 'recording.wav');
  const encoded = new Request(upload.url, { method: 'POST', body: form });
  const body = new Uint8Array(await encoded.arrayBuffer());
  return clientRequest(upload.url, { method: 'POST', headers: { 'content-type': encoded.headers.get('content-type')! }, body }, trust);
}

function expectTlsRefusal(reply: Reply): void {
  expect(reply.status, JSON.stringify(reply.json)).toBe(503);
  expect(reply.json.error.type).toBe('StorageConnectionError');
  expect(reply.json.error.message).toMatch(/\bTLS\b/);
  // The fixed message only: nothing of OpenSSL's or Node's own words, codes or hints.
  expect(JSON.stringify(reply.json)).not.toMatch(/certificate;|verify|EPROTO|wrong version|UNABLE_TO|SSL routines|STORAGE_CA_FILE|stack/i);
}

describe('TLS to MinIO with a private CA (STORAGE_SECURE=true, STORAGE_CA_FILE)', { timeout: 120_000 }, () => {
  let stored: { fileId: string; bytes: Buffer } | undefined;

  it('presign, upload over https, processing and ranged reads all pass with the CA trusted', async () => {
    const product = await productWith({});
    const bytes = wav(3 * MiB + 4321);
    const created = await product.create({ filename: 'call.wav', contentType: 'audio/wav', size: bytes.length });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    expect(created.json.upload.url).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${minio.port}/`));
    const sent = await postForm(created.json.upload, bytes, ca.pem);
    expect(sent.status, sent.body).toBeLessThan(300);

    const fileId = created.json.fileId as string;
    expect((await product.process(fileId)).results[0]).toMatchObject({ outcome: 'ready', fileId });
    for (const [range, start, end] of [
      ['bytes=1000000-1999999', 1_000_000, 1_999_999],
      ['bytes=65530-65545', 65530, 65545],
      ['bytes=-4321', bytes.length - 4321, bytes.length - 1],
    ] as const) {
      const reply = await product.read(fileId, range);
      expect(reply.status, range).toBe(206);
      expect(reply.headers['content-range']).toBe(`bytes ${start}-${end}/${bytes.length}`);
      expect(reply.bytes.equals(bytes.subarray(start, end + 1)), range).toBe(true);
    }
    stored = { fileId, bytes };
  });

  it('a resumable (multipart) upload: parts signed and put over https, completed, processed, read back whole', async () => {
    const product = await productWith({});
    const bytes = wav(11 * MiB + 777);
    const created = await product.create({ filename: 'hour.wav', contentType: 'audio/wav', size: bytes.length, uploadMethod: 'MULTIPART', partSize: 5 * MiB });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const fileId = created.json.fileId as string;
    const signed = await product.call('presignParts', fileId, { partNumbers: [1, 2, 3] });
    expect(signed.status, JSON.stringify(signed.json)).toBe(200);
    for (const part of signed.json.parts as Array<{ partNumber: number; url: string }>) {
      expect(part.url).toMatch(/^https:/);
      const body = bytes.subarray((part.partNumber - 1) * 5 * MiB, part.partNumber * 5 * MiB);
      const put = await clientRequest(part.url, { method: 'PUT', body }, ca.pem);
      expect(put.status, put.body).toBe(200);
    }
    expect((await product.call('completeUpload', fileId)).status).toBe(202);
    expect((await product.process(fileId)).results[0]).toMatchObject({ outcome: 'ready' });

    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; ) {
      const reply = await product.read(fileId, `bytes=${at}-`);
      expect(reply.status).toBe(206);
      chunks.push(reply.bytes);
      at += reply.bytes.length;
    }
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(bytes));
  });

  it.each([
    ['a CA file of an unrelated CA', () => ({ STORAGE_CA_FILE: unrelated.file })],
    ['no CA file (the default trust store only)', () => ({ STORAGE_CA_FILE: undefined })],
  ])('with %s, uploads and reads answer 503 StorageConnectionError saying the certificate is not trusted', async (_name, overrides) => {
    expect(stored, 'the trusted run stored a file first').toBeDefined();
    const product = await productWith(overrides());
    const created = await product.create({ filename: 'call.wav', contentType: 'audio/wav', size: 1000 });
    expectTlsRefusal(created);
    expect(created.json.error.message).toBe("The storage backend's TLS certificate is not trusted.");
    const read = await product.read(stored!.fileId, 'bytes=0-99');
    expectTlsRefusal(read);
  });

  it('STORAGE_SECURE=true against a plain-http MinIO answers 503 StorageConnectionError saying TLS failed', async () => {
    const product = await productWith({ STORAGE_ENDPOINT: plain.endpoint, STORAGE_PORT: plain.port });
    const created = await product.create({ filename: 'call.wav', contentType: 'audio/wav', size: 1000 });
    expectTlsRefusal(created);
    expect(created.json.error.message).toBe('The TLS connection to the storage backend failed.');
  });

  it('keeps what went wrong for the logs: the backend code and a hint naming the setting', async () => {
    const config = parseConfig({ ...settings, STORAGE_CA_FILE: unrelated.file });
    const error = await createStorageContext(config)
      .s3.internal.send(new CreateBucketCommand({ Bucket: 'never-made' }))
      .catch((e: unknown) => toStorageError(e, 'probe'));
    expect(error).toBeInstanceOf(StorageConnectionError);
    expect((error as StorageConnectionError).details).toMatchObject({ backendCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', hint: expect.stringMatching(/STORAGE_CA_FILE/) });
  });

  it('a CA file that cannot be read, or holds no certificate, is a configuration error naming STORAGE_CA_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'transcribo-badca-'));
    scratch.push(dir);
    writeFileSync(join(dir, 'empty.pem'), 'not a certificate\n');
    writeFileSync(join(dir, 'garbled.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    for (const file of [join(dir, 'missing.pem'), join(dir, 'empty.pem'), join(dir, 'garbled.pem')]) {
      const made = () => createStorageContext(parseConfig({ ...settings, STORAGE_CA_FILE: file }));
      expect(made).toThrow(ConfigError);
      expect(made).toThrow(/STORAGE_CA_FILE/);
    }
  });
});
