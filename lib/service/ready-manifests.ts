import type { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { httpStatusOf, isNotFound, toStorageError } from '../storage/backend-errors.ts';
import type { Manifest } from '../storage/manifest.ts';
import { finalKey, SEAL_ID_METADATA } from '../storage/object-layout.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import type { ByteRange } from '../byte-range.ts';
import { storedByteRange } from './read-content.ts';

/**
 * Ready manifests kept in the process, so that a content read of a file read before is ONE
 * request: the GET of the stored bytes it needs, with no manifest read before or beside it.
 *
 * Why this is safe. A `ready` manifest never changes for a given seal id: nothing but a delete
 * (and a restore, which brings back the same object) happens to a ready file, and key rotation
 * rewrites the manifest's seal, not its content (it adds a seal id only to manifests that had
 * none, which are never cached). What may change — the file deleted, or another recording stored
 * under the id — is told by the recording itself, which a read fetches anyway:
 * - the object's seal id must be the cached manifest's, else the entry goes and the full path
 *   (manifest read, then `assertSameSeal`) decides;
 * - deleted, the recording's current version is gone (a delete marker, or no object): the GET
 *   answers 404, the entry goes, and the full path answers 404 once the manifest is gone. A
 *   delete removes the recording before it returns (storage-service.ts `#remove`); one cut short
 *   between manifest and recording is finished by its retry (recovery.ts `finishDeletion`), and
 *   an entry lives at most TTL_MS since its manifest was last read, whatever happens;
 * - the data key is unwrapped from the object's metadata, as on the full path, so a key rotation
 *   (a metadata-only copy re-wrapping it) is honoured at once;
 * - the owner is checked against the cached manifest; another owner takes the full path, and
 *   gets the 404 of a missing file, in the time a missing file takes.
 * Only what the manifest authorised is served, every frame authenticated as on the full path.
 */

export type ReadyManifest = Manifest & { stored: NonNullable<Manifest['stored']> };

export const MAX_ENTRIES = 1000;
export const TTL_MS = 60_000;

export class ReadyManifests {
  // A Map iterates in insertion order: the first key is the least recently used.
  readonly #entries = new Map<string, { manifest: ReadyManifest; until: number }>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: { maxEntries?: number; ttlMs?: number; now?: () => number } = {}) {
    this.#maxEntries = options.maxEntries ?? MAX_ENTRIES;
    this.#ttlMs = options.ttlMs ?? TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Keeps a manifest just read if it is one a read can be served with: ready, with a seal id to check the recording by. */
  remember(manifest: Manifest): void {
    const { stored } = manifest;
    if (manifest.status !== 'ready' || stored?.sealId === undefined || (stored.encrypted && stored.frameSize === undefined)) return;
    this.#entries.delete(manifest.fileId);
    this.#entries.set(manifest.fileId, { manifest: manifest as ReadyManifest, until: this.#now() + this.#ttlMs });
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  get(fileId: string): ReadyManifest | undefined {
    const entry = this.#entries.get(fileId);
    if (entry === undefined) return undefined;
    this.#entries.delete(fileId);
    if (entry.until <= this.#now()) return undefined;
    this.#entries.set(fileId, entry);
    return entry.manifest;
  }

  forget(fileId: string): void {
    this.#entries.delete(fileId);
  }
}

/**
 * The one GET of a read served from a cached manifest: the stored bytes `range` needs, if the
 * recording is still the one `manifest` describes (its seal id). Undefined when it is not, or is
 * gone: the caller forgets the entry and takes the full path, which decides.
 */
export async function fetchRecording(ctx: StorageContext, manifest: ReadyManifest, range: ByteRange | undefined): Promise<GetObjectCommandOutput | undefined> {
  const { fileId, stored } = manifest;
  let out: GetObjectCommandOutput;
  try {
    out = await ctx.s3.internal.send(new GetObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId), Range: storedByteRange(stored, range) }));
  } catch (error) {
    // Gone, or another (shorter) object in its place: not this manifest's recording.
    if (isNotFound(error) || httpStatusOf(error) === 416) return undefined;
    throw toStorageError(error, 'getFile', fileId);
  }
  if (out.Metadata?.[SEAL_ID_METADATA] === stored.sealId) return out;
  (out.Body as Readable | undefined)?.destroy();
  return undefined;
}
