import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { StorageMetadataError, StorageOperationError, StorageQuotaError } from '../errors/catalogue.ts';
import { logger } from '../observability/logger.ts';
import { httpStatusOf, isNotFound, isPreconditionFailed, toStorageError } from './backend-errors.ts';
import type { Manifest } from './manifest.ts';
import { isFileId } from './object-layout.ts';
import { ownerTag } from './owner-tags.ts';
import type { StorageContext } from './storage-context.ts';

/**
 * Per-owner quotas (`STORAGE_QUOTA_BYTES_PER_OWNER`, `STORAGE_QUOTA_FILES_PER_OWNER`): how many
 * plaintext bytes and how many recordings one owner may keep, counted without listing anything.
 *
 * One small object per owner in the final bucket holds what counts against their limits:
 *
 *   usage/owners/<owner tag>.json   {version, files: {<fileId>: {bytes, reservedUntil?, reservedAt?}}, auditedAt?}
 *
 * The owner tag is a keyed HMAC of the owner (owner-tags.ts): neither the key nor the body names
 * the owner. An entry with `reservedUntil` is a reservation (an upload under way); one without is
 * a stored (`ready`) file. What an owner uses is the sum of the stored entries and of the
 * reservations not yet run out; the limits hold that sum. Every change is a read, then a write
 * conditional on the ETag read (If-None-Match: * for the first), tried again when another writer
 * won: the object is the owner's one point of serialisation, so two uploads created at once by
 * the same owner are decided one after the other and cannot both take the last room.
 *
 * 1. Create (createUpload, storeFile): reserve the declared bytes and one file, until the upload
 *    window and its grace have passed, or refuse with StorageQuotaError (nothing else written).
 * 2. Commit (process-upload, storeFile), just before the conditional write that makes the file
 *    ready: `admit` checks again that the owner's usage, this file included, is within the limits,
 *    keeping (or, if it ran out, taking again) the file's reservation for a few more minutes. Over
 *    the limit, the file ends `rejected` and its stored object is removed, rather than ready.
 * 3. Ready: `confirm` turns the reservation into a stored entry (no check: the file is stored).
 *    Rejected, expired or deleted: `release` removes the entry. Both are idempotent by fileId.
 *
 * Crashes and what repairs them:
 * - A create or run killed between its reservation and its manifest (or its commit): the
 *   reservation runs out by itself (at the end of the upload window; a commit's by
 *   `ADMIT_HOLD_MS`), and expired reservations are dropped at the next write. Nothing leaks for good.
 * - A run killed (or a write failed) between `ready` and `confirm`: the file's pending marker is
 *   still there (the run removes it last, and keeps it when `confirm` fails), so the sweep, or a
 *   redelivered event that finds the file settled, confirms it (`settleQuota`). The same repairs a
 *   rejection or expiry whose release did not happen.
 * - A delete whose release did not happen (crash after the manifest went, a failed write): the
 *   entry would count for good, so before any refusal the owner's entries are audited against
 *   their manifests (`AUDIT_INTERVAL_MS` apart at most): a stored entry whose manifest is gone (or
 *   not this owner's, or not ready) is dropped, a reservation a few minutes old whose file is gone,
 *   rejected or expired is dropped, and one whose file is ready is confirmed. Only a refusal pays
 *   for an audit, and a leaked entry can do no harm but refuse.
 *
 * With neither limit set, nothing here runs: no owner tag, no read, no write, on any path. Files
 * stored while no limit was set are not counted when one is set later (nor files stored before
 * quotas existed): that needs a recount (list the manifests once), not written yet.
 *
 * Privacy: the object lists the owner's fileIds with their sizes. Someone who can read the bucket
 * learns which recordings share an owner, never who it is (manifests seal the owner). Sealing the
 * object like a manifest would hide that too, at the cost of a step in `npm run rotate-keys`.
 */

export const OWNER_USAGE_PREFIX = 'usage/owners/';
export const ownerUsageKey = (tag: string) => `${OWNER_USAGE_PREFIX}${tag}.json`;

/** How long a commit's check holds the file's room, for the few writes between it and `confirm`. */
export const ADMIT_HOLD_MS = 10 * 60 * 1000;
/** An owner's entries are audited against their manifests at most this often (only when a request is refused). */
export const AUDIT_INTERVAL_MS = 60 * 1000;
/** A reservation younger than this may belong to a create still writing its manifest: an audit leaves it. */
export const RESERVATION_SETTLE_MS = 5 * 60 * 1000;
const WRITE_TRIES = 10;

export interface QuotaLimits {
  /** Plaintext bytes per owner; undefined: no limit. */
  bytes: number | undefined;
  /** Files per owner (uploads under way included); undefined: no limit. */
  files: number | undefined;
}

export interface OwnerUsageEntry {
  bytes: number;
  /** Present while the file is an upload under way: the reservation runs out then. */
  reservedUntil?: string;
  reservedAt?: string;
}

export interface OwnerUsage {
  version: 1;
  files: Record<string, OwnerUsageEntry>;
  /** When the entries were last checked against their manifests. */
  auditedAt?: string;
}

export interface UsageCount {
  bytes: number;
  files: number;
}

const emptyUsage = (): OwnerUsage => ({ version: 1, files: {} });

export function quotasEnabled(limits: QuotaLimits): boolean {
  return limits.bytes !== undefined || limits.files !== undefined;
}

/** A stored entry, or a reservation that has not run out. */
export function isLive(entry: OwnerUsageEntry, now: number): boolean {
  return entry.reservedUntil === undefined || Date.parse(entry.reservedUntil) > now;
}

/** What counts against the limits now, leaving out one file if asked. */
export function countUsage(usage: OwnerUsage, now: number, except?: string): UsageCount {
  let bytes = 0;
  let files = 0;
  for (const [fileId, entry] of Object.entries(usage.files)) {
    if (fileId === except || !isLive(entry, now)) continue;
    bytes += entry.bytes;
    files++;
  }
  return { bytes, files };
}

/** The usage without its run-out reservations. */
export function pruned(usage: OwnerUsage, now: number): OwnerUsage {
  const files = Object.fromEntries(Object.entries(usage.files).filter(([, entry]) => isLive(entry, now)));
  return { ...usage, files };
}

export interface Refusal {
  message: string;
  details: Record<string, number>;
}

/** Why adding `bytes` and one file to `used` would break a limit, or undefined when it would not. */
export function overQuota(used: UsageCount, limits: QuotaLimits, bytes: number): Refusal | undefined {
  if (limits.files !== undefined && used.files + 1 > limits.files) {
    return {
      message: `Storage quota reached: you have ${used.files} recording${used.files === 1 ? '' : 's'} (uploads under way included) and may keep ${limits.files}. Delete recordings to make room.`,
      details: { usedFiles: used.files, limitFiles: limits.files },
    };
  }
  if (limits.bytes !== undefined && used.bytes + bytes > limits.bytes) {
    return {
      message: `Storage quota reached: this recording's ${bytes} bytes would bring yours to ${used.bytes + bytes} bytes (uploads under way included); you may keep ${limits.bytes}. Delete recordings to make room.`,
      details: { usedBytes: used.bytes, requestedBytes: bytes, limitBytes: limits.bytes },
    };
  }
  return undefined;
}

type Change = { write: OwnerUsage } | { keep: true } | { refuse: Refusal };

/** Create: a new reservation, if the owner has room for it. */
export function reserveChange(usage: OwnerUsage, fileId: string, bytes: number, until: number, limits: QuotaLimits, now: number): Change {
  const current = pruned(usage, now);
  if (current.files[fileId] !== undefined) return { keep: true };
  const refusal = overQuota(countUsage(current, now), limits, bytes);
  if (refusal !== undefined) return { refuse: refusal };
  current.files[fileId] = { bytes, reservedUntil: new Date(until).toISOString(), reservedAt: new Date(now).toISOString() };
  return { write: current };
}

/** Commit: the owner's usage, this file at its size included, is within the limits; its reservation lasts a while longer. */
export function admitChange(usage: OwnerUsage, fileId: string, bytes: number, limits: QuotaLimits, now: number): Change {
  const current = pruned(usage, now);
  const entry = current.files[fileId];
  // Counted as stored already (a run that confirmed it): nothing to decide.
  if (entry !== undefined && entry.reservedUntil === undefined && entry.bytes === bytes) return { keep: true };
  const refusal = overQuota(countUsage(current, now, fileId), limits, bytes);
  if (refusal !== undefined) return { refuse: refusal };
  const holdUntil = now + ADMIT_HOLD_MS;
  if (entry?.reservedUntil !== undefined && entry.bytes === bytes && Date.parse(entry.reservedUntil) >= holdUntil) return { keep: true };
  current.files[fileId] = {
    bytes,
    reservedUntil: new Date(Math.max(holdUntil, entry?.reservedUntil === undefined ? 0 : Date.parse(entry.reservedUntil))).toISOString(),
    reservedAt: entry?.reservedAt ?? new Date(now).toISOString(),
  };
  return { write: current };
}

/** Ready: the file counts as stored, whatever the limits say now. */
export function confirmChange(usage: OwnerUsage, fileId: string, bytes: number, now: number): Change {
  const entry = usage.files[fileId];
  if (entry !== undefined && entry.reservedUntil === undefined && entry.bytes === bytes) return { keep: true };
  const current = pruned(usage, now);
  current.files[fileId] = { bytes };
  return { write: current };
}

/** Rejected, expired, deleted: the file counts no more. */
export function releaseChange(usage: OwnerUsage, fileId: string, now: number): Change {
  if (usage.files[fileId] === undefined) return { keep: true };
  const current = pruned(usage, now);
  delete current.files[fileId];
  return { write: current };
}

export type AuditVerdict = 'keep' | 'drop' | { stored: number };

/**
 * What an audit does with one entry, given the file's manifest (undefined: none; 'unreadable':
 * it could not be read, so nothing is decided on it).
 */
export function auditVerdict(entry: OwnerUsageEntry, manifest: Manifest | undefined | 'unreadable', owner: string, now: number): AuditVerdict {
  if (manifest === 'unreadable') return 'keep';
  if (entry.reservedUntil === undefined) {
    // Stored entries are written only once their file is ready, and a ready file stays ready until deleted.
    return manifest !== undefined && manifest.owner === owner && manifest.status === 'ready' ? 'keep' : 'drop';
  }
  if (now - Date.parse(entry.reservedAt ?? entry.reservedUntil) < RESERVATION_SETTLE_MS) return 'keep';
  if (manifest === undefined || manifest.owner !== owner || manifest.status === 'rejected' || manifest.status === 'expired') return 'drop';
  if (manifest.status === 'ready') return { stored: manifest.stored?.size ?? entry.bytes };
  return 'keep';
}

/** The usage with an audit's verdicts applied (to entries still as they were when audited) and the audit's time. */
export function applyAudit(usage: OwnerUsage, audited: ReadonlyMap<string, { entry: OwnerUsageEntry; verdict: AuditVerdict }>, now: number): OwnerUsage {
  const current = pruned(usage, now);
  for (const [fileId, { entry, verdict }] of audited) {
    const still = current.files[fileId];
    if (still === undefined || verdict === 'keep' || still.reservedUntil !== entry.reservedUntil) continue;
    if (verdict === 'drop') delete current.files[fileId];
    else current.files[fileId] = { bytes: verdict.stored };
  }
  return { ...current, auditedAt: new Date(now).toISOString() };
}

export function auditDue(usage: OwnerUsage, now: number): boolean {
  return usage.auditedAt === undefined || now - Date.parse(usage.auditedAt) >= AUDIT_INTERVAL_MS;
}

/** Reads a stored usage object; anything but the expected shape is a metadata error, never a reset. */
export function parseOwnerUsage(text: string): OwnerUsage {
  const invalid = () => new StorageMetadataError('An owner usage record is unreadable.', { operation: 'ownerUsage' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid();
  }
  const usage = parsed as Partial<OwnerUsage> | null;
  if (usage === null || typeof usage !== 'object' || usage.version !== 1 || usage.files === null || typeof usage.files !== 'object') throw invalid();
  for (const [fileId, entry] of Object.entries(usage.files)) {
    const valid =
      isFileId(fileId) &&
      entry !== null &&
      typeof entry === 'object' &&
      Number.isSafeInteger(entry.bytes) &&
      entry.bytes >= 0 &&
      (entry.reservedUntil === undefined || !Number.isNaN(Date.parse(entry.reservedUntil)));
    if (!valid) throw invalid();
  }
  return { version: 1, files: { ...usage.files }, ...(typeof usage.auditedAt === 'string' && { auditedAt: usage.auditedAt }) };
}

export class OwnerQuotas {
  readonly #ctx: StorageContext;
  readonly limits: QuotaLimits;

  constructor(ctx: StorageContext) {
    this.#ctx = ctx;
    this.limits = { bytes: ctx.config.quotas.bytesPerOwner, files: ctx.config.quotas.filesPerOwner };
  }

  get enabled(): boolean {
    return quotasEnabled(this.limits);
  }

  /** Create: holds `bytes` and one file for `fileId` until `until` (epoch ms), or throws StorageQuotaError. */
  async reserve(owner: string, fileId: string, bytes: number, until: number, operation: string): Promise<void> {
    if (!this.enabled) return;
    // A refused file never exists: its id is no business of the caller's.
    await this.#update(owner, undefined, operation, (usage, now) => reserveChange(usage, fileId, bytes, until, this.limits, now));
  }

  /** Commit, just before the file is made ready: throws StorageQuotaError when the owner is over a limit with it. */
  async admit(owner: string, fileId: string, bytes: number, operation: string): Promise<void> {
    if (!this.enabled) return;
    await this.#update(owner, fileId, operation, (usage, now) => admitChange(usage, fileId, bytes, this.limits, now));
  }

  /** The file is ready: it counts as stored. */
  async confirm(owner: string, fileId: string, bytes: number, operation: string): Promise<void> {
    if (!this.enabled) return;
    await this.#update(owner, fileId, operation, (usage, now) => confirmChange(usage, fileId, bytes, now));
  }

  /** The file is rejected, expired or deleted: it counts no more. */
  async release(owner: string, fileId: string, operation: string): Promise<void> {
    if (!this.enabled) return;
    await this.#update(owner, fileId, operation, (usage, now) => releaseChange(usage, fileId, now));
  }

  /** What counts against the owner's limits now. */
  async usageOf(owner: string): Promise<UsageCount> {
    const { usage } = await this.#read(ownerUsageKey(await ownerTag(this.#ctx, owner)), 'ownerUsage');
    return countUsage(usage, Date.now());
  }

  async #update(owner: string, fileId: string | undefined, operation: string, change: (usage: OwnerUsage, now: number) => Change): Promise<void> {
    const key = ownerUsageKey(await ownerTag(this.#ctx, owner));
    let audited = false;
    for (let attempt = 1; attempt <= WRITE_TRIES; attempt++) {
      const { usage, etag } = await this.#read(key, operation);
      const now = Date.now();
      const next = change(usage, now);
      if ('keep' in next) return;
      if ('refuse' in next) {
        if (audited || !auditDue(usage, now)) {
          throw new StorageQuotaError(next.refuse.message, { operation, fileId, details: next.refuse.details });
        }
        // Before refusing, make sure no leaked entry is what refuses (see above); then decide again.
        const verdicts = await this.#audit(owner, usage, now);
        audited = await this.#write(key, applyAudit(usage, verdicts, Date.now()), etag, operation);
        continue;
      }
      if (await this.#write(key, next.write, etag, operation)) return;
      // Another writer of this owner's usage won: read again, after a short random pause.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 25 * attempt));
    }
    throw new StorageOperationError('The owner usage record kept changing.', { operation, fileId });
  }

  async #audit(owner: string, usage: OwnerUsage, now: number): Promise<Map<string, { entry: OwnerUsageEntry; verdict: AuditVerdict }>> {
    const entries = Object.entries(usage.files).filter(([, entry]) => isLive(entry, now));
    const verdicts = new Map<string, { entry: OwnerUsageEntry; verdict: AuditVerdict }>();
    let next = 0;
    const lane = async () => {
      while (next < entries.length) {
        const [fileId, entry] = entries[next++]!;
        let manifest: Manifest | undefined | 'unreadable';
        try {
          manifest = (await this.#ctx.manifests.read(fileId))?.manifest;
        } catch {
          manifest = 'unreadable';
        }
        verdicts.set(fileId, { entry, verdict: auditVerdict(entry, manifest, owner, now) });
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, entries.length) }, lane));
    const dropped = [...verdicts.values()].filter((v) => v.verdict !== 'keep').length;
    if (dropped > 0) logger.warn('owner usage audit corrected entries left by an interrupted run', { corrected: dropped });
    return verdicts;
  }

  async #read(key: string, operation: string): Promise<{ usage: OwnerUsage; etag: string | undefined }> {
    try {
      const out = await this.#ctx.s3.internal.send(new GetObjectCommand({ Bucket: this.#ctx.config.bucket, Key: key }));
      return { usage: parseOwnerUsage((await out.Body?.transformToString('utf8')) ?? ''), etag: out.ETag };
    } catch (error) {
      if (isNotFound(error)) return { usage: emptyUsage(), etag: undefined };
      throw toStorageError(error, operation);
    }
  }

  /** False when another writer changed the object since it was read. */
  async #write(key: string, usage: OwnerUsage, etag: string | undefined, operation: string): Promise<boolean> {
    try {
      await this.#ctx.s3.internal.send(
        new PutObjectCommand({
          Bucket: this.#ctx.config.bucket,
          Key: key,
          Body: JSON.stringify(usage),
          ContentType: 'application/json',
          ...(etag === undefined ? { IfNoneMatch: '*' } : { IfMatch: etag }),
        }),
      );
      return true;
    } catch (error) {
      // 412: the ETag moved on; 409: S3's answer to two conditional writes at once.
      if (isPreconditionFailed(error) || httpStatusOf(error) === 409) return false;
      throw toStorageError(error, operation);
    }
  }
}

/**
 * Brings a settled file's quota entry in line with its status: ready counts as stored, rejected
 * and expired count no more. What the sweep and a redelivered event do for a file still marked
 * pending, in case the run that settled it did not get that far.
 */
export async function settleQuota(ctx: StorageContext, manifest: Manifest, operation: string): Promise<void> {
  const quotas = new OwnerQuotas(ctx);
  if (!quotas.enabled) return;
  if (manifest.status === 'ready') await quotas.confirm(manifest.owner, manifest.fileId, manifest.stored?.size ?? manifest.size, operation);
  else if (manifest.status === 'rejected' || manifest.status === 'expired') await quotas.release(manifest.owner, manifest.fileId, operation);
}
