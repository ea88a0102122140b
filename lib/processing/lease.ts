import { logger } from '../observability/logger.ts';
import type { Manifest, ManifestStore } from '../storage/manifest.ts';

/**
 * A processing run's hold on a file.
 *
 * Claiming writes `status: processing` with `leaseUntil` one lease ahead, conditionally on the
 * manifest version read. While the run works, the lease is renewed every third of its length,
 * again conditionally, so a slow run (a 1 GB file) keeps its file, and a run that is killed lets
 * go of it within one lease: after that the sweep, or a redelivered event, may take it over.
 *
 * Every renewal changes the manifest's ETag, so the run's last write must be conditional on
 * the latest one: `stop()` waits for a renewal under way and hands back the version to write on.
 * A renewal refused because the manifest changed underneath (the file was deleted, or taken
 * over after the lease ran out while the storage server was unreachable) means the run has lost
 * the file: `signal` aborts and the run must stop writing. A renewal that fails for any other
 * reason (the server unreachable) is tried again at the next tick; if the lease runs out
 * meanwhile, the run's final conditional write tells whether someone else took over.
 */
export class Lease {
  readonly #manifests: ManifestStore;
  readonly #leaseMs: number;
  readonly #aborter = new AbortController();
  #manifest: Manifest;
  #etag: string;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(manifests: ManifestStore, claimed: { manifest: Manifest; etag: string }, leaseSeconds: number) {
    this.#manifests = manifests;
    this.#manifest = claimed.manifest;
    this.#etag = claimed.etag;
    this.#leaseMs = leaseSeconds * 1000;
    this.#timer = setInterval(() => {
      this.#renewing = this.#renewing.then(() => this.#renew());
    }, Math.max(1000, Math.floor(this.#leaseMs / 3)));
    // A lease must never keep a process (or a Lambda invocation) alive on its own.
    this.#timer.unref();
  }

  /** The time a lease taken now runs until. */
  static until(leaseSeconds: number, now = Date.now()): string {
    return new Date(now + leaseSeconds * 1000).toISOString();
  }

  /** Aborted once another writer has changed the manifest: the run no longer holds the file. */
  get signal(): AbortSignal {
    return this.#aborter.signal;
  }

  /** Stops renewing and returns the manifest version the run's next write is conditional on. */
  async stop(): Promise<{ manifest: Manifest; etag: string }> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#renewing;
    return { manifest: this.#manifest, etag: this.#etag };
  }

  async #renew(): Promise<void> {
    if (this.#stopped || this.#aborter.signal.aborted) return;
    const renewed = { ...this.#manifest, leaseUntil: Lease.until(this.#leaseMs / 1000) };
    try {
      const etag = await this.#manifests.replace(renewed, this.#etag);
      if (etag === undefined) {
        logger.warn('lease lost: the file was changed by another writer', { fileId: renewed.fileId });
        this.#aborter.abort(new LeaseLost());
        return;
      }
      this.#manifest = renewed;
      this.#etag = etag;
    } catch (error) {
      logger.warn('lease renewal failed; retrying at the next tick', { fileId: renewed.fileId, error: error as Error });
    }
  }
}

/** The reason a run stops when its lease is lost. */
class LeaseLost extends Error {
  override name = 'LeaseLost';
  constructor() {
    super('the processing lease was lost to another writer');
  }
}
