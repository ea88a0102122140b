import { createHash, randomBytes } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PartWriter } from '../../../lib/storage/part-writer.ts';
import { createS3Clients } from '../../../lib/storage/s3-clients.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The part writer against a real MinIO: what lands under the key, which requests made it, how
 * many were in flight, and that an abandoned or failed write leaves neither an object nor an
 * open multipart upload behind.
 */

const MiB = 1024 * 1024;
const PART = 5 * MiB;

let env: MinioEnvironment;
beforeAll(async () => {
  env = await prepareMinioEnvironment();
});
afterAll(() => env.cleanup());
afterEach(() => vi.restoreAllMocks());

interface Sent {
  command: string;
  payloadHash: string | undefined;
}

/** A client of its own that records each request it sends, and the most UploadParts in flight at once. */
function recordingClient(options: { failPart?: number } = {}) {
  const s3 = createS3Clients(env.config).internal;
  const sent: Sent[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName!;
      const headers = (args.request as { headers: Record<string, string> }).headers;
      sent.push({ command, payloadHash: headers['x-amz-content-sha256'] });
      if (command !== 'UploadPartCommand') return next(args);
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        // A fault of the network on one part (the storage server itself stays real).
        if ((args.input as { PartNumber?: number }).PartNumber === options.failPart) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        return await next(args);
      } finally {
        inFlight--;
      }
    },
    { step: 'finalizeRequest', name: 'recordRequests', priority: 'low' },
  );
  return { s3, sent, mostInFlight: () => mostInFlight };
}

const key = () => `part-writer/${randomBytes(6).toString('hex')}`;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function stored(objectKey: string) {
  const out = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: objectKey }));
  return { bytes: Buffer.from(await out.Body!.transformToByteArray()), metadata: out.Metadata, contentType: out.ContentType };
}

async function openUploads(objectKey: string) {
  const listed = await env.admin.send(new ListMultipartUploadsCommand({ Bucket: env.config.bucket, Prefix: objectKey }));
  return listed.Uploads ?? [];
}

/** Appends `bytes` in pieces of the given sizes, in turn, waiting whenever the writer is busy, as the sealing loop does. */
async function writeAll(writer: PartWriter, bytes: Buffer, pieces: number[]) {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = pieces[i % pieces.length]!;
    writer.append(bytes.subarray(at, at + size));
    at += size;
    if (writer.busy) await writer.ready();
  }
}

describe('PartWriter', () => {
  it('sends an object that fits in one part as a single PutObject, with its metadata and content type', async () => {
    const { s3, sent } = recordingClient();
    const objectKey = key();
    const bytes = randomBytes(300_000);
    const writer = new PartWriter({ s3, bucket: env.config.bucket, key: objectKey, metadata: { 'seal-id': 'abc' }, contentType: 'application/octet-stream', partSize: PART });
    await writeAll(writer, bytes, [65_552, 16, 1, 70_000]);
    await writer.complete();
    expect(sent.map((s) => s.command)).toEqual(['PutObjectCommand']);
    expect(writer.size).toBe(bytes.length);
    const got = await stored(objectKey);
    expect(got.bytes.equals(bytes)).toBe(true);
    expect(got.metadata).toMatchObject({ 'seal-id': 'abc' });
    expect(got.contentType).toBe('application/octet-stream');
  });

  it('stores an empty object', async () => {
    const objectKey = key();
    const writer = new PartWriter({ s3: env.ctx.s3.internal, bucket: env.config.bucket, key: objectKey, metadata: {}, partSize: PART });
    await writer.complete();
    expect((await stored(objectKey)).bytes.length).toBe(0);
  });

  it('writes a larger object in parts, starting the multipart upload before any byte when the size is known, with at most `concurrency` parts in flight', async () => {
    const { s3, sent, mostInFlight } = recordingClient();
    const objectKey = key();
    const bytes = randomBytes(5 * PART + 12_345);
    const allocated = vi.spyOn(Buffer, 'allocUnsafeSlow');
    const writer = new PartWriter({ s3, bucket: env.config.bucket, key: objectKey, metadata: {}, partSize: PART, concurrency: 2, expectedSize: bytes.length });
    // Asked for as the writer is made: it runs beside whatever the caller opens first.
    await vi.waitFor(() => expect(sent.map((s) => s.command)).toEqual(['CreateMultipartUploadCommand']));
    await writeAll(writer, bytes, [1 * MiB]);
    await writer.complete();
    const commands = sent.map((s) => s.command);
    expect(commands[0]).toBe('CreateMultipartUploadCommand');
    expect(commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(6);
    expect(commands.at(-1)).toBe('CompleteMultipartUploadCommand');
    expect(mostInFlight()).toBeLessThanOrEqual(2);
    // Its own buffers, reused: never more than one per part in flight plus the one filling.
    expect(allocated.mock.calls.filter(([size]) => size === PART).length).toBeLessThanOrEqual(3);
    expect(sha256((await stored(objectKey)).bytes)).toBe(sha256(bytes));
    expect(await openUploads(objectKey)).toEqual([]);
  });

  it('starts the multipart upload only when a part fills if the size is not known', async () => {
    const { s3, sent } = recordingClient();
    const objectKey = key();
    const bytes = randomBytes(PART + 1);
    const writer = new PartWriter({ s3, bucket: env.config.bucket, key: objectKey, metadata: {}, partSize: PART });
    writer.append(bytes.subarray(0, PART));
    expect(sent).toEqual([]);
    writer.append(bytes.subarray(PART));
    await writer.complete();
    expect(sent.map((s) => s.command)).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);
    expect((await stored(objectKey)).bytes.equals(bytes)).toBe(true);
  });

  it('sends UNSIGNED-PAYLOAD bodies only when asked, and the storage server takes them', async () => {
    for (const unsignedPayload of [true, false]) {
      const { s3, sent } = recordingClient();
      const objectKey = key();
      const bytes = randomBytes(PART + 100);
      const writer = new PartWriter({ s3, bucket: env.config.bucket, key: objectKey, metadata: {}, partSize: PART, unsignedPayload, expectedSize: bytes.length });
      await writeAll(writer, bytes, [MiB]);
      await writer.complete();
      const parts = sent.filter((s) => s.command === 'UploadPartCommand');
      expect(parts).toHaveLength(2);
      for (const part of parts) {
        if (unsignedPayload) expect(part.payloadHash).toBe('UNSIGNED-PAYLOAD');
        else expect(part.payloadHash).toMatch(/^[0-9a-f]{64}$/);
      }
      expect((await stored(objectKey)).bytes.equals(bytes)).toBe(true);
    }
  });

  it('abort leaves no object and no open multipart upload, even with parts already sent', async () => {
    const objectKey = key();
    const writer = new PartWriter({ s3: env.ctx.s3.internal, bucket: env.config.bucket, key: objectKey, metadata: {}, partSize: PART, expectedSize: 3 * PART });
    await writeAll(writer, randomBytes(2 * PART + 10), [MiB]);
    await vi.waitFor(async () => expect(await openUploads(objectKey)).toHaveLength(1));
    await writer.abort();
    expect(await openUploads(objectKey)).toEqual([]);
    await expect(env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: objectKey }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  it("a part that fails (after the SDK's retries) fails the write; abort then leaves nothing", async () => {
    const { s3 } = recordingClient({ failPart: 2 });
    const objectKey = key();
    const writer = new PartWriter({ s3, bucket: env.config.bucket, key: objectKey, metadata: {}, partSize: PART, expectedSize: 4 * PART });
    const writing = (async () => {
      await writeAll(writer, randomBytes(4 * PART), [MiB]);
      await writer.complete();
    })();
    await expect(writing).rejects.toThrow('socket hang up');
    await writer.abort();
    expect(await openUploads(objectKey)).toEqual([]);
    await expect(env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: objectKey }))).rejects.toMatchObject({ name: 'NotFound' });
  });
});
