/**
 * Encrypted object format, version 1.
 *
 * The plaintext is cut into frames of `frameSize` bytes (the last one may be shorter; an empty
 * file is a single empty frame) and each frame is sealed on its own with AES-256-GCM under the
 * file's data key. The object body is nothing but the sealed frames back to back:
 *
 *   frame i = ciphertext (frameSize bytes, fewer for the last) ‖ 16-byte GCM tag
 *
 * so any plaintext range maps to a ciphertext range of whole frames, and a range read only
 * fetches and authenticates the frames it touches. Everything else lives in the object's
 * metadata (see `encodeEncryptionMetadata`): format version, KEK id, wrapped data key, nonce
 * prefix and frame size.
 *
 *   nonce = 7-byte random per-file prefix ‖ uint32 BE frame index ‖ 0x01 if final frame else 0x00
 *   AAD   = UTF-8 of "transcribo/v1/" + fileId
 *
 * The index in the nonce pins each frame to its position (no reordering, no dropping); the
 * final-frame flag makes a file cut at a frame boundary fail, since its new last frame was
 * sealed as non-final; the AAD stops frames being moved between files. Every file has its own
 * data key, so the random prefix is a second line of defence against nonce reuse, not the first.
 * The decryptor knows the plaintext size (from the manifest) and so the exact size of every
 * frame; it releases a frame's plaintext only once that frame's tag has verified.
 */

import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  randomBytes,
  type DecipherGCM,
  type KeyObject,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { StorageFileCorruptedError, StorageFileSizeError, StorageMetadataError } from '../errors/catalogue.ts';
import { KEY_LENGTH, KMS_KEK_ID, MAX_WRAPPED_KEY_LENGTH, WRAPPED_KEY_LENGTH, isValidKeyId } from './keyring.ts';

export const FORMAT_VERSION = 1;
export const DEFAULT_FRAME_SIZE = 65536;
export const TAG_LENGTH = 16;
export const NONCE_PREFIX_LENGTH = 7;
/** Bound on a frame size read from metadata: a frame's plaintext is held until its tag verifies. */
export const MAX_FRAME_SIZE = 16 * 1024 * 1024;

const NONCE_LENGTH = 12;
const MAX_FRAMES = 2 ** 32;
const AAD_PREFIX = 'transcribo/v1/';
const CIPHER = 'aes-256-gcm';

export interface FrameParams {
  dataKey: Buffer;
  noncePrefix: Buffer;
  frameSize: number;
  fileId: string;
}

export function newNoncePrefix(): Buffer {
  return randomBytes(NONCE_PREFIX_LENGTH);
}

export function frameCount(plainSize: number, frameSize: number): number {
  checkSizes(plainSize, frameSize);
  return plainSize === 0 ? 1 : Math.ceil(plainSize / frameSize);
}

export function cipherSize(plainSize: number, frameSize: number): number {
  return plainSize + frameCount(plainSize, frameSize) * TAG_LENGTH;
}

export interface CipherRange {
  cipherStart: number;
  cipherEndInclusive: number;
  firstFrame: number;
  lastFrame: number;
  /** Bytes to drop from the start of the first decrypted frame. */
  skip: number;
  /** Plaintext bytes to deliver. */
  length: number;
}

/** The caller has already checked the range against the file (RangeNotSatisfiableError is theirs to raise). */
export function cipherRangeFor(
  plainStart: number,
  plainEndInclusive: number,
  plainSize: number,
  frameSize: number,
): CipherRange {
  checkSizes(plainSize, frameSize);
  if (!isInclusiveRange(plainStart, plainEndInclusive, plainSize)) {
    throw new RangeError(`bytes ${plainStart}-${plainEndInclusive} are not a range of a ${plainSize}-byte file`);
  }
  const { firstFrame, lastFrame, cipherStart } = framesTouched(plainStart, plainEndInclusive, frameSize);
  return {
    cipherStart,
    cipherEndInclusive: lastFrame * (frameSize + TAG_LENGTH) + frameLength(lastFrame, plainSize, frameSize) + TAG_LENGTH - 1,
    firstFrame,
    lastFrame,
    skip: plainStart - firstFrame * frameSize,
    length: plainEndInclusive - plainStart + 1,
  };
}

/**
 * The sealed frames a plaintext range touches, for when the file's size is not known yet:
 * the end may be open (`undefined`, to the end of the file) or past the file, and the
 * ciphertext end is that of a whole frame (S3 clamps a range to the object's end).
 */
export function framesTouched<End extends number | undefined>(
  plainStart: number,
  plainEndInclusive: End,
  frameSize: number,
): { firstFrame: number; lastFrame: End; cipherStart: number; cipherEndInclusive: End } {
  const sealedFrame = frameSize + TAG_LENGTH;
  const firstFrame = Math.floor(plainStart / frameSize);
  const lastFrame = (plainEndInclusive === undefined ? undefined : Math.floor(plainEndInclusive / frameSize)) as End;
  return {
    firstFrame,
    lastFrame,
    cipherStart: firstFrame * sealedFrame,
    cipherEndInclusive: (lastFrame === undefined ? undefined : (lastFrame + 1) * sealedFrame - 1) as End,
  };
}

/** first..last is a non-empty run of whole numbers inside [0, limit). */
function isInclusiveRange(first: number, last: number, limit: number): boolean {
  return Number.isSafeInteger(first) && Number.isSafeInteger(last) && first >= 0 && first <= last && last < limit;
}

function frameLength(index: number, plainSize: number, frameSize: number): number {
  return Math.min(frameSize, plainSize - index * frameSize);
}

function checkSizes(plainSize: number, frameSize: number): void {
  if (!Number.isSafeInteger(frameSize) || frameSize < 1) throw new RangeError(`bad frame size ${frameSize}`);
  if (!Number.isSafeInteger(plainSize) || plainSize < 0) throw new RangeError(`bad plaintext size ${plainSize}`);
}

/** Per-file state shared by both directions; the key is copied so the caller may wipe its buffer at once. */
class FrameSealer {
  readonly key: KeyObject;
  readonly aad: Buffer;
  readonly frameSize: number;
  readonly fileId: string;
  // createCipheriv copies the IV, so one buffer serves every frame.
  readonly #nonce = Buffer.alloc(NONCE_LENGTH);

  constructor(p: FrameParams) {
    if (p.dataKey.length !== KEY_LENGTH) throw new RangeError(`the data key must be ${KEY_LENGTH} bytes`);
    if (p.noncePrefix.length !== NONCE_PREFIX_LENGTH) {
      throw new RangeError(`the nonce prefix must be ${NONCE_PREFIX_LENGTH} bytes`);
    }
    checkSizes(0, p.frameSize);
    this.key = createSecretKey(p.dataKey);
    this.aad = Buffer.from(AAD_PREFIX + p.fileId, 'utf8');
    this.frameSize = p.frameSize;
    this.fileId = p.fileId;
    p.noncePrefix.copy(this.#nonce, 0);
  }

  nonce(index: number, final: boolean): Buffer {
    this.#nonce.writeUInt32BE(index, NONCE_PREFIX_LENGTH);
    this.#nonce[NONCE_LENGTH - 1] = final ? 1 : 0;
    return this.#nonce;
  }
}

/**
 * Plaintext chunks of any size in, sealed frames out, handed to `emit` as they are sealed (the
 * caller copies them where they go: the writer's part buffers). A frame can only be sealed once
 * it is known whether it is the final one, so the last full frame waits for either more input
 * or the end. Full frames inside a chunk are sealed in place; only bytes that straddle chunks
 * are copied. A held frame may be a view of the caller's chunk: the caller must not reuse a
 * chunk's memory once written (a network stream's chunks are never reused).
 */
export class FrameEncryptor {
  readonly #sealer: FrameSealer;
  readonly #frameSize: number;
  #index = 0;
  #held: Buffer | undefined;
  #heldIsOwn = false;
  #partial: Buffer | undefined;
  #partialLength = 0;

  constructor(p: FrameParams) {
    this.#sealer = new FrameSealer(p);
    this.#frameSize = this.#sealer.frameSize;
  }

  write(chunk: Buffer, emit: (sealed: Buffer) => void): void {
    const length = chunk.length;
    if (length === 0) return;
    const frameSize = this.#frameSize;
    this.#releaseHeld(emit);
    let offset = 0;
    if (this.#partialLength > 0) {
      const buffer = this.#partial!;
      offset = Math.min(frameSize - this.#partialLength, length);
      chunk.copy(buffer, this.#partialLength, 0, offset);
      this.#partialLength += offset;
      if (this.#partialLength < frameSize) return;
      this.#partialLength = 0;
      if (offset === length) {
        this.#held = buffer;
        this.#heldIsOwn = true;
        this.#partial = undefined;
        return;
      }
      this.#seal(buffer, false, emit);
    }
    while (length - offset > frameSize) {
      this.#seal(chunk.subarray(offset, offset + frameSize), false, emit);
      offset += frameSize;
    }
    const rest = length - offset;
    if (rest === frameSize) {
      this.#held = chunk.subarray(offset);
    } else {
      this.#partial ??= Buffer.allocUnsafe(frameSize);
      chunk.copy(this.#partial, 0, offset);
      this.#partialLength = rest;
    }
  }

  /** Seals the final frame (an empty one for an empty file). */
  end(emit: (sealed: Buffer) => void): void {
    if (this.#held !== undefined) this.#seal(this.#held, true, emit);
    else this.#seal(this.#partial === undefined ? Buffer.alloc(0) : this.#partial.subarray(0, this.#partialLength), true, emit);
    this.#held = undefined;
    this.#partial = undefined;
    this.#partialLength = 0;
  }

  // Seals the held frame now that more input follows it; if it was our own buffer, it is reused.
  #releaseHeld(emit: (sealed: Buffer) => void): void {
    if (this.#held === undefined) return;
    this.#seal(this.#held, false, emit);
    if (this.#heldIsOwn) this.#partial = this.#held;
    this.#held = undefined;
    this.#heldIsOwn = false;
  }

  #seal(frame: Buffer, final: boolean, emit: (sealed: Buffer) => void): void {
    const sealer = this.#sealer;
    if (this.#index >= MAX_FRAMES) {
      throw new StorageFileSizeError('The file is too large to encrypt', {
        operation: 'encrypt',
        fileId: sealer.fileId,
        details: { frameSize: this.#frameSize },
      });
    }
    const cipher = createCipheriv(CIPHER, sealer.key, sealer.nonce(this.#index, final), { authTagLength: TAG_LENGTH });
    cipher.setAAD(sealer.aad);
    const sealed = cipher.update(frame);
    cipher.final();
    if (sealed.length > 0) emit(sealed);
    emit(cipher.getAuthTag());
    this.#index += 1;
  }
}

export interface DecryptParams extends FrameParams {
  /** Plaintext size of the whole file: it fixes which frame is final and every frame's size. */
  plainSize: number;
  firstFrame?: number | undefined;
  lastFrame?: number | undefined;
  skip?: number | undefined;
  length?: number | undefined;
}

/**
 * Ciphertext of frames firstFrame..lastFrame in, plaintext out. Ciphertext is fed to the
 * decipher as it arrives (no reassembly copy), but the plaintext it yields is held back until
 * the frame's tag verifies. Input that ends early or runs on past the last frame is corruption.
 */
export function createDecryptStream(p: DecryptParams): Transform {
  const sealer = new FrameSealer(p);
  const plainSize = p.plainSize;
  const frameSize = sealer.frameSize;
  const count = frameCount(plainSize, frameSize);
  if (count > MAX_FRAMES) {
    throw new StorageMetadataError('The recorded size needs more frames than the format allows', {
      operation: 'decrypt',
      fileId: sealer.fileId,
      details: { plainSize, frameSize },
    });
  }
  const firstFrame = p.firstFrame ?? 0;
  const lastFrame = p.lastFrame ?? count - 1;
  if (!isInclusiveRange(firstFrame, lastFrame, count)) {
    throw new RangeError(`frames ${firstFrame}-${lastFrame} are not frames of a ${count}-frame file`);
  }
  const available = Math.min(plainSize, (lastFrame + 1) * frameSize) - firstFrame * frameSize;
  const skip = p.skip ?? 0;
  if (!Number.isSafeInteger(skip) || skip < 0 || (skip > 0 && skip >= frameLength(firstFrame, plainSize, frameSize))) {
    throw new RangeError(`cannot skip ${skip} bytes of frame ${firstFrame}`);
  }
  const length = p.length ?? available - skip;
  if (!Number.isSafeInteger(length) || length < 0 || skip + length > available) {
    throw new RangeError(`cannot deliver ${length} bytes after skipping ${skip} of frames ${firstFrame}-${lastFrame}`);
  }

  let index = firstFrame;
  let expected = frameLength(index, plainSize, frameSize);
  let received = 0;
  const tag = Buffer.alloc(TAG_LENGTH);
  let tagReceived = 0;
  let decipher: DecipherGCM | undefined;
  let pending: Buffer[] = [];
  let toSkip = skip;
  let toDeliver = length;

  const corrupted = (message: string, cause?: unknown) =>
    new StorageFileCorruptedError(message, {
      operation: 'decrypt',
      fileId: sealer.fileId,
      details: { frame: index, plainSize, frameSize },
      cause,
    });

  const open = () => {
    const d = createDecipheriv(CIPHER, sealer.key, sealer.nonce(index, index === count - 1), {
      authTagLength: TAG_LENGTH,
    });
    d.setAAD(sealer.aad);
    return d;
  };

  const finishFrame = (stream: Transform): void => {
    const d = decipher!;
    d.setAuthTag(tag);
    try {
      d.final();
    } catch (error) {
      throw corrupted('A frame of the object fails authentication', error);
    }
    for (const piece of pending) deliver(stream, piece);
    pending = [];
    decipher = undefined;
    received = 0;
    tagReceived = 0;
    index += 1;
    if (index <= lastFrame) expected = frameLength(index, plainSize, frameSize);
  };

  const deliver = (stream: Transform, piece: Buffer): void => {
    let view = piece;
    if (toSkip > 0) {
      const dropped = Math.min(toSkip, view.length);
      toSkip -= dropped;
      view = view.subarray(dropped);
    }
    if (view.length > toDeliver) view = view.subarray(0, toDeliver);
    if (view.length === 0) return;
    toDeliver -= view.length;
    stream.push(view);
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        let offset = 0;
        while (offset < chunk.length) {
          if (index > lastFrame) throw corrupted('The object runs on past its last frame');
          decipher ??= open();
          if (received < expected) {
            const end = Math.min(chunk.length, offset + expected - received);
            const plain = decipher.update(chunk.subarray(offset, end));
            if (plain.length > 0) pending.push(plain);
            received += end - offset;
            offset = end;
            continue;
          }
          const tagEnd = Math.min(chunk.length, offset + TAG_LENGTH - tagReceived);
          const copied = chunk.copy(tag, tagReceived, offset, tagEnd);
          tagReceived += copied;
          offset += copied;
          if (tagReceived === TAG_LENGTH) finishFrame(this);
        }
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      if (index <= lastFrame) callback(corrupted('The object ends before its last frame'));
      else callback();
    },
  });
}

export interface EncryptionMetadata {
  version: number;
  kekId: string;
  wrappedKey: Buffer;
  noncePrefix: Buffer;
  frameSize: number;
}

/** S3 user metadata: lowercase keys, ASCII values, hence base64url for the binary fields. */
export function encodeEncryptionMetadata(m: EncryptionMetadata): Record<string, string> {
  return {
    'enc-version': String(m.version),
    'enc-kek': m.kekId,
    'enc-key': m.wrappedKey.toString('base64url'),
    'enc-nonce': m.noncePrefix.toString('base64url'),
    'enc-frame': String(m.frameSize),
  };
}

export function decodeEncryptionMetadata(
  meta: Record<string, string | undefined>,
  fileId?: string,
): EncryptionMetadata {
  const fail = (message: string, field: string) =>
    new StorageMetadataError(message, { operation: 'decrypt', fileId, details: { field } });
  const field = (name: string): string => {
    const value = meta[name];
    if (value === undefined || value === '') throw fail(`The object's encryption metadata lacks ${name}`, name);
    return value;
  };

  // The version is read first: a later version may well lay out the other fields differently.
  const versionText = field('enc-version');
  if (!/^(0|[1-9][0-9]{0,5})$/.test(versionText)) {
    throw fail('The object has an unreadable encryption format version', 'enc-version');
  }
  const version = Number(versionText);
  if (version !== FORMAT_VERSION) {
    throw fail(`The object has unknown encryption format version ${version}`, 'enc-version');
  }

  const kekId = field('enc-kek');
  if (!isValidKeyId(kekId)) throw fail('The object names an unreadable key-encryption key id', 'enc-kek');
  const wrappedKey = decodeBase64Url(field('enc-key'), kekId === KMS_KEK_ID ? undefined : WRAPPED_KEY_LENGTH);
  if (wrappedKey === undefined) throw fail('The object has an unreadable wrapped data key', 'enc-key');
  const noncePrefix = decodeBase64Url(field('enc-nonce'), NONCE_PREFIX_LENGTH);
  if (noncePrefix === undefined) throw fail('The object has an unreadable nonce prefix', 'enc-nonce');
  const frameText = field('enc-frame');
  const frameSize = /^[1-9][0-9]{0,8}$/.test(frameText) ? Number(frameText) : 0;
  if (frameSize < 1 || frameSize > MAX_FRAME_SIZE) throw fail('The object has an unreadable frame size', 'enc-frame');
  return { version, kekId, wrappedKey, noncePrefix, frameSize };
}

/** Strict base64url of exactly `size` bytes, or of 1 to MAX_WRAPPED_KEY_LENGTH bytes when no size is given. */
function decodeBase64Url(text: string, size: number | undefined): Buffer | undefined {
  // Buffer.from skips characters it does not know; the round trip makes decoding strict.
  const bytes = Buffer.from(text, 'base64url');
  const fits = size === undefined ? bytes.length > 0 && bytes.length <= MAX_WRAPPED_KEY_LENGTH : bytes.length === size;
  return fits && bytes.toString('base64url') === text ? bytes : undefined;
}
