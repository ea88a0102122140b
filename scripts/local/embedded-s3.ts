/**
 * The embedded default: an in-process S3 emulator (s3rver) for trying the API with nothing
 * installed. It stores bytes faithfully but enforces no signature, no POST policy and no
 * size limit, and has no conditional writes: fine for a demo, never evidence of security.
 * Its object-created events are in-process only and cover every key of every bucket, so the
 * uploads among them (what an S3 notification on the incoming bucket's uploads/ would carry)
 * are handed to `onObjectCreated`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';
import { INCOMING_PREFIX } from '../../lib/storage/object-layout.ts';

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  stop(): Promise<void>;
}

const CORS = `<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>*</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>PUT</AllowedMethod>
    <AllowedMethod>POST</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>`;

interface StoredObject {
  bucket: string;
  key: string;
  content: Buffer | NodeJS.ReadableStream;
  metadata: Record<string, string>;
}

/** The part of s3rver's filesystem store this file reworks. */
interface FilesystemStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  getObject(bucket: string, key: string, options?: unknown): Promise<unknown>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
  deleteObject(bucket: string, key: string): Promise<void>;
}

/**
 * s3rver writes an object as three files in place (bytes, metadata, MD5), so a read beside a
 * write of the same key can see half of each: a torn manifest, which S3 and MinIO never show.
 * Here each key's reads and writes take turns, and new bytes are written beside the object and
 * renamed over it, so a reader that opened the object in its turn keeps reading the old bytes whole.
 */
function makeWritesAtomic(store: FilesystemStore): void {
  const turns = new Map<string, Promise<unknown>>();
  const inTurn = <T>(bucket: string, key: string, work: () => Promise<T>): Promise<T> => {
    const id = `${bucket}/${key}`;
    const mine = (turns.get(id) ?? Promise.resolve()).catch(() => undefined).then(work);
    turns.set(id, mine);
    void mine.finally(() => turns.get(id) === mine && turns.delete(id)).catch(() => undefined);
    return mine;
  };
  const { getObject, deleteObject } = store;
  store.getObject = (bucket, key, options) => inTurn(bucket, key, () => getObject.call(store, bucket, key, options));
  store.deleteObject = (bucket, key) => inTurn(bucket, key, () => deleteObject.call(store, bucket, key));
  store.putObject = (object) =>
    inTurn(object.bucket, object.key, async () => {
      const target = store.getResourcePath(object.bucket, object.key, 'object');
      const temporary = `${target}.${randomUUID()}.tmp`;
      await mkdir(dirname(target), { recursive: true });
      const md5 = createHash('md5');
      let size = 0;
      const measure = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      });
      const source = Buffer.isBuffer(object.content) ? [object.content] : object.content;
      try {
        await pipeline(source as NodeJS.ReadableStream, measure, createWriteStream(temporary));
        await rename(temporary, target);
      } finally {
        await rm(temporary, { force: true });
      }
      const digest = md5.digest('hex');
      await store.putMetadata(object.bucket, object.key, object.metadata, digest);
      return { size, md5: digest };
    });
}

export async function startEmbeddedS3(options: {
  port: number;
  directory: string;
  buckets: string[];
  incomingBucket: string;
  onObjectCreated: (event: unknown) => void;
}): Promise<EmbeddedS3> {
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port,
    directory: options.directory,
    silent: true,
    configureBuckets: options.buckets.map((name) => ({ name, configs: [CORS] })),
  });
  makeWritesAtomic((server as unknown as { store: FilesystemStore }).store);
  server.on('event', (event: { Records?: Array<{ eventName?: string; s3?: { bucket?: { name?: string }; object?: { key?: string } } }> }) => {
    const uploads = (event.Records ?? []).filter(
      (r) =>
        r.eventName?.startsWith('ObjectCreated') &&
        r.s3?.bucket?.name === options.incomingBucket &&
        r.s3.object?.key?.startsWith(INCOMING_PREFIX),
    );
    if (uploads.length > 0) options.onObjectCreated({ ...event, Records: uploads });
  });
  const address = (await server.run()) as { port: number };
  return {
    endpoint: '127.0.0.1',
    port: address.port,
    // s3rver accepts these fixed credentials (it checks no signature anyway).
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    stop: () => server.close(),
  };
}
