import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { backend, isNotFound } from './backend-errors.ts';
import { isFileId } from './object-layout.ts';

/**
 * How much is stored, kept current without listing the catalogue: a ledger of small objects
 * in the final bucket.
 *
 *   usage/changes/<fileId>.add      {fileId, kind, bytes}: the file became ready
 *   usage/changes/<fileId>.remove   {fileId, kind, bytes}: a ready file was deleted
 *   usage/files/<fileId>            its plaintext bytes: the file is counted in the totals
 *   usage/totals.json               {bytes, files, updatedAt, lastFold}
 *
 * 1. Whoever wins the conditional write that makes a file `ready` (a processing run, storeFile)
 *    writes its `.add`, and so may a later delivery that finds it ready; whoever deletes the
 *    manifest of a `ready` file writes its `.remove`. The key depends only on the fileId and the
 *    kind, so a change written twice before a fold is one object.
 * 2. The sweep folds (`fold`): lists `usage/changes/`, and decides each change by the file's
 *    counted marker, which makes it idempotent per file: an `.add` counts only if the file is not
 *    counted yet and its manifest is still `ready` (a file deleted meanwhile, even by a delete
 *    that raced its run's commit and wrote no `.remove`, is never counted); a `.remove` uncounts
 *    only a counted file, by the bytes its marker holds. It writes the new totals conditionally
 *    (If-Match on the ETag it read, If-None-Match: * for the first), naming in `lastFold` each
 *    change (key, ETag) and its effect; only then does it write or delete the markers and delete
 *    the changes. Losing the conditional write (another fold won) means starting over.
 * 3. A fold that died after writing the totals left its effects half done: the next fold first
 *    replays the `lastFold` entries whose change is still there with the same ETag (their
 *    effects are idempotent), without counting them again, then decides the new changes.
 *
 * Not covered: a run killed between its commit and its `.add` is counted only if its event is
 * delivered again (that delivery finds the file ready and writes the `.add`); a failed `.remove` write (logged)
 * leaves a deleted file counted, and files stored before the ledger existed are not counted:
 * both need a recount (list the manifests once, write totals and markers), not written yet.
 */

export const USAGE_PREFIX = 'usage/';
export const USAGE_CHANGES_PREFIX = `${USAGE_PREFIX}changes/`;
export const USAGE_TOTALS_KEY = `${USAGE_PREFIX}totals.json`;

export type UsageChangeKind = 'add' | 'remove';

export const usageChangeKey = (fileId: string, kind: UsageChangeKind) => `${USAGE_CHANGES_PREFIX}${fileId}.${kind}`;

export const usageCountedKey = (fileId: string) => `${USAGE_PREFIX}files/${fileId}`;

type Effect = 'count' | 'uncount' | 'none';

interface FoldEntry {
  key: string;
  etag: string;
  fileId: string;
  effect: Effect;
  bytes: number;
}

export interface UsageTotals {
  /** Plaintext bytes of the ready files. */
  bytes: number;
  /** Ready files. */
  files: number;
  updatedAt: string;
  /** What the last fold decided, so that a fold cut short is finished and never counted twice. */
  lastFold: FoldEntry[];
}

interface UsageChange {
  fileId: string;
  kind: UsageChangeKind;
  bytes: number;
}

/** Changes folded per sweep at most: the rest wait for the next one. */
const FOLD_BATCH = 500;
const FOLD_TRIES = 5;

const EMPTY: UsageTotals = { bytes: 0, files: 0, updatedAt: new Date(0).toISOString(), lastFold: [] };

export class UsageLedger {
  readonly #s3: S3Client;
  readonly #bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.#s3 = s3;
    this.#bucket = bucket;
  }

  /** Records that a file became ready (`add`) or that a ready file was deleted (`remove`). */
  async record(kind: UsageChangeKind, fileId: string, bytes: number, operation: string): Promise<void> {
    const change: UsageChange = { fileId, kind, bytes };
    await backend(operation, fileId, () =>
      this.#s3.send(
        new PutObjectCommand({ Bucket: this.#bucket, Key: usageChangeKey(fileId, kind), Body: JSON.stringify(change), ContentType: 'application/json' }),
      ),
    );
  }

  /** Withdraws a change not folded yet: a restored file's `.remove` (lib/storage/recovery.ts), which would uncount it. */
  async withdraw(kind: UsageChangeKind, fileId: string, operation: string): Promise<void> {
    await backend(operation, fileId, () => this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: usageChangeKey(fileId, kind) })));
  }

  /** The totals as last folded (zero before the first fold). */
  async totals(): Promise<UsageTotals> {
    return (await this.#readTotals()).totals;
  }

  /**
   * Folds the pending changes into the totals (see above); `isReady` reads a file's manifest, and
   * answers undefined when it cannot tell (a manifest that does not open): that change waits for a
   * later fold rather than stopping this one.
   */
  async fold(isReady: (fileId: string) => Promise<boolean | undefined>): Promise<UsageTotals> {
    for (let attempt = 1; ; attempt++) {
      const { totals, etag } = await this.#readTotals();
      const previous = new Map(totals.lastFold.map((entry) => [entry.key, entry]));
      const replay: FoldEntry[] = [];
      const fresh: { key: string; etag: string }[] = [];
      for await (const object of this.#changes()) {
        const done = previous.get(object.key);
        if (done !== undefined && done.etag === object.etag) replay.push(done);
        else if (fresh.length < FOLD_BATCH) fresh.push(object);
      }
      // The last fold's effects first: the new changes are decided by the markers they leave.
      await this.#apply(replay);
      const next: UsageTotals = { bytes: totals.bytes, files: totals.files, updatedAt: new Date().toISOString(), lastFold: [] };
      const decided = new Map<string, boolean>(); // fileId -> counted, as this fold leaves it
      const changes = (await Promise.all(fresh.map(async (object) => ({ object, change: await this.#readChange(object.key) }))))
        // Adds before removes: a file added and removed within one fold nets to nothing.
        .sort((a, b) => (a.change?.kind === b.change?.kind ? 0 : a.change?.kind === 'add' ? -1 : 1));
      for (const { object, change } of changes) {
        if (change === undefined) continue; // gone since the listing: another fold has it
        const counted = decided.get(change.fileId) ?? (await this.#countedBytes(change.fileId)) !== undefined;
        let effect: Effect = 'none';
        let bytes = change.bytes;
        if (change.kind === 'add' && !counted) {
          const ready = await isReady(change.fileId);
          if (ready === undefined) continue;
          if (ready) effect = 'count';
        }
        if (change.kind === 'remove' && counted) {
          effect = 'uncount';
          bytes = decided.get(change.fileId) === true ? bytesCountedNow(next.lastFold, change.fileId) : (await this.#countedBytes(change.fileId))!;
        }
        if (effect === 'count') ((next.bytes += bytes), next.files++);
        if (effect === 'uncount') ((next.bytes -= bytes), next.files--);
        decided.set(change.fileId, effect === 'count' || (counted && effect !== 'uncount'));
        next.lastFold.push({ key: object.key, etag: object.etag, fileId: change.fileId, effect, bytes });
      }
      if (next.lastFold.length === 0 && replay.length === 0 && etag !== undefined) return totals;
      if (!(await this.#writeTotals(next, etag))) {
        if (attempt >= FOLD_TRIES) throw new Error('usage totals kept changing under the fold');
        continue;
      }
      await this.#apply(next.lastFold);
      return next;
    }
  }

  /** A fold's decisions, carried out: markers written or removed, then the changes deleted. Each step may run twice. */
  async #apply(entries: readonly FoldEntry[]): Promise<void> {
    for (const entry of entries) {
      const marker = usageCountedKey(entry.fileId);
      if (entry.effect === 'count') {
        await backend('sweep', entry.fileId, () => this.#s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key: marker, Body: String(entry.bytes) })));
      } else if (entry.effect === 'uncount') {
        await backend('sweep', entry.fileId, () => this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: marker })));
      }
    }
    for (const entry of entries) {
      await backend('sweep', entry.fileId, () => this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: entry.key })));
    }
  }

  async #countedBytes(fileId: string): Promise<number | undefined> {
    try {
      const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: usageCountedKey(fileId) }));
      return Number(await out.Body!.transformToString());
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The change objects with their ETags (bucket-listing.ts's listing leaves ETags out). */
  async *#changes(): AsyncGenerator<{ key: string; etag: string }> {
    let ContinuationToken: string | undefined;
    do {
      const page = await backend('sweep', undefined, () =>
        this.#s3.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: USAGE_CHANGES_PREFIX, ContinuationToken })),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield { key: object.Key, etag: object.ETag ?? '' };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async #readTotals(): Promise<{ totals: UsageTotals; etag: string | undefined }> {
    try {
      const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: USAGE_TOTALS_KEY }));
      const totals = { ...EMPTY, ...(JSON.parse(await out.Body!.transformToString()) as Partial<UsageTotals>) };
      return { totals, etag: out.ETag };
    } catch (error) {
      if (isNotFound(error)) return { totals: EMPTY, etag: undefined };
      throw error;
    }
  }

  async #readChange(key: string): Promise<UsageChange | undefined> {
    try {
      const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }));
      const change = JSON.parse(await out.Body!.transformToString()) as UsageChange;
      const valid = isFileId(change.fileId) && (change.kind === 'add' || change.kind === 'remove') && Number.isSafeInteger(change.bytes) && change.bytes >= 0;
      return valid ? change : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** False when another fold wrote the totals since they were read. */
  async #writeTotals(totals: UsageTotals, etag: string | undefined): Promise<boolean> {
    try {
      await this.#s3.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: USAGE_TOTALS_KEY,
          Body: JSON.stringify(totals),
          ContentType: 'application/json',
          ...(etag === undefined ? { IfNoneMatch: '*' } : { IfMatch: etag }),
        }),
      );
      return true;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) return false;
      throw error;
    }
  }
}

/** Bytes a file was counted with earlier in the same fold. */
function bytesCountedNow(entries: readonly FoldEntry[], fileId: string): number {
  return entries.find((entry) => entry.fileId === fileId && entry.effect === 'count')?.bytes ?? 0;
}
