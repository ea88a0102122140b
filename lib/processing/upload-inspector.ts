import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { SNIFF_BYTES, sniffAudio, type AudioExtension } from '../audio-formats.ts';

/** The upload's content is not what was declared: the client's fault, final, never retried. */
/** Why an upload is refused, as a metric dimension and an alarm can name it (the message says it to a person). */
export type RejectionCode = 'too_large' | 'size_mismatch' | 'wrong_format' | 'sha256_mismatch';

export class UploadRejection extends Error {
  override name = 'UploadRejection';

  readonly code: RejectionCode;

  constructor(message: string, code: RejectionCode) {
    super(message);
    this.code = code;
  }
}

export interface InspectionResult {
  size: number;
  sha256: string;
}

/**
 * Passes the plaintext through unchanged while it counts it, hashes it and checks its first
 * bytes, so that one read of the upload serves every check. It fails as early as it can:
 * on the first bytes for a wrong format, on the first byte past the declared size.
 */
export class UploadInspector extends Transform {
  readonly #hash = createHash('sha256');
  readonly #extension: AudioExtension;
  readonly #expectedSize: number | undefined;
  readonly #limit: number;
  #head: Buffer | undefined = Buffer.alloc(0);
  #size = 0;
  #result: InspectionResult | undefined;

  constructor(options: { extension: AudioExtension; expectedSize?: number | undefined; maxSize: number }) {
    super();
    this.#extension = options.extension;
    this.#expectedSize = options.expectedSize;
    this.#limit = options.expectedSize ?? options.maxSize;
  }

  /** Size and SHA-256 of everything that passed, once the stream has ended. */
  get result(): InspectionResult | undefined {
    return this.#result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#size += chunk.length;
    if (this.#size > this.#limit) {
      callback(
        new UploadRejection(
          `upload is larger than ${this.#expectedSize === undefined ? 'the size limit' : 'declared'} (${this.#limit} bytes)`,
          this.#expectedSize === undefined ? 'too_large' : 'size_mismatch',
        ),
      );
      return;
    }
    if (this.#head !== undefined) {
      this.#head = Buffer.concat([this.#head, chunk.subarray(0, SNIFF_BYTES)]);
      if (this.#head.length >= SNIFF_BYTES) {
        const problem = this.#checkFormat();
        if (problem) return callback(problem);
      }
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const problem = this.#head === undefined ? undefined : this.#checkFormat();
    if (problem) return callback(problem);
    if (this.#expectedSize !== undefined && this.#size !== this.#expectedSize) {
      return callback(new UploadRejection(`upload is ${this.#size} bytes but ${this.#expectedSize} were declared`, 'size_mismatch'));
    }
    this.#result = { size: this.#size, sha256: this.#hash.digest('hex') };
    callback();
  }

  #checkFormat(): UploadRejection | undefined {
    const head = this.#head ?? Buffer.alloc(0);
    this.#head = undefined;
    const found = sniffAudio(head);
    if (found === this.#extension) return undefined;
    return new UploadRejection(
      found === undefined
        ? `content is not a recognised ${this.#extension} file`
        : `content is ${found} audio but the file was declared as ${this.#extension}`,
      'wrong_format',
    );
  }
}
