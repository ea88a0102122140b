import { createHash } from 'node:crypto';
import { SNIFF_BYTES, sniffAudio, type AudioExtension } from '../audio-formats.ts';
import { InvalidAudio } from '../audio/container-walker.ts';
import { AudioCheck, type AudioDescription } from './audio-check.ts';

/**
 * Why an upload is refused, as a metric dimension and an alarm can name it (the message says it to a person).
 * `wrong_format`: its first bytes are another format's, or none; `invalid_audio`: they are right,
 * but the whole is not a consistent recording of that format (lib/processing/audio-check.ts).
 */
export type RejectionCode = 'too_large' | 'size_mismatch' | 'wrong_format' | 'invalid_audio' | 'sha256_mismatch';

/** The upload's content is not what was declared: the client's fault, final, never retried. */
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
  audio: AudioDescription;
}

/**
 * Counts the plaintext, hashes it, checks its first bytes and has the audio check read it whole
 * (container structure and music-metadata), so that one read of the upload serves every check.
 * It is called in line by the sealing loop (no stream of its own: one less hop per chunk), and
 * fails as early as it can: on the first bytes for a wrong format, on the first byte past the
 * declared size, on the first inconsistency in the container. `end` resolves only once the audio
 * check has accepted the whole file.
 */
export class UploadInspector {
  readonly #hash = createHash('sha256');
  readonly #extension: AudioExtension;
  readonly #expectedSize: number | undefined;
  readonly #limit: number;
  readonly #audio: AudioCheck;
  #head: Buffer | undefined = Buffer.alloc(0);
  #size = 0;
  #result: InspectionResult | undefined;

  constructor(options: { extension: AudioExtension; expectedSize?: number | undefined; maxSize: number }) {
    this.#extension = options.extension;
    this.#expectedSize = options.expectedSize;
    this.#limit = options.expectedSize ?? options.maxSize;
    this.#audio = new AudioCheck(options.extension, { expectedSize: options.expectedSize });
  }

  /** Size, SHA-256 and audio description of everything that passed, once `end` has resolved. */
  get result(): InspectionResult | undefined {
    return this.#result;
  }

  /**
   * Inspects the next chunk. A refusal found at once is thrown; when the parser is behind, the
   * promise returned settles once it has caught up (rejected with the refusal, if any), and the
   * caller waits for it before the next chunk: this bounds the parser's queue.
   */
  write(chunk: Buffer): Promise<void> | undefined {
    this.#size += chunk.length;
    if (this.#size > this.#limit) {
      throw new UploadRejection(
        `upload is larger than ${this.#expectedSize === undefined ? 'the size limit' : 'declared'} (${this.#limit} bytes)`,
        this.#expectedSize === undefined ? 'too_large' : 'size_mismatch',
      );
    }
    if (this.#head !== undefined) {
      this.#head = Buffer.concat([this.#head, chunk.subarray(0, SNIFF_BYTES)]);
      if (this.#head.length >= SNIFF_BYTES) {
        const problem = this.#checkFormat();
        if (problem) throw problem;
      }
    }
    let waiting: Promise<void> | undefined;
    try {
      waiting = this.#audio.write(chunk);
    } catch (error) {
      throw this.#audioRejection(error);
    }
    this.#hash.update(chunk);
    return waiting?.then(() => {
      const problem = this.#audio.problem;
      if (problem) throw this.#audioRejection(problem);
    });
  }

  /** The checks that need the whole file; resolves with what was found. */
  async end(): Promise<InspectionResult> {
    const problem = this.#head === undefined ? undefined : this.#checkFormat();
    if (problem) throw problem;
    if (this.#expectedSize !== undefined && this.#size !== this.#expectedSize) {
      throw new UploadRejection(`upload is ${this.#size} bytes but ${this.#expectedSize} were declared`, 'size_mismatch');
    }
    const sha256 = this.#hash.digest('hex');
    let audio: AudioDescription;
    try {
      audio = await this.#audio.end();
    } catch (error) {
      throw this.#audioRejection(error);
    }
    this.#result = { size: this.#size, sha256, audio };
    return this.#result;
  }

  /** Stops the parser when the pass fails, so that it lets go of what it holds. */
  abort(): void {
    this.#audio.abort();
  }

  #audioRejection(error: unknown): Error {
    if (!(error instanceof InvalidAudio)) return error as Error;
    // The parser may give up before the sniffer has its bytes (an upload of a few bytes): what
    // those bytes are still decides, so a file of another format is wrong_format either way.
    const format = this.#head === undefined ? undefined : this.#checkFormat();
    return format ?? new UploadRejection(`content is not a valid ${this.#extension} recording: ${error.message}`, 'invalid_audio');
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
