import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';

/**
 * Writes one object from bytes handed to it in order, through part buffers it owns and reuses:
 *
 * - bytes are copied into the current part buffer (`append`); a full buffer is sent as the next
 *   part at once, without waiting, and a free buffer (or a new one, up to `concurrency + 1`)
 *   takes its place. The caller waits (`ready`) whenever `concurrency` parts are in flight, so
 *   memory stays at `(concurrency + 1) × partSize` whatever the object's size;
 * - an object that turns out to fit in one part is sent as one PutObject, with no multipart
 *   upload at all; when the expected size says it will not fit, CreateMultipartUpload is sent
 *   as the writer is made, so it runs beside whatever the caller does first (opening its source);
 * - `complete` sends the last part and CompleteMultipartUpload; `abort` (or any failure) aborts
 *   the multipart upload, so nothing is ever visible under the key but a whole object.
 *
 * `unsignedPayload` sends the bodies as UNSIGNED-PAYLOAD: SigV4 then signs the headers only and
 * neither this process nor the server hashes every byte. Only for bodies that authenticate
 * themselves (sealed frames carry GCM tags, and the plaintext's SHA-256 is recorded); the
 * transport is TLS wherever the product is deployed.
 */

export interface PartWriterOptions {
  s3: S3Client;
  bucket: string;
  key: string;
  contentType?: string | undefined;
  metadata: Record<string, string>;
  /** Bytes the object will have, when known: decides at once between one PutObject and a multipart upload. */
  expectedSize?: number | undefined;
  partSize?: number;
  concurrency?: number;
  unsignedPayload?: boolean;
}

/**
 * 5 MiB parts (S3's smallest), 4 in flight: 25 MiB of buffers at most. Larger parts saved no
 * time here (`npm run bench`) and cost RSS: 8 MiB parts peaked ~20 MB higher.
 */
export const PART_SIZE = 5 * 1024 * 1024;
export const PART_CONCURRENCY = 4;

/**
 * Where the process runs with --expose-gc (the functions that seal: serverless.yml), a scavenge
 * after every MiB written, and a full collection every 256 MiB. Every 64 KiB read from the
 * source and every sealed frame is a fresh buffer outside the V8 heap, freed only when its small
 * wrapper object is collected; with a small young generation (--max-semi-space-size=2) that
 * happened only once ~64 MB of such garbage had piled up, a third of the peak RSS. Scavenges
 * cost about 0.3 ms/MB in all; what they promote (requests in flight, buffers waiting while the
 * source is paused) is old garbage only a full collection frees, which let the peak of a 1 GB
 * file climb ~15 MB above a 100 MB one's; none of the files the product is made for (≤ 120 MB)
 * reaches the first full collection. Measured by `npm run bench`. Without the flag, nothing is called.
 */
const collectGarbage = (globalThis as { gc?: (options: { type: 'minor' | 'major' }) => void }).gc;
const SCAVENGE_EVERY = 1024 * 1024;
const FULL_COLLECTION_EVERY = 256;

export class PartWriter {
  readonly #options: PartWriterOptions;
  readonly #partSize: number;
  readonly #concurrency: number;
  readonly #free: Buffer[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #parts: CompletedPart[] = [];
  #current: Buffer;
  #filled = 0;
  #size = 0;
  #partsSent = 0;
  #uploadId: Promise<string> | undefined;
  #failure: { error: unknown } | undefined;

  constructor(options: PartWriterOptions) {
    this.#options = options;
    this.#partSize = options.partSize ?? PART_SIZE;
    this.#concurrency = options.concurrency ?? PART_CONCURRENCY;
    this.#current = Buffer.allocUnsafeSlow(this.#partSize);
    if (options.expectedSize !== undefined && options.expectedSize > this.#partSize) this.#startMultipart();
  }

  /** Bytes appended so far: the object's size once complete. */
  get size(): number {
    return this.#size;
  }

  /** Copies `bytes` into the part buffers, sending each part as it fills. Throws a failed part's error. */
  readonly append = (bytes: Uint8Array): void => {
    this.#throwIfFailed();
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#filled === this.#partSize) this.#sendCurrent();
      const copied = Math.min(bytes.length - offset, this.#partSize - this.#filled);
      this.#current.set(bytes.subarray(offset, offset + copied), this.#filled);
      this.#filled += copied;
      offset += copied;
    }
    const before = this.#size;
    this.#size += bytes.length;
    const mib = Math.floor(this.#size / SCAVENGE_EVERY);
    if (collectGarbage && mib !== Math.floor(before / SCAVENGE_EVERY)) collectGarbage({ type: mib % FULL_COLLECTION_EVERY === 0 ? 'major' : 'minor' });
  };

  /** Whether `concurrency` parts are in flight: the caller should wait (`ready`) before appending more. */
  get busy(): boolean {
    return this.#inFlight.size >= this.#concurrency || this.#failure !== undefined;
  }

  /** Resolves once fewer than `concurrency` parts are in flight; rejects with a failed part's error. */
  async ready(): Promise<void> {
    while (this.#inFlight.size >= this.#concurrency) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
  }

  /**
   * Sends what is left and makes the object visible: one PutObject, or the last part and the
   * completion. An aborted `signal` (the run lost its file) stops it before the request that
   * would make the object visible, however late it comes.
   */
  async complete(signal?: AbortSignal): Promise<void> {
    this.#throwIfFailed();
    const body = this.#current.subarray(0, this.#filled);
    if (this.#uploadId === undefined) {
      signal?.throwIfAborted();
      await this.#options.s3.send(
        this.#unsigned(new PutObjectCommand({ ...this.#objectParams(), Body: body, ContentLength: body.length })),
        { abortSignal: signal },
      );
      return;
    }
    if (this.#filled > 0 || this.#partsSent === 0) this.#sendPart(body);
    await Promise.allSettled(this.#inFlight);
    this.#throwIfFailed();
    const { bucket, key } = this.#options;
    const UploadId = await this.#uploadId;
    signal?.throwIfAborted();
    await this.#options.s3.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: this.#parts } }),
      { abortSignal: signal },
    );
  }

  /** Abandons the object: parts in flight are waited for, then the multipart upload is aborted. Never throws. */
  async abort(): Promise<void> {
    await Promise.allSettled(this.#inFlight);
    const uploadId = await this.#uploadId?.catch(() => undefined);
    if (uploadId === undefined) return;
    const { s3, bucket, key } = this.#options;
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
  }

  #objectParams() {
    const { bucket, key, contentType, metadata } = this.#options;
    return { Bucket: bucket, Key: key, Metadata: metadata, ...(contentType !== undefined && { ContentType: contentType }) };
  }

  #startMultipart(): Promise<string> {
    this.#uploadId ??= this.#options.s3.send(new CreateMultipartUploadCommand(this.#objectParams())).then(({ UploadId }) => {
      if (!UploadId) throw new Error('CreateMultipartUpload answered without an upload id');
      return UploadId;
    });
    // Its failure surfaces where the id is awaited; this keeps it from being an unhandled rejection meanwhile.
    this.#uploadId.catch(() => undefined);
    return this.#uploadId;
  }

  #sendCurrent(): void {
    this.#sendPart(this.#current);
    this.#current = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#partSize);
    this.#filled = 0;
  }

  #sendPart(body: Buffer): void {
    const partNumber = ++this.#partsSent;
    const uploadId = this.#startMultipart();
    const { s3, bucket, key } = this.#options;
    const sending: Promise<void> = uploadId
      .then((UploadId) =>
        s3.send(
          this.#unsigned(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: partNumber, Body: body, ContentLength: body.length })),
        ),
      )
      .then(
        ({ ETag }) => {
          this.#parts[partNumber - 1] = { PartNumber: partNumber, ETag };
          // Its bytes are on the server: the buffer serves the next part.
          if (body.length === this.#partSize) this.#free.push(body);
        },
        (error: unknown) => {
          this.#failure ??= { error };
        },
      )
      .finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }

  #unsigned<C extends { middlewareStack: UploadPartCommand['middlewareStack'] | PutObjectCommand['middlewareStack'] }>(command: C): C {
    if (!this.#options.unsignedPayload) return command;
    (command.middlewareStack as UploadPartCommand['middlewareStack']).add(
      (next) => (args) => {
        // The signer uses a payload hash already in the headers instead of hashing the body.
        (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        return next(args);
      },
      { step: 'build', name: 'unsignedPayload' },
    );
    return command;
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }
}
