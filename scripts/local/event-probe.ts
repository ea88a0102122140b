/**
 * npm start's proof that MinIO's events reach its relay: an empty object put where uploads land,
 * and its event awaited at the relay. A MinIO wired elsewhere would otherwise look fine while
 * every upload waited for the sweep; this way npm start says at once how MinIO must be started.
 */
import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { startupFailureLine } from './startup-failure.ts';
import { WEBHOOK_TARGET_ID } from './webhook-target.ts';

/** MinIO delivers from its queue_dir about every 3 s: a probe that has not arrived in this long will not. */
const PROBE_TIMEOUT_MS = 15_000;
const PROBE_PREFIX = 'uploads/transcribo-event-probe-';

export interface EventProbe {
  /** True for the probe's own event, which is no upload and goes no further. */
  claims(event: unknown): boolean;
  /** Puts the probe, waits for its event and logs what that says about MinIO's webhook. */
  prove(): Promise<void>;
  /** Deletes a probe still waiting for its event (npm start stopped meanwhile). */
  remove(): Promise<unknown>;
}

export function createEventProbe(options: {
  s3: S3Client;
  incomingBucket: string;
  relay: { host: string; port: number };
  sweepSeconds: number;
  /** What MinIO's webhook token is, as the advice names it. */
  tokenHint: string;
  log: (line: string) => void;
}): EventProbe {
  const { s3, incomingBucket, relay, log } = options;
  let waiting: { key: string; arrived: () => void; remove: () => Promise<unknown> } | undefined;
  return {
    claims(event) {
      if (!waiting || !JSON.stringify(event).includes(waiting.key)) return false;
      waiting.arrived();
      return true;
    },
    remove: () => waiting?.remove() ?? Promise.resolve(),
    async prove() {
      const key = `${PROBE_PREFIX}${randomBytes(6).toString('hex')}`;
      const started = Date.now();
      const remove = () => s3.send(new DeleteObjectCommand({ Bucket: incomingBucket, Key: key }));
      const arrived = new Promise<boolean>((resolvePromise) => {
        waiting = { key, arrived: () => resolvePromise(true), remove };
        setTimeout(() => resolvePromise(false), PROBE_TIMEOUT_MS).unref();
      });
      try {
        // Probes of an npm start that was killed before its probe came back.
        const stale = await s3.send(new ListObjectsV2Command({ Bucket: incomingBucket, Prefix: PROBE_PREFIX }));
        for (const { Key } of stale.Contents ?? []) if (Key) await s3.send(new DeleteObjectCommand({ Bucket: incomingBucket, Key }));
        await s3.send(new PutObjectCommand({ Bucket: incomingBucket, Key: key, Body: new Uint8Array(0), ContentLength: 0 }));
      } catch (error) {
        log(`could not put the event probe (${startupFailureLine(error)})`);
        return;
      }
      const ok = await arrived;
      waiting = undefined;
      await remove().catch(() => undefined);
      if (ok) {
        log(`events: MinIO's webhook reaches http://${relay.host}:${relay.port}/minio-events (probe in ${Date.now() - started} ms)`);
        return;
      }
      const host = relay.host === '0.0.0.0' ? '<this host>' : relay.host;
      log(
        [
          `MinIO's events do not reach npm start (no event of a probe upload within ${PROBE_TIMEOUT_MS / 1000} s), so uploads wait for the sweep (every ${options.sweepSeconds} s).`,
          `  MinIO must run with:`,
          `    MINIO_NOTIFY_WEBHOOK_ENABLE_${WEBHOOK_TARGET_ID}=on`,
          `    MINIO_NOTIFY_WEBHOOK_ENDPOINT_${WEBHOOK_TARGET_ID}=http://${host}:${relay.port}/minio-events`,
          `    MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${WEBHOOK_TARGET_ID}=${options.tokenHint}`,
          `    MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${WEBHOOK_TARGET_ID}=<a directory of its own>`,
          `  (npm run minio starts one wired this way.)`,
        ].join('\n'),
      );
    },
  };
}
