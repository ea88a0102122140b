/**
 * What clients do, timed against the plainest way to do the same with the storage server:
 *
 * - a resumable upload through the product (POST /files MULTIPART, part URLs signed by the
 *   product in batches, parts PUT with fetch `parallel` at a time, complete through the product)
 *   against one presigned PutObject of the same bytes;
 * - a PUT upload from its last byte to `ready` (process-upload invoked with the object-created
 *   event, as Lambda would);
 * - reads through a playback link (the get-file function, invoked in this process with an
 *   API Gateway v2 event, as Lambda would) against a presigned GET of the stored ciphertext,
 *   an SDK range GET of the same plaintext stored unencrypted, and the same from a MinIO of its
 *   own that encrypts at rest (SSE-S3).
 *
 * Every measurement also checks what it got (status, lengths, and the plaintext bytes where it
 * knows them), so `test/bench/client-paths.test.ts` runs the same code at a small size.
 * Bodies are streamed from a SyntheticRecording: a 1 GB upload never sits in memory.
 */
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { handler as completeUpload } from '../functions/complete-upload.ts';
import { handler as createLink } from '../functions/create-playback-link.ts';
import { handler as createUpload } from '../functions/create-upload.ts';
import { handler as getContent } from '../functions/get-file.ts';
import { handler as getInfo } from '../functions/get-file-info.ts';
import { handler as presignParts } from '../functions/presign-parts.ts';
import { handler as processUpload } from '../functions/process-upload.ts';
import { parseConfig } from '../lib/config.ts';
import { finalKey, incomingKey } from '../lib/storage/object-layout.ts';
import { createS3Clients } from '../lib/storage/s3-clients.ts';
import type { StorageContext } from '../lib/storage/storage-context.ts';
import type { FileInfo } from '../lib/service/storage-service.ts';
import { invoke, type Reply } from '../test/support/handlers.ts';
import { apiEvent, lambdaContext, s3Event } from '../test/support/lambda-events.ts';
import { setDefaultEncryption } from '../scripts/local/storage-setup.ts';
import { generateKmsKey, startMinio, storageSettings } from '../scripts/minio/server.ts';
import type { SyntheticRecording } from './synthetic-recording.ts';

/** Who the measurements act as: the functions read their configuration from `process.env`; `ctx` must be built from the same. */
export interface Caller {
  ctx: StorageContext;
  owner: string;
  /** A bearer token for `owner`. */
  token: string;
}

const URL_TTL_SECONDS = 900;

function call(caller: Caller, handler: unknown, method: 'GET' | 'POST', path: string, fileId?: string, body?: unknown): Promise<Reply> {
  return invoke(
    handler,
    apiEvent({ method, path, token: caller.token, ...(fileId !== undefined && { fileId }), ...(body !== undefined && { body: JSON.stringify(body) }) }),
  );
}

function expectStatus(reply: { status: number }, status: number, what: string, detail?: unknown): void {
  if (reply.status !== status) throw new Error(`${what}: HTTP ${reply.status}, expected ${status}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
}

/** The middle value (the upper one of an even count). */
export const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Nearest-rank percentile. */
export function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// ---------------------------------------------------------------- uploads

/** The baseline: one presigned PutObject of the whole recording into the incoming bucket, streamed with fetch. Returns ms. */
export async function putWhole(caller: Caller, recording: SyntheticRecording, key: string): Promise<number> {
  const { config, s3 } = caller.ctx;
  const started = performance.now();
  const url = await getSignedUrl(s3.presign, new PutObjectCommand({ Bucket: config.incomingBucket, Key: key, ContentLength: recording.size }), {
    expiresIn: URL_TTL_SECONDS,
    signableHeaders: new Set(['content-length']),
  });
  await putBody(url, recording);
  return performance.now() - started;
}

/** POST /files for `recording` as a WAV, with the upload method (and part size) asked for; expects 201. */
async function declareUpload(
  caller: Caller,
  recording: SyntheticRecording,
  request: { uploadMethod: 'PUT' | 'MULTIPART'; partSize?: number },
): Promise<{ fileId: string; upload: { method: string; url: string; headers?: Record<string, string>; partSize: number; partCount: number } }> {
  const created = await call(caller, createUpload, 'POST', '/files', undefined, { filename: 'bench.wav', contentType: 'audio/wav', size: recording.size, ...request });
  expectStatus(created, 201, 'POST /files', created.json);
  return created.json;
}

/** PUTs the whole recording to a presigned URL with fetch, streamed, and expects 200. */
async function putBody(url: string, recording: SyntheticRecording, headers: Record<string, string> = {}): Promise<void> {
  const body = recording.body();
  const put = await fetch(url, { ...body, method: 'PUT', headers: { ...(body.headers as Record<string, string>), ...headers } });
  const text = await put.text();
  expectStatus(put, 200, 'PutObject', text.slice(0, 300));
}

export interface UploadToReady {
  fileId: string;
  /** POST /files and the PUT of the bytes. */
  uploadMs: number;
  /** From the PUT's response to GET /files/{id} answering `ready`: process-upload's run and the status read. */
  readyMs: number;
}

/**
 * A client's upload as the product serves it: POST /files (uploadMethod PUT), the bytes PUT to the
 * presigned URL into the incoming bucket, then process-upload invoked with the object-created event
 * as Lambda would be, until GET /files/{id} says `ready` with the recording's size and SHA-256.
 * The event's delivery (MinIO's or S3's own delay) is not in `readyMs`: it starts when the PUT ends.
 */
export async function uploadToReady(caller: Caller, recording: SyntheticRecording): Promise<UploadToReady> {
  const started = performance.now();
  const { fileId, upload } = await declareUpload(caller, recording, { uploadMethod: 'PUT' });
  if (upload.method !== 'PUT') throw new Error(`POST /files asked for a PUT upload answered ${upload.method}`);
  await putBody(upload.url, recording, upload.headers);
  const uploaded = performance.now();
  const info = await processUploaded(caller, fileId);
  const readyMs = performance.now() - uploaded;
  if (info.status !== 'ready' || info.size !== recording.size || info.sha256 !== recording.sha256()) {
    throw new Error(`the upload did not process to a ready, identical file: ${JSON.stringify(info)}`);
  }
  return { fileId, uploadMs: uploaded - started, readyMs };
}

export interface MultipartRun {
  fileId: string;
  ms: number;
  partSize: number;
  partCount: number;
  /** POST /files/{id}/parts calls made. */
  presignRequests: number;
  /** Of `ms`, the time POST /files/{id}/complete took (it checks every part, then completes). */
  completeMs: number;
}

/**
 * The product's resumable upload, as a client does it: POST /files with uploadMethod MULTIPART,
 * part URLs from POST /files/{id}/parts `batch` at a time (the next batch is asked for as soon as
 * one arrives), `parallel` part PUTs in flight with plain fetch, then POST /files/{id}/complete.
 * The time covers all of it; processing, which the object-created event starts, is not included.
 */
export async function uploadMultipart(
  caller: Caller,
  recording: SyntheticRecording,
  options: { parallel?: number; batch?: number; partSize?: number } = {},
): Promise<MultipartRun> {
  const { parallel = 4, batch = 20 } = options;
  const started = performance.now();
  const { fileId, upload } = await declareUpload(caller, recording, {
    uploadMethod: 'MULTIPART',
    ...(options.partSize !== undefined && { partSize: options.partSize }),
  });
  const { partSize, partCount } = upload;

  let presignRequests = 0;
  const batches = new Map<number, Promise<Map<number, { url: string; size: number }>>>();
  const signBatch = (b: number) => {
    let pending = batches.get(b);
    if (pending === undefined) {
      const first = b * batch + 1;
      const partNumbers = Array.from({ length: Math.min(batch, partCount - first + 1) }, (_, i) => first + i);
      presignRequests++;
      pending = call(caller, presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers }).then((reply) => {
        expectStatus(reply, 200, 'POST /files/{id}/parts', reply.json);
        // Ask for the next batch now: no part waits on a signature once the first batch is in.
        if ((b + 1) * batch < partCount) signBatch(b + 1);
        return new Map((reply.json.parts as { partNumber: number; url: string; size: number }[]).map((p) => [p.partNumber, p]));
      });
      batches.set(b, pending);
    }
    return pending;
  };

  let next = 1;
  const worker = async () => {
    while (next <= partCount) {
      const partNumber = next++;
      const part = (await signBatch(Math.floor((partNumber - 1) / batch))).get(partNumber)!;
      const start = (partNumber - 1) * partSize;
      const put = await fetch(part.url, { method: 'PUT', ...recording.body(start, start + part.size) });
      const text = await put.text();
      expectStatus(put, 200, `PUT part ${partNumber}`, text.slice(0, 300));
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, partCount) }, worker));

  const completing = performance.now();
  const done = await call(caller, completeUpload, 'POST', `/files/${fileId}/complete`, fileId);
  expectStatus(done, 202, 'POST /files/{id}/complete', done.json);
  const ended = performance.now();
  return { fileId, ms: ended - started, partSize, partCount, presignRequests, completeMs: ended - completing };
}

/** Runs process-upload on a completed upload, as MinIO's object-created event does, and returns GET /files/{id}. */
export async function processUploaded(caller: Caller, fileId: string): Promise<FileInfo> {
  await (processUpload as (event: unknown, context: unknown) => Promise<unknown>)(
    s3Event(caller.ctx.config.incomingBucket, incomingKey(fileId), { flavour: 'minio' }),
    lambdaContext(),
  );
  const info = await call(caller, getInfo, 'GET', `/files/${fileId}`, fileId);
  expectStatus(info, 200, 'GET /files/{id}', info.json);
  return info.json as FileInfo;
}

// ---------------------------------------------------------------- reads

/** POST /files/{id}/links: the link's path and query (its token is in the query). */
export async function playbackLinkPath(caller: Caller, fileId: string): Promise<string> {
  const reply = await call(caller, createLink, 'POST', `/files/${fileId}/links`, fileId);
  expectStatus(reply, 201, 'POST /files/{id}/links', reply.json);
  const url = new URL(reply.json.url as string);
  return url.pathname + url.search;
}

/** A presigned GET of the stored (encrypted) object: the plainest read of the same file from the storage server. */
export function presignedCiphertextUrl(caller: Caller, fileId: string): Promise<string> {
  const { config, s3 } = caller.ctx;
  return getSignedUrl(s3.presign, new GetObjectCommand({ Bucket: config.bucket, Key: finalKey(fileId) }), { expiresIn: URL_TTL_SECONDS });
}

/**
 * GET of a playback link with a Range header, without any other header, through the get-file
 * function. Checks the 206 and, given the recording, every byte. Returns the body.
 */
export async function readLink(linkPath: string, fileId: string, range: string, recording?: SyntheticRecording): Promise<Buffer> {
  const reply = await invoke(getContent, apiEvent({ method: 'GET', path: linkPath, fileId, headers: { range } }));
  expectStatus(reply, 206, `link GET ${range}`, reply.json);
  const [, first, last, total] = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(reply.headers['content-range'] ?? '') ?? [];
  if (first === undefined || Number(last) - Number(first) + 1 !== reply.bytes.length) {
    throw new Error(`link GET ${range}: Content-Range ${reply.headers['content-range']} does not describe ${reply.bytes.length} bytes`);
  }
  if (recording !== undefined) {
    if (Number(total) !== recording.size) throw new Error(`link GET ${range}: total ${total}, expected ${recording.size}`);
    if (!recording.bytes(Number(first), Number(last) + 1).equals(reply.bytes)) throw new Error(`link GET ${range}: the bytes differ from the recording's`);
  }
  return reply.bytes;
}

/** A plain GET of a presigned URL with a Range header; resolves with the first body chunk and the time it took, then drops the rest. */
async function firstChunk(url: string, range: string): Promise<{ ms: number; bytes: number }> {
  const started = performance.now();
  const response = await fetch(url, { headers: { range } });
  const reader = response.body!.getReader();
  const { value } = await reader.read();
  const ms = performance.now() - started;
  await reader.cancel();
  expectStatus(response, 206, `presigned GET ${range}`);
  if (value === undefined || value.length === 0) throw new Error(`presigned GET ${range}: empty body`);
  return { ms, bytes: value.length };
}

export interface FirstByteTimes {
  linkMs: number[];
  plainMs: number[];
  /** What the link's `bytes=0-` returned: a bounded 206 (STORAGE_MAX_RESPONSE_BYTES). */
  linkBytes: number;
}

/**
 * Time to the first audio byte, as a media player's first request (`Range: bytes=0-`): through a
 * fresh playback link vs a presigned GET of the ciphertext (time to its first body chunk). The
 * link's response is buffered, as Lambda's is: its first byte comes with its last. One untimed
 * request of each first; the two alternate which goes first.
 */
export async function firstByteTimes(caller: Caller, fileId: string, runs: number, recording?: SyntheticRecording): Promise<FirstByteTimes> {
  const linkPath = await playbackLinkPath(caller, fileId);
  const plainUrl = await presignedCiphertextUrl(caller, fileId);
  const range = 'bytes=0-';
  const link = async () => {
    const started = performance.now();
    const bytes = await readLink(linkPath, fileId, range);
    return { ms: performance.now() - started, bytes: bytes.length };
  };
  const plain = () => firstChunk(plainUrl, range);
  const checked = await readLink(linkPath, fileId, range, recording);
  await plain();
  const linkMs: number[] = [];
  const plainMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    for (const which of i % 2 === 0 ? ['link', 'plain'] : ['plain', 'link']) {
      if (which === 'link') linkMs.push((await link()).ms);
      else plainMs.push((await plain()).ms);
    }
  }
  return { linkMs, plainMs, linkBytes: checked.length };
}

/** Reads [start, end] (inclusive) and returns the bytes; throws if they are wrong. */
export type RangeReader = (start: number, end: number) => Promise<Uint8Array>;

/** Range reads through a playback link (the get-file function). */
export function linkRangeReader(linkPath: string, fileId: string): RangeReader {
  return (start, end) => readLink(linkPath, fileId, `bytes=${start}-${end}`);
}

/** Range reads with the SDK's GetObject, nothing else: the plainest read of an object by a client like the functions'. */
export function sdkRangeReader(s3: S3Client, Bucket: string, Key: string): RangeReader {
  return async (start, end) => (await s3.send(new GetObjectCommand({ Bucket, Key, Range: `bytes=${start}-${end}` }))).Body!.transformToByteArray();
}

export interface SseS3Store {
  /** SDK range GETs of the recording, decrypted by MinIO. */
  reader: RangeReader;
  stop(): Promise<void>;
}

/**
 * The storage server's own encryption at rest, as a baseline for range reads: a MinIO of its own,
 * started with a KMS key (MINIO_KMS_SECRET_KEY) and a bucket with default encryption SSE-S3, holding
 * `recording` as a client would store it. It is read with an S3 client built the way the functions
 * build theirs. Throws unless MinIO reports the object stored SSE-S3 (AES256) with the recording's size.
 */
export async function startSseS3Store(recording: SyntheticRecording): Promise<SseS3Store> {
  const minio = await startMinio({ kmsKey: generateKmsKey('bench') });
  try {
    const s3 = createS3Clients(parseConfig({ ...process.env, ...storageSettings(minio) })).internal;
    const Bucket = 'sse-s3';
    const Key = 'recording.wav';
    await s3.send(new CreateBucketCommand({ Bucket }));
    await setDefaultEncryption(s3, Bucket);
    await new Upload({ client: s3, params: { Bucket, Key, Body: recording.stream() } }).done();
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
    if (head.ServerSideEncryption !== 'AES256' || head.ContentLength !== recording.size) {
      throw new Error(`the SSE-S3 MinIO stored ${head.ContentLength} bytes with encryption ${head.ServerSideEncryption}, not ${recording.size} with AES256`);
    }
    return { reader: sdkRangeReader(s3, Bucket, Key), stop: () => minio.stop() };
  } catch (error) {
    await minio.stop();
    throw error;
  }
}

/** A check for `timeRangeReads`: the bytes read at `start` are the recording's. */
export function sameAs(recording: SyntheticRecording, what: string): (start: number, bytes: Uint8Array) => void {
  return (start, bytes) => {
    if (!recording.bytes(start, start + bytes.length).equals(bytes)) throw new Error(`${what}: the bytes at ${start} differ from the recording's`);
  };
}

/** Range reads of a presigned URL with plain fetch: the whole body is read. */
export function presignedRangeReader(url: string): RangeReader {
  return async (start, end) => {
    const response = await fetch(url, { headers: { range: `bytes=${start}-${end}` } });
    const bytes = new Uint8Array(await response.arrayBuffer());
    expectStatus(response, 206, `presigned GET bytes=${start}-${end}`);
    return bytes;
  };
}

/**
 * Times every reader on the same ranges of `length` bytes at `offsets`, one untimed read each
 * first; at each offset the readers take turns going first. Every read must return `length`
 * bytes, and pass its reader's check if it has one (run after the clock stops).
 */
export async function timeRangeReads<K extends string>(
  readers: Record<K, RangeReader>,
  offsets: readonly number[],
  length: number,
  checks: Partial<Record<K, (start: number, bytes: Uint8Array) => void>> = {},
): Promise<Record<K, number[]>> {
  const names = Object.keys(readers) as K[];
  const times = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  const read = async (name: K, start: number) => {
    const started = performance.now();
    const bytes = await readers[name](start, start + length - 1);
    const ms = performance.now() - started;
    if (bytes.length !== length) throw new Error(`${name}: a range read returned ${bytes.length} bytes, not ${length}`);
    checks[name]?.(start, bytes);
    return ms;
  };
  for (const name of names) await read(name, offsets[0] ?? 0);
  for (const [i, start] of offsets.entries()) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length]!;
      times[name].push(await read(name, start));
    }
  }
  return times;
}
